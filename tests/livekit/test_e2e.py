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
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import numpy as np
import pytest
from livekit import api

from tvoice.audio import AudioFrame
from tvoice.testing import LiveKitServer
from tvoice.testing._livekit_server import free_loopback_port

from ..conftest import run_livekit_server
from ._caller import Caller, dispatch_room, join, speech, wait_for
from .agents.echo import ECHO_PREFIX

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        "ignore:The HMAC key is 6 bytes long:jwt.warnings.InsecureKeyLengthWarning"
    ),
]

ROOT = Path(__file__).parents[2]
ECHO = ROOT / "tests" / "livekit" / "agents" / "echo.py"
REGISTER_TIMEOUT = 60.0
# The question's words. Whisper tiny.en hears the question through Opus and the receiver's
# jitter buffer, whose time-stretching varies from run to run under load: one run in a dozen on
# a busy machine heard "What is not well-known in Paris?" from intact audio. A reply counts as
# an answer to the question when it echoes most of these words.
QUESTION_WORDS = {"what", "is", "the", "weather", "in", "paris"}
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

    def wait_healthy(self, within: float = REGISTER_TIMEOUT, *, healthy: bool = True) -> None:
        """Until GET / says the worker is registered (or, ``healthy=False``, no longer is)."""
        # A subprocess on the real clock: polling its health endpoint is the only way to know.
        deadline = time.monotonic() + within
        while self.healthy() != healthy:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"the worker's health did not become {healthy}; its log:\n{self.log()}"
                )
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
def tvoice_worker(
    server: LiveKitServer, folder: Path, name: str, *, run_app: bool = False
) -> Iterator[WorkerProcess]:
    """`python -m tvoice worker echo.py` (or, ``run_app``, `python echo.py worker`) for
    ``server``; SIGTERM (then SIGKILL) on exit."""
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
        command = [str(ECHO), "worker"] if run_app else ["-m", "tvoice", "worker", str(ECHO)]
        process = subprocess.Popen(
            [sys.executable, *command, "--port", str(port)],
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
    # Job processes leave without tearing the interpreter down under the SDK's native threads.
    assert "panicked" not in worker.log(), worker.log()


@pytest.fixture(scope="module")
def worker(
    livekit_server: LiveKitServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    with tvoice_worker(livekit_server, tmp_path_factory.mktemp("workers"), "w1") as w:
        yield w


@pytest.fixture(scope="module")
def question(question_audio: AudioFrame) -> np.ndarray:
    """espeak-ng saying "What is the weather in Paris?", as the caller's 48 kHz samples."""
    return speech(question_audio)


async def _ask(
    caller: Caller, question: np.ndarray, log: Callable[[], str], *, reply: float = 1.0
) -> float:
    """Once the agent's track is there, ask ``question``; wait for ``reply`` seconds of the
    answer's audio. Returns when the question started."""
    await wait_for(lambda: caller.heard, within=90, what=lambda: f"the agent's track; {log()}")
    said_at = caller.say(question)
    await wait_for(
        lambda: caller.loud_seconds(said_at) > reply,
        within=30,
        what=lambda: f"{reply} s of reply audio; {log()}",
    )
    return said_at


def _worker_log(worker: WorkerProcess) -> str:
    return f"the worker's log:\n{worker.log()[-4000:]}"


def _echoes_the_question(text: str) -> bool:
    if not text.startswith(ECHO_PREFIX):
        return False
    heard = text.removeprefix(ECHO_PREFIX).split(".")[0]
    words = {word.strip(":,?!").lower() for word in heard.split()}
    return len(words & QUESTION_WORDS) >= 4


def _room() -> str:
    return f"e2e-{uuid.uuid4().hex[:8]}"


def _agent_identity(caller: object) -> str:
    room = caller.room  # type: ignore[attr-defined]
    agents = [
        p.identity for p in room.remote_participants.values() if p.identity.startswith("agent")
    ]
    return agents[0] if agents else ""


def test_a_dispatched_agent_answers_a_caller(
    livekit_server: LiveKitServer, worker: WorkerProcess, question: np.ndarray
) -> None:
    room = _room()

    async def main() -> None:
        await dispatch_room(livekit_server, room, "echo")
        async with join(livekit_server, room) as caller:
            await _ask(caller, question, lambda: _worker_log(worker))

            def replied() -> bool:
                agent = _agent_identity(caller)
                return any(
                    ECHO_PREFIX in text and a.get("lk.transcription_final") == "true"
                    for a, text in caller.agent_transcripts(agent)
                    if a.get("lk.transcribed_track_id", "").startswith("TR_")
                )

            await wait_for(replied, within=30, what=f"the reply's transcription: {caller.texts}")
            agent = _agent_identity(caller)
            texts = [text for _, text in caller.agent_transcripts(agent)]
            # The worker's log says whether audio was dropped on the way (a misheard question).
            assert any(_echoes_the_question(text) for text in texts), (
                f"{texts}; {_worker_log(worker)}"
            )

    asyncio.run(main())


def test_the_caller_interrupts_the_reply(
    livekit_server: LiveKitServer, worker: WorkerProcess, question: np.ndarray
) -> None:
    room = _room()

    async def main() -> tuple[float, float | None, list[str]]:
        await dispatch_room(livekit_server, room, "echo")
        async with join(livekit_server, room) as caller:
            await _ask(caller, question, lambda: _worker_log(worker))
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
    # (0.3 s), and the last audio sent (<= 0.1 s ahead) plays out: about 0.8 s, under 2.5 s with
    # a busy test machine's stalls (the reply had about ten seconds left).
    assert quiet_at - over_at < 2.5, quiet_at - over_at
    first, second = replies[0], replies[1]
    # The interrupted reply is transcribed only as far as it was heard.
    assert first.startswith(ECHO_PREFIX), first
    assert "close at five" not in first, first
    assert _echoes_the_question(second), f"{second!r}; {_worker_log(worker)}"


async def _wait_job(workers: list[WorkerProcess], room: str) -> WorkerProcess:
    """The worker whose job process started ``room``'s entrypoint."""
    await wait_for(
        lambda: any(room in w.job_pids() for w in workers),
        within=60,
        what=lambda: f"a job for {room}; logs:\n" + "\n".join(w.log()[-2000:] for w in workers),
    )
    return next(w for w in workers if room in w.job_pids())


def test_two_workers_share_rooms_and_a_drained_worker_finishes_its_job(
    livekit_server: LiveKitServer, worker: WorkerProcess, tmp_path: Path
) -> None:
    # The second worker runs the agent file itself: `python echo.py worker` (run_app).
    with tvoice_worker(livekit_server, tmp_path, "w2", run_app=True) as second:
        workers = [worker, second]

        async def main() -> None:
            async with contextlib.AsyncExitStack() as calls:
                # The server picks one of the workers at random, weighted by 1 - load: within
                # ten rooms both get some (all ten on one: well under one chance in 500).
                served: dict[str, WorkerProcess] = {}
                for _ in range(10):
                    room = _room()
                    await dispatch_room(livekit_server, room, "echo")
                    await calls.enter_async_context(join(livekit_server, room))
                    served[room] = await _wait_job(workers, room)
                    if {w.port for w in served.values()} == {worker.port, second.port}:
                        break
                assert {w.port for w in served.values()} == {worker.port, second.port}
                # Drain the second worker while its calls go on.
                second.process.send_signal(signal.SIGTERM)
                await wait_for(lambda: "draining" in second.log(), within=30, what="w2 draining")
                room = _room()
                await dispatch_room(livekit_server, room, "echo")
                await calls.enter_async_context(join(livekit_server, room))
                assert await _wait_job(workers, room) is worker
                assert second.process.poll() is None, "a draining worker waits for its jobs"
            # The callers left: every session closes, the drained worker's jobs end, it exits.
            await wait_for(
                lambda: second.process.poll() is not None,
                within=30,
                what=lambda: f"w2 exiting after its jobs; log:\n{second.log()[-3000:]}",
            )

        asyncio.run(main())
        assert second.process.returncode == 0
        log = second.log()
        assert "draining" in log
        assert "failed" not in log.lower(), log


def test_a_killed_job_process_fails_its_job_only(
    livekit_server: LiveKitServer, worker: WorkerProcess, question: np.ndarray
) -> None:

    async def main() -> None:
        doomed = _room()
        await dispatch_room(livekit_server, doomed, "echo")
        async with join(livekit_server, doomed):
            await _wait_job([worker], doomed)
            os.kill(worker.job_pids()[doomed], signal.SIGKILL)
            await wait_for(
                lambda: "exited with signal SIGKILL" in worker.log(),
                within=15,
                what=lambda: f"the job reported failed; log:\n{worker.log()[-3000:]}",
            )
        worker.wait_healthy(within=10)
        # The worker goes on serving: the next room gets an answer.
        room = _room()
        await dispatch_room(livekit_server, room, "echo")
        async with join(livekit_server, room) as caller:
            await _ask(caller, question, lambda: _worker_log(worker), reply=0.5)

    asyncio.run(main())


def test_a_worker_reconnects_after_the_server_restarts(tmp_path: Path) -> None:
    for folder in ("server-1", "server-2"):
        (tmp_path / folder).mkdir()
    first = contextlib.ExitStack()
    server = first.enter_context(run_livekit_server(tmp_path / "server-1"))
    with first, tvoice_worker(server, tmp_path, "w-restart") as w:
        first.close()  # the server stops under the worker
        w.wait_healthy(within=10, healthy=False)
        with run_livekit_server(tmp_path / "server-2", server.config) as restarted:
            w.wait_healthy(within=30)

            async def main() -> None:
                room = _room()
                await dispatch_room(restarted, room, "echo")
                async with join(restarted, room) as caller:
                    await wait_for(lambda: caller.heard, within=60, what=lambda: _worker_log(w))

            asyncio.run(main())
    assert "registered worker" in w.log()


def test_tvoice_connect_runs_one_job_in_a_named_room(
    livekit_server: LiveKitServer, tmp_path: Path, question: np.ndarray
) -> None:
    room = _room()
    env = {
        **os.environ,
        "LIVEKIT_URL": livekit_server.url,
        "LIVEKIT_API_KEY": livekit_server.api_key,
        "LIVEKIT_API_SECRET": livekit_server.api_secret,
        "PYTHONWARNINGS": "ignore::UserWarning",
    }
    log_path = tmp_path / "connect.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tvoice", "connect", "--room", room, str(ECHO)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )

    async def main() -> None:
        async with join(livekit_server, room) as caller:
            await _ask(caller, question, lambda: f"log:\n{log_path.read_text()}", reply=0.5)

    try:
        asyncio.run(main())
        # The caller left: the session closes, the job ends, the command exits.
        assert process.wait(STOP_TIMEOUT) == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_deleting_the_room_ends_its_job(
    livekit_server: LiveKitServer, worker: WorkerProcess
) -> None:
    # No caller ever comes: the entrypoint waits for one until the room is deleted.
    room = _room()

    async def main() -> None:
        await dispatch_room(livekit_server, room, "echo")
        await _wait_job([worker], room)
        # Joined: connected and its session waiting for a participant (the job process says).
        await wait_for(
            lambda: f"joined room {room}" in worker.log(),
            within=60,
            what=lambda: f"the agent joining; {_worker_log(worker)}",
        )
        async with api.LiveKitAPI(
            livekit_server.http_url, livekit_server.api_key, livekit_server.api_secret
        ) as lkapi:
            await lkapi.room.delete_room(api.DeleteRoomRequest(room=room))
        pid = worker.job_pids()[room]
        await wait_for(
            lambda: not Path(f"/proc/{pid}").exists(),
            within=30,
            what=lambda: f"the job process exiting; {_worker_log(worker)}",
        )

    asyncio.run(main())
    worker.wait_healthy(within=10)


def test_a_worker_with_a_wrong_secret_says_so_and_exits(livekit_server: LiveKitServer) -> None:
    env = {
        **os.environ,
        "LIVEKIT_URL": livekit_server.url,
        "LIVEKIT_API_KEY": livekit_server.api_key,
        "LIVEKIT_API_SECRET": "not-the-secret",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tvoice", "worker", str(ECHO), "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "refused the worker's token (401)" in done.stderr
    assert "Traceback" not in done.stderr
