"""``tvoice models serve``: the offline models behind the OpenAI HTTP API, for every job process
of this machine (see ``tvoice.inference``)."""

from __future__ import annotations

import logging
import signal
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import trio

from ..inference import InferenceServer, serve_shared

__all__ = ["serve_models"]

logger = logging.getLogger("tvoice.inference")


def serve_models(
    *, host: str, port: int, state_file: Path | None, exit_when_unused: float | None
) -> int:
    """Load Whisper tiny.en, SmolLM2-135M-Instruct and the Piper "joe" voice, then serve them
    until SIGINT/SIGTERM (or, with ``exit_when_unused``, until no process uses them)."""
    server = InferenceServer(
        llm=_plugin("llamacpp").LLM.load(),
        stt=_plugin("whisper").STT.load(),
        tts=_plugin("piper").TTS.load(),
    )

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:

                async def stop_on_signal() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()

                nursery.start_soon(stop_on_signal)
                await server.warm_up()
                if state_file is not None:
                    await serve_shared(
                        server,
                        state_file=state_file,
                        host=host,
                        port=port,
                        exit_when_unused=exit_when_unused,
                    )
                else:
                    bound = await nursery.start(_run, server, host, port)
                    print(f"serving the models on http://{host}:{bound}/v1", flush=True)
                    await trio.sleep_forever()
                nursery.cancel_scope.cancel()

    trio.run(main)
    return 0


def _plugin(name: str) -> Any:
    """The plugin module registered as ``name`` in the ``tvoice.plugins`` entry points: the
    framework finds its plugins there and never imports them by name."""
    found = entry_points(group="tvoice.plugins", name=name)
    if not found:
        raise SystemExit(f"no tvoice plugin {name!r}: pip install 'tvoice[offline]'")
    return next(iter(found)).load()


async def _run(
    server: InferenceServer,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    await server.run(host=host, port=port, task_status=task_status)
