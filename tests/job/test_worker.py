"""The worker against the real LiveKit server: registration, dispatch, refusal, termination,
drain, load, reconnection.

Jobs run in a fake launcher (it records what the worker hands it and ends as each test says);
the server, the /agent protocol and the dispatches are real. The room service API is asyncio
(livekit-api): the tests call it in a thread with its own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs
import jwt
import pytest
import trio
from livekit import api

from tvoice.job import JobRequest, WorkerOptions, WorkerPermissions, WorkerType
from tvoice.job._launch import JobResult, RunningJobInfo
from tvoice.job._worker import Worker
from tvoice.livekit.protocol import WorkerStatus
from tvoice.testing import LiveKitServer

from ..conftest import run_livekit_server
from ..livekit._caller import join

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        "ignore:The HMAC key is 6 bytes long:jwt.warnings.InsecureKeyLengthWarning"
    ),
]

T = TypeVar("T")
WAIT = 15.0  # bound on any single wait for the server


@attrs.define(eq=False)
class FakeLauncher:
    """Runs no process: records each job, then ends it as ``outcome`` says once released."""

    outcome: JobResult | None = attrs.Factory(lambda: JobResult(success=True))  # None: hang
    jobs: list[RunningJobInfo] = attrs.field(factory=list)
    cancelled: list[str] = attrs.field(factory=list)
    release: trio.Event = attrs.field(factory=trio.Event)
    changed: trio.Event = attrs.field(factory=trio.Event)
    active_jobs: int = 0

    async def run_job(
        self, info: RunningJobInfo, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> JobResult:
        self.jobs.append(info)
        self.active_jobs += 1
        self._notify()
        task_status.started()
        try:
            if self.outcome is None:
                await trio.sleep_forever()
            await self.release.wait()
            return self.outcome
        except trio.Cancelled:
            self.cancelled.append(info.job.id)
            raise
        finally:
            self.active_jobs -= 1
            self._notify()

    async def wait_jobs(self, count: int) -> list[RunningJobInfo]:
        with trio.fail_after(WAIT):
            while len(self.jobs) < count:
                await self.changed.wait()
        return self.jobs

    def _notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


async def _never(ctx: object) -> None:
    raise AssertionError("the fake launcher runs no entrypoint")


def _options(server: LiveKitServer, **overrides: Any) -> WorkerOptions:
    fields: dict[str, Any] = {
        "entrypoint_fnc": _never,
        "agent_name": f"agent-{uuid.uuid4().hex[:8]}",
        "ws_url": server.url,
        "api_key": server.api_key,
        "api_secret": server.api_secret,
        "load_fnc": lambda: 0.0,  # the test machine's CPU must not make the worker full
        "drain_timeout": 1.0,  # jobs that hang are cancelled when the test ends
    }
    return WorkerOptions(**(fields | overrides))


async def _lk(server: LiveKitServer, call: Callable[[api.LiveKitAPI], Awaitable[T]]) -> T:
    """Run ``call(lkapi)`` on the room service API, in a thread with its own asyncio loop."""

    async def main() -> T:
        async with (
            asyncio.timeout(WAIT),
            api.LiveKitAPI(server.http_url, server.api_key, server.api_secret) as lkapi,
        ):
            return await call(lkapi)

    return await trio.to_thread.run_sync(asyncio.run, main())


async def _dispatch(server: LiveKitServer, agent_name: str, *, metadata: str = "") -> str:
    """A new room with an explicit dispatch to ``agent_name``; returns the room name."""
    room, _ = await _dispatch_with_id(server, agent_name, metadata=metadata)
    return room


async def _dispatch_with_id(
    server: LiveKitServer, agent_name: str, *, metadata: str = ""
) -> tuple[str, str]:
    room = f"room-{uuid.uuid4().hex[:8]}"

    async def call(lkapi: api.LiveKitAPI) -> str:
        await lkapi.room.create_room(api.CreateRoomRequest(name=room))
        dispatch = await lkapi.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=agent_name, room=room, metadata=metadata)
        )
        return str(dispatch.id)

    return room, await _lk(server, call)


async def _until(predicate: Callable[[], bool], within: float = WAIT) -> None:
    # Polls: the server's log and the worker's counters have no event to wait on.
    with trio.fail_after(within):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.02)


async def _server_logged(server: LiveKitServer, *needles: str) -> str:
    """Wait for a line of the server's log that holds every needle."""
    found = ""

    def logged() -> bool:
        nonlocal found
        text = server.log_path.read_text(errors="replace")
        found = next((ln for ln in text.splitlines() if all(n in ln for n in needles)), "")
        return bool(found)

    await _until(logged)
    return found


async def _assignment_recorded(server: LiveKitServer, job_id: str) -> None:
    """Wait until the server counts the job as running. It sends the assignment first and
    records the job a moment later (livekit-server 1.13.5, ``Worker.AssignJob``), and it drops
    a status update for a job it has not recorded: a fake job that ends the instant it is
    assigned could never be reported ended. A real job takes longer than that to end."""
    await _server_logged(server, "assigned job to worker", job_id)


@contextlib.asynccontextmanager
async def _running(worker: Worker) -> AsyncIterator[None]:
    """The worker, started (registered); drained at the end, within the test's own bound."""
    async with trio.open_nursery() as nursery:
        with trio.fail_after(WAIT):
            await nursery.start(worker.run)
        yield
        worker.drain()


async def test_registers_then_runs_a_dispatched_job_and_reports_its_end(
    livekit_server: LiveKitServer,
):
    launcher = FakeLauncher()
    worker = Worker(_options(livekit_server), pool=launcher)
    with trio.fail_after(40):
        async with _running(worker):
            assert worker.connected
            assert worker.worker_id.startswith("AW_")
            await _server_logged(livekit_server, "worker registered", worker.worker_id)

            room = await _dispatch(livekit_server, worker.agent_name, metadata='{"lang": "en"}')
            (info,) = await launcher.wait_jobs(1)
            assert info.job.room_name == room
            assert info.job.agent_name == worker.agent_name
            assert info.job.metadata == '{"lang": "en"}'
            assert info.url == livekit_server.url  # the server sends no url of its own
            assert info.worker_id == worker.worker_id
            assert info.participant_identity == f"agent-{info.job.id}"
            claims = jwt.decode(info.token, livekit_server.api_secret, algorithms=["HS256"])
            assert claims["sub"] == info.participant_identity
            assert claims["video"]["room"] == room
            assert claims["video"]["roomJoin"] is True
            assert claims["kind"] == "agent"
            assert [job.job.id for job in worker.active_jobs] == [info.job.id]

            await _assignment_recorded(livekit_server, info.job.id)
            launcher.release.set()
            await _until(lambda: worker.jobs_succeeded == 1)
            assert worker.active_jobs == []
            line = await _server_logged(livekit_server, "job ended", info.job.id)
            assert "JS_SUCCESS" in line


async def test_a_failed_job_is_reported_with_its_error(livekit_server: LiveKitServer):
    launcher = FakeLauncher(outcome=JobResult(success=False, error="entrypoint crashed: boom"))
    worker = Worker(_options(livekit_server), pool=launcher)
    with trio.fail_after(40):
        async with _running(worker):
            await _dispatch(livekit_server, worker.agent_name)
            (info,) = await launcher.wait_jobs(1)
            await _assignment_recorded(livekit_server, info.job.id)
            launcher.release.set()
            await _until(lambda: worker.jobs_failed == 1)
            line = await _server_logged(livekit_server, "job ended", info.job.id)
            assert "JS_FAILED" in line
            assert "entrypoint crashed: boom" in line


async def test_request_fnc_accepts_with_an_identity_or_rejects(livekit_server: LiveKitServer):
    async def request_fnc(request: JobRequest) -> None:
        if request.metadata == "no":
            await request.reject()
        else:
            await request.accept(identity="helper", name="Helper")

    launcher = FakeLauncher(outcome=None)
    worker = Worker(_options(livekit_server, request_fnc=request_fnc), pool=launcher)
    with trio.fail_after(40):
        async with _running(worker):
            await _dispatch(livekit_server, worker.agent_name, metadata="no")
            await _until(lambda: worker.jobs_rejected == 1)
            await _dispatch(livekit_server, worker.agent_name, metadata="yes")
            (info,) = await launcher.wait_jobs(1)
            assert info.job.metadata == "yes"
            assert info.participant_identity == "helper"
            claims = jwt.decode(info.token, livekit_server.api_secret, algorithms=["HS256"])
            assert (claims["sub"], claims["name"]) == ("helper", "Helper")
            assert worker.jobs_started == 1


async def test_the_registered_permissions_are_in_every_job_token(livekit_server: LiveKitServer):
    permissions = WorkerPermissions(can_update_metadata=False, can_publish_data=False, hidden=True)
    launcher = FakeLauncher(outcome=None)
    worker = Worker(_options(livekit_server, permissions=permissions), pool=launcher)
    with trio.fail_after(40):
        async with _running(worker):
            await _dispatch(livekit_server, worker.agent_name)
            (info,) = await launcher.wait_jobs(1)
    video = jwt.decode(info.token, livekit_server.api_secret, algorithms=["HS256"])["video"]
    assert video["canPublishData"] is False
    assert video["canUpdateOwnMetadata"] is False
    assert video["hidden"] is True
    assert video["canPublish"] is True
    assert video["canSubscribe"] is True


async def test_a_publisher_worker_gets_a_job_for_each_participant_who_publishes(
    livekit_server: LiveKitServer,
):
    launcher = FakeLauncher(outcome=None)
    offered: list[JobRequest] = []

    async def request_fnc(request: JobRequest) -> None:
        offered.append(request)
        await request.accept()

    worker = Worker(
        _options(livekit_server, worker_type=WorkerType.PUBLISHER, request_fnc=request_fnc),
        pool=launcher,
    )
    assert worker.worker_type == "publisher"
    with trio.fail_after(40):
        async with _running(worker):
            room = await _dispatch(livekit_server, worker.agent_name)
            async with _publishing(livekit_server, room, "caller"):
                (info,) = await launcher.wait_jobs(1)
    assert info.job.room_name == room
    assert info.job.publisher_identity == "caller"
    assert [request.publisher_identity for request in offered] == ["caller"]


@contextlib.asynccontextmanager
async def _publishing(server: LiveKitServer, room: str, identity: str) -> AsyncIterator[None]:
    """A participant in ``room`` publishing a microphone track (silence), in a thread with its
    own asyncio loop, until the block ends."""
    joined, leave = trio.Event(), threading.Event()
    token = trio.lowlevel.current_trio_token()

    async def main() -> None:
        async with join(server, room, identity):
            trio.from_thread.run_sync(joined.set, trio_token=token)
            await asyncio.to_thread(leave.wait, WAIT * 2)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, asyncio.run, main())
        try:
            with trio.fail_after(WAIT):
                await joined.wait()
            yield
        finally:
            leave.set()


async def test_a_deleted_dispatch_terminates_its_job(livekit_server: LiveKitServer):
    launcher = FakeLauncher(outcome=None)
    worker = Worker(_options(livekit_server), pool=launcher)
    with trio.fail_after(40):
        async with _running(worker):
            room, dispatch_id = await _dispatch_with_id(livekit_server, worker.agent_name)
            (info,) = await launcher.wait_jobs(1)
            await _lk(
                livekit_server,
                lambda lkapi: lkapi.agent_dispatch.delete_dispatch(dispatch_id, room),
            )
            await _until(lambda: launcher.cancelled == [info.job.id])
            await _until(lambda: worker.jobs_succeeded == 1)
            assert worker.active_jobs == []


async def test_drain_takes_no_new_job_and_waits_for_the_running_one(
    livekit_server: LiveKitServer,
):
    launcher = FakeLauncher()
    worker = Worker(_options(livekit_server, drain_timeout=30.0), pool=launcher)
    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            await _dispatch(livekit_server, worker.agent_name)
            await launcher.wait_jobs(1)

            worker.drain()
            await _until(lambda: worker.status is WorkerStatus.FULL)
            await trio.sleep(0.2)  # the status update reaches the server
            await _dispatch(livekit_server, worker.agent_name)
            await trio.sleep(1.0)
            assert len(launcher.jobs) == 1  # the server found no available worker
            assert worker.connected  # still serving the running job

            launcher.release.set()
        # run() returned once the job ended
    assert worker.jobs_succeeded == 1
    assert launcher.cancelled == []
    assert not worker.connected


async def test_drain_cancels_the_jobs_still_running_at_its_timeout(
    livekit_server: LiveKitServer,
):
    launcher = FakeLauncher(outcome=None)
    worker = Worker(_options(livekit_server, drain_timeout=0.5), pool=launcher)
    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            await _dispatch(livekit_server, worker.agent_name)
            (info,) = await launcher.wait_jobs(1)
            start = trio.current_time()
            worker.drain()
        elapsed = trio.current_time() - start
    # The drain waited its timeout before cancelling (real clock: no upper bound asserted).
    assert elapsed >= 0.5
    assert launcher.cancelled == [info.job.id]
    assert worker.jobs_failed == 1
    line = await _server_logged(livekit_server, "job ended", info.job.id)
    assert "JS_FAILED" in line
    assert "drain timeout" in line


async def test_full_when_the_load_reaches_the_threshold(livekit_server: LiveKitServer):
    load = 0.9
    launcher = FakeLauncher(outcome=None)
    worker = Worker(
        _options(livekit_server, load_fnc=lambda: load, load_threshold=0.7), pool=launcher
    )
    with trio.fail_after(40):
        async with _running(worker):
            await _until(lambda: worker.status is WorkerStatus.FULL)
            assert worker.load == 0.9
            await trio.sleep(0.2)
            await _dispatch(livekit_server, worker.agent_name)
            await trio.sleep(1.0)
            assert launcher.jobs == []

            load = 0.2
            await _until(lambda: worker.status is WorkerStatus.AVAILABLE, within=5)
            await trio.sleep(0.2)
            await _dispatch(livekit_server, worker.agent_name)
            await launcher.wait_jobs(1)


@contextlib.contextmanager
def _own_server(folder: Path, config: Any = None) -> Iterator[LiveKitServer]:
    with run_livekit_server(folder, config) as server:
        yield server


async def test_reconnects_after_the_server_restarts_and_keeps_its_jobs(tmp_path: Path):
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    stack = contextlib.ExitStack()
    server = await trio.to_thread.run_sync(stack.enter_context, _own_server(first_dir))
    launcher = FakeLauncher(outcome=None)
    worker = Worker(_options(server), pool=launcher)
    try:
        with trio.fail_after(50):
            async with _running(worker):
                await _dispatch(server, worker.agent_name)
                (first,) = await launcher.wait_jobs(1)
                first_id = worker.worker_id

                await trio.to_thread.run_sync(stack.close)
                await _until(lambda: not worker.connected)
                stack = contextlib.ExitStack()
                server = await trio.to_thread.run_sync(
                    stack.enter_context, _own_server(second_dir, server.config)
                )
                with trio.fail_after(WAIT):
                    await worker.wait_registered()
                assert worker.worker_id != first_id
                assert worker.registrations == 2
                assert launcher.cancelled == []  # the job kept running through it all
                assert [job.job.id for job in worker.active_jobs] == [first.job.id]

                await _dispatch(server, worker.agent_name)
                await launcher.wait_jobs(2)
    finally:
        await trio.to_thread.run_sync(stack.close)
