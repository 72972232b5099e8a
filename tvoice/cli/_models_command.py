"""``tvoice models serve``: the offline models behind the OpenAI HTTP API, for every job process
of this machine (see ``tvoice.inference``)."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import trio

from ..inference import InferenceServer, serve_shared

__all__ = ["serve_models"]

logger = logging.getLogger("tvoice.inference")


def serve_models(
    *, host: str, port: int, state_file: Path | None, exit_when_unused: float | None
) -> int:
    """Load Whisper tiny.en, SmolLM2-135M-Instruct and the Piper "joe" voice, then serve them
    until SIGINT/SIGTERM (or, with ``exit_when_unused``, until no process uses them)."""
    from tvoice_plugins import llamacpp, piper, whisper

    server = InferenceServer(llm=llamacpp.LLM.load(), stt=whisper.STT.load(), tts=piper.TTS.load())

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


async def _run(
    server: InferenceServer,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    await server.run(host=host, port=port, task_status=task_status)
