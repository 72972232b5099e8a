"""The worker's timing and error handling on the virtual clock, against a scripted fake server.

The fake server is a trio-websocket server on loopback that speaks livekit-protocol's messages;
each test scripts what it sends and checks what the worker answers, and when.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio_websocket
from livekit.protocol import agent as pb
from livekit.protocol import models

from tvoice import APIConnectionError
from tvoice.job import JobInfo, JobRequest, WorkerOptions
from tvoice.job._launch import JobResult, RunningJobInfo
from tvoice.job._worker import REQUEST_TIMEOUT, STATUS_INTERVAL, Worker
from tvoice.livekit import protocol as p
from tvoice.testing._livekit_server import free_loopback_port

pytestmark = pytest.mark.filterwarnings(
    "ignore:The HMAC key is 6 bytes long:jwt.warnings.InsecureKeyLengthWarning"
)

Script = Callable[[trio_websocket.WebSocketConnection], Awaitable[None]]


class Launcher:
    active_jobs = 0

    def __init__(self, duration: float = 1.0) -> None:
        self.jobs: list[RunningJobInfo] = []
        self.duration = duration

    async def run_job(
        self, info: RunningJobInfo, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> JobResult:
        self.jobs.append(info)
        task_status.started()
        await trio.sleep(self.duration)
        return JobResult(success=False, error="boom")


async def _never(ctx: object) -> None:
    raise AssertionError


def _options(port: int, **overrides: object) -> WorkerOptions:
    fields: dict[str, object] = {
        "entrypoint_fnc": _never,
        "agent_name": "support",
        "ws_url": f"ws://127.0.0.1:{port}",
        "api_key": "devkey",
        "api_secret": "secret",
        "load_fnc": lambda: 0.25,
        "drain_timeout": 0.0,
    }
    return WorkerOptions(**(fields | overrides))  # type: ignore[arg-type]


async def _receive(ws: trio_websocket.WebSocketConnection) -> pb.WorkerMessage:
    message = pb.WorkerMessage()
    data = await ws.get_message()
    assert isinstance(data, bytes)
    message.ParseFromString(data)
    return message


async def _receive_kind(ws: trio_websocket.WebSocketConnection, kind: str) -> pb.WorkerMessage:
    """The next message of ``kind``, skipping status updates and pings."""
    while True:
        message = await _receive(ws)
        if message.WhichOneof("message") == kind:
            return message


async def _send(ws: trio_websocket.WebSocketConnection, **fields: object) -> None:
    await ws.send_message(pb.ServerMessage(**fields).SerializeToString())  # type: ignore[arg-type]


async def _register(ws: trio_websocket.WebSocketConnection, worker_id: str = "AW_1") -> None:
    assert (await _receive(ws)).register.agent_name == "support"
    await _send(ws, register=pb.RegisterWorkerResponse(worker_id=worker_id))


def _job(job_id: str = "AJ_1") -> pb.Job:
    return pb.Job(id=job_id, type=pb.JT_ROOM, room=models.Room(name="lobby"), agent_name="support")


async def _serve(nursery: trio.Nursery, *scripts: Script) -> tuple[int, list[bytes]]:
    """A fake server running ``scripts``, one per connection; its port and the auth headers."""
    remaining = list(scripts)
    authorizations: list[bytes] = []

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        authorizations.extend(v for k, v in request.headers if k.lower() == b"authorization")
        # Past its scripts the server is down: every handshake is refused.
        script = remaining.pop(0) if remaining else _unavailable
        if script is _unavailable:
            await request.reject(503, body=b"unavailable")
            return
        if script is _reject:
            await request.reject(401, body=b"unauthorized")
            return
        ws = await request.accept()
        await script(ws)

    server = await nursery.start(trio_websocket.serve_websocket, handler, "127.0.0.1", 0, None)
    return server.port, authorizations


async def _reject(ws: trio_websocket.WebSocketConnection) -> None:
    raise AssertionError("rejected before")


async def _unavailable(ws: trio_websocket.WebSocketConnection) -> None:
    raise AssertionError("rejected before")


async def test_statuses_every_2_5_s_bad_frames_skipped_and_a_job_end_reported(
    autojump_clock: trio.abc.Clock,
):
    seen: dict[str, object] = {}
    done = trio.Event()

    async def script(ws: trio_websocket.WebSocketConnection) -> None:
        await _register(ws)
        times = []
        for _ in range(3):
            update = (await _receive_kind(ws, "update_worker")).update_worker
            times.append(trio.current_time())
            assert (update.status, update.load) == (pb.WS_AVAILABLE, 0.25)
        seen["intervals"] = [b - a for a, b in itertools.pairwise(times)]
        await ws.send_message(b"\xff\xff")  # garbage
        await ws.send_message("a text frame")
        await ws.send_message(b"")  # an empty message
        await _send(ws, availability=pb.AvailabilityRequest(job=_job()))
        answer = (await _receive_kind(ws, "availability")).availability
        seen["answer"] = (answer.job_id, answer.available, answer.participant_identity)
        await _send(ws, assignment=pb.JobAssignment(job=_job(), token="tok"))
        update = (await _receive_kind(ws, "update_job")).update_job
        seen["update"] = (update.job_id, update.status, update.error)
        done.set()
        await trio.sleep_forever()

    launcher = Launcher()
    async with trio.open_nursery() as nursery:
        port, authorizations = await _serve(nursery, script)
        worker = Worker(_options(port), pool=launcher)
        await nursery.start(worker.run)
        await done.wait()
        worker.drain()
        nursery.cancel_scope.deadline = trio.current_time() + 10
    assert authorizations[0].startswith(b"Bearer ey")
    assert seen["intervals"] == [STATUS_INTERVAL, STATUS_INTERVAL]
    assert seen["answer"] == ("AJ_1", True, "agent-AJ_1")
    assert seen["update"] == ("AJ_1", pb.JS_FAILED, "boom")
    (info,) = launcher.jobs
    assert (info.token, info.url, info.worker_id) == ("tok", f"ws://127.0.0.1:{port}", "AW_1")


async def test_a_job_starting_and_ending_is_reported_at_once(autojump_clock: trio.abc.Clock):
    # The server picks among workers by their last reported load: a new job must not wait for
    # the next 2.5 s tick, or a burst of rooms lands on one worker.
    counts: list[tuple[float, int]] = []
    done = trio.Event()

    async def script(ws: trio_websocket.WebSocketConnection) -> None:
        await _register(ws)
        await _receive_kind(ws, "update_worker")
        await _send(ws, availability=pb.AvailabilityRequest(job=_job()))
        await _receive_kind(ws, "availability")
        await _send(ws, assignment=pb.JobAssignment(job=_job(), token="tok"))
        start = trio.current_time()
        while len(counts) < 2:
            update = (await _receive_kind(ws, "update_worker")).update_worker
            counts.append((trio.current_time() - start, update.job_count))
        done.set()
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        port, _ = await _serve(nursery, script)
        worker = Worker(_options(port), pool=Launcher())
        await nursery.start(worker.run)
        await done.wait()
        worker.drain()
        nursery.cancel_scope.deadline = trio.current_time() + 10
    # The launcher's job lasts 1 s.
    assert counts == [(0.0, 1), (1.0, 0)]
    # Offer, answer and assignment take no virtual time: the job started at once.
    assert (worker.job_start_count, worker.job_start_seconds_sum) == (1, 0.0)


async def test_a_request_fnc_that_never_answers_rejects_at_its_timeout(
    autojump_clock: trio.abc.Clock,
):
    seen: dict[str, object] = {}
    done = trio.Event()

    async def request_fnc(request: JobRequest) -> None:
        await trio.sleep_forever()

    async def script(ws: trio_websocket.WebSocketConnection) -> None:
        await _register(ws)
        start = trio.current_time()
        await _send(ws, availability=pb.AvailabilityRequest(job=_job()))
        answer = (await _receive_kind(ws, "availability")).availability
        seen["answer"] = (answer.available, trio.current_time() - start)
        done.set()
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        port, _ = await _serve(nursery, script)
        worker = Worker(_options(port, request_fnc=request_fnc), pool=Launcher())
        await nursery.start(worker.run)
        await done.wait()
        worker.drain()
        nursery.cancel_scope.deadline = trio.current_time() + 10
    assert seen["answer"] == (False, REQUEST_TIMEOUT)
    assert worker.jobs_rejected == 1


async def test_retries_with_backoff_then_gives_up(autojump_clock: trio.abc.Clock):
    port = free_loopback_port()  # nothing listens there
    worker = Worker(_options(port, max_retry=3), pool=Launcher())
    start = trio.current_time()
    with pytest.RaisesGroup(
        pytest.RaisesExc(APIConnectionError, match="after 3 retries"), flatten_subgroups=True
    ):
        await worker.run()
    # Delays of 0.5, 1 and 2 s, each with jitter down to half.
    assert 0.5 * 3.5 <= trio.current_time() - start <= 3.5


async def test_a_refused_token_fails_at_once(autojump_clock: trio.abc.Clock):
    async with trio.open_nursery() as nursery:
        port, _ = await _serve(nursery, _reject)
        worker = Worker(_options(port), pool=Launcher())
        start = trio.current_time()
        with pytest.RaisesGroup(
            pytest.RaisesExc(APIConnectionError, match=r"refused the worker's token \(401\)"),
            flatten_subgroups=True,
        ):
            await worker.run()
        assert trio.current_time() - start == 0
        nursery.cancel_scope.cancel()


async def test_reconnects_when_the_server_closes_and_keeps_the_job(autojump_clock: trio.abc.Clock):
    async def first(ws: trio_websocket.WebSocketConnection) -> None:
        await _register(ws, "AW_1")
        await _send(ws, availability=pb.AvailabilityRequest(job=_job()))
        await _receive_kind(ws, "availability")
        await _send(ws, assignment=pb.JobAssignment(job=_job(), token="tok"))
        await ws.aclose()

    registered_again = trio.Event()

    async def second(ws: trio_websocket.WebSocketConnection) -> None:
        await _register(ws, "AW_2")
        registered_again.set()
        await trio.sleep_forever()

    launcher = Launcher()
    async with trio.open_nursery() as nursery:
        port, _ = await _serve(nursery, first, second)
        worker = Worker(_options(port), pool=launcher)
        await nursery.start(worker.run)
        await registered_again.wait()
        await worker.wait_registered()
        assert worker.worker_id == "AW_2"
        assert worker.registrations == 2
        assert [job.job.id for job in worker.active_jobs] == ["AJ_1"]
        worker.drain()
        nursery.cancel_scope.deadline = trio.current_time() + 10
    assert worker.jobs_failed == 1  # the launcher's job ended as it said ("boom")


def test_the_default_load_is_the_cpu_use_averaged_over_the_last_samples(tmp_path):
    from tvoice.job._cpu_load import LOAD_SAMPLES, CpuLoad

    stat = tmp_path / "stat"
    cpu = CpuLoad(str(stat))
    # user nice system idle iowait irq softirq steal: busy 75 of each 100 jiffies, then idle.
    for step in range(LOAD_SAMPLES + 1):
        stat.write_text(f"cpu  {75 * step} 0 0 {25 * step} 0 0 0 0 0 0\ncpu0 1 2 3 4\n")
        cpu.sample()
    assert cpu.value == 0.75
    busy, idle = 75 * LOAD_SAMPLES, 25 * LOAD_SAMPLES
    for _ in range(LOAD_SAMPLES):
        idle += 100
        stat.write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\n")
        cpu.sample()
    assert cpu.value == 0.0


def test_an_unreadable_proc_stat_means_load_zero(tmp_path, caplog):
    from tvoice.job._cpu_load import CpuLoad

    cpu = CpuLoad(str(tmp_path / "missing"))
    cpu.sample()
    cpu.sample()
    assert cpu.value == 0.0
    assert caplog.text.count("cannot read the CPU load") == 1


async def test_a_repeated_offer_for_a_pending_job_is_refused_and_ends_nothing(
    autojump_clock: trio.abc.Clock,
):
    answers: list[tuple[str, bool]] = []
    done = trio.Event()

    async def script(ws: trio_websocket.WebSocketConnection) -> None:
        await _register(ws)
        # A running job, which nothing about another job's offers may end.
        await _send(ws, availability=pb.AvailabilityRequest(job=_job("AJ_0")))
        await _receive_kind(ws, "availability")
        await _send(ws, assignment=pb.JobAssignment(job=_job("AJ_0"), token="tok"))
        # The same offer twice while the first waits for its assignment.
        for _ in range(2):
            await _send(ws, availability=pb.AvailabilityRequest(job=_job()))
            answer = (await _receive_kind(ws, "availability")).availability
            answers.append((answer.job_id, answer.available))
        await _send(ws, assignment=pb.JobAssignment(job=_job(), token="tok"))
        # Past the assignment timeout of both offers.
        await trio.sleep(10)
        done.set()
        await trio.sleep_forever()

    launcher = SlowLauncher()
    async with trio.open_nursery() as nursery:
        port, _ = await _serve(nursery, script)
        worker = Worker(_options(port), pool=launcher)
        await nursery.start(worker.run)
        await done.wait()
        assert worker.connected
        assert sorted(job.job.id for job in worker.active_jobs) == ["AJ_0", "AJ_1"]
        assert launcher.cancelled == []
        worker.drain()
        nursery.cancel_scope.deadline = trio.current_time() + 10
    assert answers == [("AJ_1", True), ("AJ_1", False)]
    assert [job.job.id for job in launcher.jobs] == ["AJ_0", "AJ_1"]


class SlowLauncher(Launcher):
    """Jobs that run until cancelled (a drain), recording which were cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.cancelled: list[str] = []

    async def run_job(
        self, info: RunningJobInfo, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> JobResult:
        self.jobs.append(info)
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            self.cancelled.append(info.job.id)


async def test_giving_up_on_the_server_drains_the_running_jobs(autojump_clock: trio.abc.Clock):
    # The server goes away for good with a call running: the call goes on to its end, then
    # the worker reports the lost server.
    async def script(ws: trio_websocket.WebSocketConnection) -> None:
        await _register(ws)
        await _send(ws, availability=pb.AvailabilityRequest(job=_job()))
        await _receive_kind(ws, "availability")
        await _send(ws, assignment=pb.JobAssignment(job=_job(), token="tok"))
        await _receive_kind(ws, "update_worker")
        await ws.aclose()

    launcher = Launcher(duration=60.0)
    async with trio.open_nursery() as nursery:
        port, _ = await _serve(nursery, script)
        worker = Worker(_options(port, max_retry=3, drain_timeout=600.0), pool=launcher)
        start = trio.current_time()
        with pytest.RaisesGroup(
            pytest.RaisesExc(APIConnectionError, match="after 3 retries"), flatten_subgroups=True
        ):
            await worker.run()
        nursery.cancel_scope.cancel()
    assert trio.current_time() - start == 60.0
    assert worker.draining
    assert (worker.jobs_started, worker.jobs_failed) == (1, 1)  # the launcher's "boom", at 60 s


async def test_a_job_with_metadata_over_a_mebibyte_reaches_the_launcher(
    autojump_clock: trio.abc.Clock,
):
    # A server configured for larger metadata than its 512 KiB default: its offer and its
    # assignment are larger than trio-websocket's default message limit of 1 MiB.
    metadata = "語" * 400_000  # 1.2 MB of UTF-8
    done = trio.Event()

    async def script(ws: trio_websocket.WebSocketConnection) -> None:
        await _register(ws)
        job = _job()
        job.metadata = metadata
        await _send(ws, availability=pb.AvailabilityRequest(job=job))
        await _receive_kind(ws, "availability")
        await _send(ws, assignment=pb.JobAssignment(job=job, token="tok"))
        await _receive_kind(ws, "update_job")
        done.set()
        await trio.sleep_forever()

    launcher = Launcher()
    async with trio.open_nursery() as nursery:
        port, _ = await _serve(nursery, script)
        worker = Worker(_options(port), pool=launcher)
        await nursery.start(worker.run)
        await done.wait()
        worker.drain()
        nursery.cancel_scope.deadline = trio.current_time() + 10
    assert [info.job.metadata for info in launcher.jobs] == [metadata]
    assert worker.registrations == 1


async def test_no_secret_reaches_a_log_or_a_repr(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
):
    # An assignment where the registration answer should be: the worker logs what it got.
    async def confused(ws: trio_websocket.WebSocketConnection) -> None:
        await _receive(ws)
        await _send(ws, assignment=pb.JobAssignment(job=_job(), token="ROOM-TOKEN"))
        await trio.sleep_forever()

    async def script(ws: trio_websocket.WebSocketConnection) -> None:
        await _register(ws)
        await trio.sleep_forever()

    caplog.set_level(logging.DEBUG)
    async with trio.open_nursery() as nursery:
        port, _ = await _serve(nursery, confused, script)
        options = _options(port, api_secret="S3CR3T")
        worker = Worker(options, pool=Launcher())
        await nursery.start(worker.run)
        worker.drain()
        nursery.cancel_scope.deadline = trio.current_time() + 10
    assert "expected the registration answer, got JobAssignment(" in caplog.text
    info = RunningJobInfo(job=JobInfo(id="AJ_1", room_name="r"), url="ws://x", token="ROOM-TOKEN")
    texts = [caplog.text, repr(options), repr(info), repr(p.decode(_assignment("ROOM-TOKEN")))]
    assert not [text for text in texts if "ROOM-TOKEN" in text or "S3CR3T" in text]


def _assignment(token: str) -> bytes:
    message = pb.ServerMessage(assignment=pb.JobAssignment(job=_job(), token=token))
    return message.SerializeToString()


async def test_a_job_status_unsent_while_disconnected_is_sent_after_reconnecting(
    autojump_clock: trio.abc.Clock,
):
    async def first(ws: trio_websocket.WebSocketConnection) -> None:
        await _register(ws, "AW_1")
        await _send(ws, availability=pb.AvailabilityRequest(job=_job()))
        await _receive_kind(ws, "availability")
        await _send(ws, assignment=pb.JobAssignment(job=_job(), token="tok"))
        await ws.aclose()  # the job (0.1 s) ends before the worker connects again

    updates: list[tuple[str, int, str]] = []
    done = trio.Event()

    async def second(ws: trio_websocket.WebSocketConnection) -> None:
        await _register(ws, "AW_2")
        update = (await _receive_kind(ws, "update_job")).update_job
        updates.append((update.job_id, update.status, update.error))
        done.set()
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        port, _ = await _serve(nursery, first, second)
        worker = Worker(_options(port), pool=Launcher(duration=0.1))
        await nursery.start(worker.run)
        with trio.fail_after(30):
            await done.wait()
        worker.drain()
        nursery.cancel_scope.deadline = trio.current_time() + 10
    assert updates == [("AJ_1", pb.JS_FAILED, "boom")]


def test_under_a_cgroup_cpu_limit_the_load_is_the_share_of_that_limit(tmp_path):
    from tvoice.job._cpu_load import LOAD_SAMPLE_INTERVAL, CpuLoad

    stat, cgroup = tmp_path / "stat", tmp_path / "cgroup"
    cgroup.mkdir()
    stat.write_text("cpu  0 0 0 0 0 0 0 0 0 0\n")  # the machine: never changes, "idle"
    (cgroup / "cpu.max").write_text("50000 100000\n")  # half a CPU
    cpu = CpuLoad(str(stat), cgroup=str(cgroup))
    for step in range(4):
        # A quarter of a CPU: half of the limit.
        usage = step * int(LOAD_SAMPLE_INTERVAL * 250_000)
        (cgroup / "cpu.stat").write_text(f"usage_usec {usage}\nuser_usec {usage}\n")
        cpu.sample(now=step * LOAD_SAMPLE_INTERVAL)
    assert cpu.value == 0.5
    # No limit: the machine's load, from /proc/stat.
    (cgroup / "cpu.max").write_text("max 100000\n")
    unlimited = CpuLoad(str(stat), cgroup=str(cgroup))
    for step in range(3):
        stat.write_text(f"cpu  {75 * step} 0 0 {25 * step} 0 0 0 0 0 0\n")
        unlimited.sample(now=step * LOAD_SAMPLE_INTERVAL)
    assert unlimited.value == 0.75


async def test_a_lost_server_is_left_for_the_next_of_the_fallback_urls(
    autojump_clock: trio.abc.Clock,
):
    async def first(ws: trio_websocket.WebSocketConnection) -> None:
        await _register(ws, "AW_1")
        await _send(ws, availability=pb.AvailabilityRequest(job=_job("AJ_1")))
        await _receive_kind(ws, "availability")
        await _send(ws, assignment=pb.JobAssignment(job=_job("AJ_1"), token="tok"))
        await ws.aclose()  # the node is lost; past its script it refuses every handshake

    async def second(ws: trio_websocket.WebSocketConnection) -> None:
        await _register(ws, "AW_2")
        await _send(ws, availability=pb.AvailabilityRequest(job=_job("AJ_2")))
        await _receive_kind(ws, "availability")
        await _send(ws, assignment=pb.JobAssignment(job=_job("AJ_2"), token="tok"))
        await trio.sleep_forever()

    class TwoJobs(Launcher):
        second_job = trio.Event()

        async def run_job(
            self,
            info: RunningJobInfo,
            *,
            task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
        ) -> JobResult:
            if self.jobs:
                self.second_job.set()
            return await super().run_job(info, task_status=task_status)

    launcher = TwoJobs(duration=60.0)
    async with trio.open_nursery() as nursery:
        port_a, _ = await _serve(nursery, first)
        port_b, _ = await _serve(nursery, second)
        url_a, url_b = f"ws://127.0.0.1:{port_a}", f"ws://127.0.0.1:{port_b}"
        worker = Worker(_options(port_a, fallback_urls=[url_b]), pool=launcher)
        await nursery.start(worker.run)
        assert worker.server_url == url_a
        with trio.fail_after(5):
            await launcher.second_job.wait()
        assert (worker.worker_id, worker.registrations, worker.server_url) == ("AW_2", 2, url_b)
        # Each job joins its room through the node that assigned it; the first keeps running.
        assert [(job.job.id, job.url) for job in launcher.jobs] == [
            ("AJ_1", url_a),
            ("AJ_2", url_b),
        ]
        assert sorted(job.job.id for job in worker.active_jobs) == ["AJ_1", "AJ_2"]
        worker.drain()
        nursery.cancel_scope.deadline = trio.current_time() + 10


async def test_a_worker_starts_on_a_fallback_url_and_gives_up_on_all_of_them(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
):
    registered = trio.Event()

    async def only(ws: trio_websocket.WebSocketConnection) -> None:
        await _register(ws, "AW_1")
        registered.set()
        await ws.aclose()

    dead = f"ws://127.0.0.1:{free_loopback_port()}"  # nothing listens there
    async with trio.open_nursery() as nursery:
        port, _ = await _serve(nursery, only)
        live = f"ws://127.0.0.1:{port}"
        worker = Worker(
            _options(0, ws_url=dead, fallback_urls=(live,), max_retry=3), pool=Launcher()
        )
        start = trio.current_time()
        gives_up = pytest.RaisesGroup(
            pytest.RaisesExc(APIConnectionError, match=f"any of {dead}, {live} after 3"),
            flatten_subgroups=True,
        )
        with caplog.at_level(logging.WARNING, "tvoice.worker"), gives_up:
            await worker.run()
        assert registered.is_set()
        assert worker.server_url == live
        # One failed attempt at the dead URL (0.25-0.5 s of backoff), then the live one.
        assert 0 < trio.current_time() - start < 10
        nursery.cancel_scope.cancel()
    assert f"connecting to {live}/agent in" in caplog.text
    assert f"{dead}: " in caplog.text
