"""End to end: `tvoice worker` processes serve real rooms of the loopback LiveKit server.

A caller made with the livekit SDK joins a room dispatched to the echo agent
(tests/livekit/agents/echo.py: real Silero VAD, Whisper and espeak-ng), speaks an espeak-ng
recording, and hears the reply (audio and transcription); speaks over it; workers drain, lose a
job process, lose the server. Workers are real subprocesses started with the `tvoice` command.
Everything runs on the real clock with every wait bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tvoice.livekit._server_config import free_loopback_port

from ._caller import dispatch_room, join, speech, wait_for
from .agents.echo import ECHO_PREFIX
from .conftest import LiveKitServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        "ignore:The HMAC key is 6 bytes long:jwt.warnings.InsecureKeyLengthWarning"
    ),
]

ROOT = Path(__file__).parents[2]
ECHO = ROOT / "tests" / "livekit" / "agents" / "echo.py"
QUESTION = str(ROOT / "examples" / "question.wav")
REGISTER_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


@attrs.define(eq=False)
class WorkerProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    markers: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1.0) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, within: float = REGISTER_TIMEOUT) -> None:
        # A subprocess on the real clock: polling its health endpoint is the only way to know.
        deadline = time.monotonic() + within
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the worker did not register; its log:\n{self.log()}")
            time.sleep(0.1)

    def job_pids(self) -> dict[str, int]:
        """room name -> pid of the job process that ran it (from the agent's marker files)."""
        found = {}
        for path in self.markers.iterdir():
            room, _, pid = path.name.rpartition(".")
            found[room] = int(pid)
        return found

    def children(self) -> set[int]:
        pids = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.process.pid:
                    pids.add(int(stat.parent.name))
        return pids


@contextlib.contextmanager
def tvoice_worker(server: LiveKitServer, folder: Path, name: str) -> Iterator[WorkerProcess]:
    """`python -m tvoice worker echo.py` for ``server``; SIGTERM (then SIGKILL) on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    markers = folder / f"{name}-markers"
    markers.mkdir()
    env = {
        **os.environ,
        "LIVEKIT_URL": server.url,
        "LIVEKIT_API_KEY": server.api_key,
        "LIVEKIT_API_SECRET": server.api_secret,
        "TVOICE_TEST_MARKER_DIR": str(markers),
        "PYTHONWARNINGS": "ignore::UserWarning",
    }
    port = free_loopback_port()
    log_path = folder / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tvoice", "worker", str(ECHO), "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    worker = WorkerProcess(process, port, log_path, markers)
    try:
        worker.wait_healthy()
        yield worker
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def worker(
    livekit_server: LiveKitServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    with tvoice_worker(livekit_server, tmp_path_factory.mktemp("workers"), "w1") as w:
        yield w


def _no_track(worker: WorkerProcess) -> str:
    return f"the agent's audio track; the worker's log:\n{worker.log()[-4000:]}"


def _room() -> str:
    return f"e2e-{uuid.uuid4().hex[:8]}"


def _agent_identity(caller: object) -> str:
    room = caller.room  # type: ignore[attr-defined]
    agents = [
        p.identity for p in room.remote_participants.values() if p.identity.startswith("agent")
    ]
    return agents[0] if agents else ""


def test_a_dispatched_agent_answers_a_caller(
    livekit_server: LiveKitServer, worker: WorkerProcess
) -> None:
    room = _room()
    question = speech(QUESTION)

    async def main() -> None:
        await dispatch_room(livekit_server, room, "echo")
        async with join(livekit_server, room) as caller:
            await wait_for(
                lambda: caller.heard,
                within=20,
                what=lambda: f"the agent track; log:\n{worker.log()}",
            )
            said_at = caller.say(question)

            def replied() -> bool:
                agent = _agent_identity(caller)
                return any(
                    ECHO_PREFIX in text and a.get("lk.transcription_final") == "true"
                    for a, text in caller.agent_transcripts(agent)
                    if a.get("lk.transcribed_track_id", "").startswith("TR_")
                )

            await wait_for(
                lambda: caller.loud_seconds(said_at) > 1.0,
                within=30,
                what=f"a second of reply audio; worker log:\n{worker.log()[-3000:]}",
            )
            await wait_for(replied, within=30, what=f"the reply's transcription: {caller.texts}")
            agent = _agent_identity(caller)
            texts = [text for _, text in caller.agent_transcripts(agent)]
            assert any("weather" in text.lower() and ECHO_PREFIX in text for text in texts), texts

    asyncio.run(main())


def test_the_caller_interrupts_the_reply(
    livekit_server: LiveKitServer, worker: WorkerProcess
) -> None:
    room = _room()
    question = speech(QUESTION)

    async def main() -> tuple[float, float | None, list[str]]:
        await dispatch_room(livekit_server, room, "echo")
        async with join(livekit_server, room) as caller:
            await wait_for(
                lambda: caller.heard,
                within=20,
                what=lambda: f"the agent track; log:\n{worker.log()}",
            )
            said_at = caller.say(question)
            await wait_for(
                lambda: caller.loud_seconds(said_at) > 1.0, within=30, what="the reply's audio"
            )
            # About ten seconds of reply are left: speak over it.
            over_at = caller.say(question)
            await wait_for(
                lambda: caller.went_quiet_at(over_at) is not None,
                within=10,
                what="the agent's audio stopping",
            )
            quiet_at = caller.went_quiet_at(over_at)
            agent = _agent_identity(caller)
            await wait_for(
                lambda: len(caller.agent_transcripts(agent)) >= 2,
                within=30,
                what=f"the answer to the second question: {caller.texts}",
            )
            return over_at, quiet_at, [text for _, text in caller.agent_transcripts(agent)]

    over_at, quiet_at, replies = asyncio.run(main())
    assert quiet_at is not None
    # The VAD hears speech within ~0.3 s, the agent pauses after min_interruption_duration
    # (0.3 s), and the last audio sent (<= 0.1 s ahead) plays out: well under 1.5 s.
    assert quiet_at - over_at < 1.5, quiet_at - over_at
    first, second = replies[0], replies[1]
    # The interrupted reply is transcribed only as far as it was heard.
    assert first.startswith(ECHO_PREFIX), first
    assert "close at five" not in first, first
    assert second.startswith(ECHO_PREFIX), second
    assert "weather" in second.lower(), second
