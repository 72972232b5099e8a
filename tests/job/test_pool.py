"""The process pool with real job processes: warm starts, failures of every kind, clean closing.

These run real subprocesses on the real clock: every wait is bounded and the timeouts are small.
"""

import importlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tvoice.job import JobInfo, WorkerOptions
from tvoice.job._ipc import (
    InitializeProcess,
    MessageStream,
    ProcessReady,
    ShutdownJob,
)
from tvoice.job._pool import JobResult, ProcessPool, RunningJobInfo

AGENTS = Path(__file__).parent / "agents"
SCRIPTED = str(AGENTS / "scripted.py")


async def _never(ctx):  # the pool's options carry settings; entrypoints come from the file
    raise AssertionError("not called in the worker")


def make_pool(target=SCRIPTED, *, idle=1, **settings):
    options = WorkerOptions(
        entrypoint_fnc=_never,
        num_idle_processes=idle,
        shutdown_timeout=settings.pop("shutdown_timeout", 1.0),
        initialize_process_timeout=settings.pop("initialize_process_timeout", 10.0),
        job_memory_limit_mb=settings.pop("job_memory_limit_mb", 0.0),
        job_memory_warn_mb=settings.pop("job_memory_warn_mb", 500.0),
    )
    settings.setdefault("ping_interval", 0.2)
    settings.setdefault("ping_timeout", 5.0)
    settings.setdefault("memory_interval", 0.1)
    return ProcessPool(target=target, options=options, **settings)


def job(job_id="job-1", **spec):
    return RunningJobInfo(
        job=JobInfo(id=job_id, room_name="room-1", metadata=json.dumps(spec)),
        url="",
        token="",
    )


async def wait_until(predicate, *, step=0.02):
    while not predicate():  # noqa: ASYNC110 - the state of other processes, polled
        await trio.sleep(step)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def start_job(nursery, pool, info):
    """Start run_job in `nursery`; returns a one-slot box that gets the JobResult."""
    box = []

    async def run(task_status=trio.TASK_STATUS_IGNORED):
        box.append(await pool.run_job(info, task_status=task_status))

    await nursery.start(run)
    return box


async def test_a_job_runs_in_a_warm_process_with_its_prewarm(tmp_path, monkeypatch):
    log = tmp_path / "prewarm.log"
    monkeypatch.setenv("TVOICE_TEST_PREWARM_LOG", str(log))
    pool = make_pool(idle=2)
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            await wait_until(lambda: pool.statistics().idle_processes == 2)
            warm = set(pool.statistics().pids)
            await wait_until(lambda: len(pool.statistics().memory_mb) == 2)
            assert all(20 < mb < 200 for mb in pool.statistics().memory_mb.values())
            async with trio.open_nursery() as jobs:
                t0 = trio.current_time()
                first = await start_job(jobs, pool, job("a", out=str(tmp_path / "a.json")))
                took = trio.current_time() - t0
            second = await pool.run_job(job("b", out=str(tmp_path / "b.json")))
            # Used processes are replaced: the pool is warm again.
            await wait_until(lambda: pool.statistics().idle_processes == 2)
            assert not warm & set(pool.statistics().pids)
            nursery.cancel_scope.cancel()
    assert first == [second] == [JobResult(success=True)]
    seen = [json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab"]
    # Each job ran in one of the warm processes, each its own, with that process's userdata.
    assert {s["pid"] for s in seen} == warm
    assert all(s["userdata"] == {"prewarmed_in": s["pid"]} for s in seen)
    # trio runs as the guest of an asyncio host where the LiveKit bridge exists.
    bridge = hasattr(importlib.import_module("tvoice.livekit"), "run_with_asyncio_host")
    assert all(s["bridged"] == bridge for s in seen)
    # Prewarm ran once in each process (the two warm ones and the two replacements).
    pids = log.read_text().split()
    assert len(pids) == len(set(pids)) == 4
    assert took < 1.0  # warm: no start, import or prewarm on the job's path


async def test_a_failing_entrypoint_fails_its_job(caplog):
    pool = make_pool(idle=0)
    with trio.fail_after(30):  # a deadlock guard: cold starts on a busy machine take seconds
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            result = await pool.run_job(job(action="raise"))
            ok = await pool.run_job(job(action="return"))
            nursery.cancel_scope.cancel()
    assert result == JobResult(success=False, error="RuntimeError: boom")
    assert ok.success


async def test_with_no_warm_process_a_job_starts_one():
    pool = make_pool(idle=0)
    with trio.fail_after(30):  # a deadlock guard: cold starts on a busy machine take seconds
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            assert pool.statistics().pids == ()
            result = await pool.run_job(job())
            nursery.cancel_scope.cancel()
    assert result.success


async def test_cancelling_a_job_shuts_it_down_gracefully(tmp_path):
    pool = make_pool(idle=0, shutdown_timeout=5.0)
    callback = tmp_path / "callback.json"
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as jobs:
                    await start_job(jobs, pool, job(action="wait", callback_out=str(callback)))
                    assert pool.active_jobs == 1
                    (pid,) = pool.statistics().job_pids.values()
                    t0 = trio.current_time()
                    scope.cancel()
            took = trio.current_time() - t0
            assert pool.active_jobs == 0
            nursery.cancel_scope.cancel()
    assert took < 2.0  # ended by itself, well before the shutdown timeout
    assert json.loads(callback.read_text()) == {"reason": "job cancelled by the worker"}
    assert not alive(pid)


async def test_a_job_that_ignores_shutdown_is_killed_at_the_timeout():
    pool = make_pool(idle=0, shutdown_timeout=1.0)
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as jobs:
                    await start_job(jobs, pool, job(action="hang"))
                    (pid,) = pool.statistics().job_pids.values()
                    t0 = trio.current_time()
                    scope.cancel()
            took = trio.current_time() - t0
            assert not alive(pid)
            nursery.cancel_scope.cancel()
    assert 1.0 <= took < 3.0


async def test_a_job_over_the_memory_limit_is_killed(caplog):
    pool = make_pool(idle=0, job_memory_limit_mb=150, job_memory_warn_mb=120)
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            result = await pool.run_job(job(action="alloc", mb=200))
            nursery.cancel_scope.cancel()
    assert not result.success
    assert "over the memory limit of 150 MB: killed" in result.error
    assert "warning above 120 MB" in caplog.text


async def test_a_sigkilled_job_fails_and_the_pool_keeps_serving(tmp_path):
    pool = make_pool(idle=1)
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            async with trio.open_nursery() as jobs:
                box = await start_job(jobs, pool, job(action="wait", callback_out="/dev/null"))
                (pid,) = pool.statistics().job_pids.values()
                os.kill(pid, signal.SIGKILL)
            after = await pool.run_job(job("next", out=str(tmp_path / "next.json")))
            nursery.cancel_scope.cancel()
    assert box == [JobResult(success=False, error="job process exited with signal SIGKILL")]
    assert after.success
    assert json.loads((tmp_path / "next.json").read_text())["pid"] != pid


async def test_a_killed_idle_process_is_replaced(caplog):
    pool = make_pool(idle=1)
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            await wait_until(lambda: pool.statistics().idle_processes == 1)
            (pid,) = pool.statistics().pids
            os.kill(pid, signal.SIGKILL)
            await wait_until(lambda: pool.statistics().pids not in ((), (pid,)))
            result = await pool.run_job(job())
            nursery.cancel_scope.cancel()
    assert f"idle job process exited with signal SIGKILL (pid {pid}); starting another" in (
        caplog.text
    )
    assert result.success


async def test_an_unresponsive_process_is_killed():
    pool = make_pool(idle=0, ping_interval=0.1, ping_timeout=0.5)
    with trio.fail_after(30):  # a deadlock guard: cold starts on a busy machine take seconds
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            result = await pool.run_job(job(action="block"))
            nursery.cancel_scope.cancel()
    assert not result.success
    assert result.error.startswith("job process unresponsive for")


async def test_a_process_that_sends_garbage_is_killed():
    pool = make_pool(idle=0)
    with trio.fail_after(30):  # a deadlock guard: cold starts on a busy machine take seconds
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            result = await pool.run_job(job(action="garbage"))
            nursery.cancel_scope.cancel()
    assert not result.success
    assert result.error.startswith("job process sent garbage: a message of 4294967295 bytes")


async def test_a_process_that_does_not_initialize_in_time_is_killed_and_replaced(caplog):
    pool = make_pool(str(AGENTS / "slow_prewarm.py"), idle=1, initialize_process_timeout=1.0)
    with trio.fail_after(30):  # a deadlock guard: cold starts on a busy machine take seconds
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            await wait_until(lambda: "did not initialize within 1 s" in caplog.text)
            first = set(pool.statistics().pids)
            await wait_until(lambda: pool.statistics().pids and pool.statistics().pids != first)
            nursery.cancel_scope.cancel()
    assert all(not alive(pid) for pid in first)


async def test_a_job_takes_whichever_process_warms_first(tmp_path, monkeypatch):
    # On a busy machine the process started for a job may warm slower than one already warming
    # for the idle pool: the job takes the first warm one; its own is not waited for.
    claim = tmp_path / "claim"
    monkeypatch.setenv("TVOICE_TEST_PREWARM_CLAIM", str(claim))
    pool = make_pool(str(AGENTS / "one_fast_prewarm.py"), idle=1, initialize_process_timeout=4.0)
    out = tmp_path / "job.pid"
    info = RunningJobInfo(
        job=JobInfo(id="job-1", room_name="room-1", metadata=str(out)), url="", token=""
    )
    with trio.fail_after(30):  # a deadlock guard: cold starts on a busy machine take seconds
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            # The idle pool's process claimed the fast prewarm; the job's own one will not.
            await wait_until(lambda: claim.exists() and claim.read_text())
            assert pool.statistics().idle_processes == 0
            t0 = trio.current_time()
            result = await pool.run_job(info)
            took = trio.current_time() - t0
            nursery.cancel_scope.cancel()
    assert result == JobResult(success=True)
    assert out.read_text() == claim.read_text()
    assert took < 3.5  # not the job's own process's 4 s timeout (its prewarm takes 1 s)


async def test_a_job_fails_if_its_process_cannot_initialize():
    pool = make_pool(str(AGENTS / "bad_prewarm.py"), idle=0)
    missing = make_pool(str(AGENTS / "missing.py"), idle=0)
    with trio.fail_after(30):  # a deadlock guard: cold starts on a busy machine take seconds
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            await nursery.start(missing.run)
            result = await pool.run_job(job())
            no_file = await missing.run_job(job())
            nursery.cancel_scope.cancel()
    assert result == JobResult(
        success=False, error="job process failed to initialize: ValueError: no model here"
    )
    assert not no_file.success
    assert "no such agent file" in no_file.error


async def test_closing_the_pool_stops_every_process(tmp_path):
    pool = make_pool(idle=2, shutdown_timeout=5.0)
    callback = tmp_path / "callback.json"
    with trio.fail_after(15):
        async with trio.open_nursery() as jobs:
            async with trio.open_nursery() as nursery:
                await nursery.start(pool.run)
                box = await start_job(jobs, pool, job(action="wait", callback_out=str(callback)))
                await wait_until(lambda: pool.statistics().idle_processes == 2)
                pids = pool.statistics().pids
                assert len(pids) == 3
                t0 = trio.current_time()
                nursery.cancel_scope.cancel()
            took = trio.current_time() - t0
    assert took < 2.0
    assert not any(alive(pid) for pid in pids)  # reaped, not zombies
    # The running job was shut down gracefully: its callbacks ran, it ended well.
    assert box == [JobResult(success=True)]
    assert json.loads(callback.read_text()) == {"reason": "worker closing"}


async def test_a_process_that_cannot_start_fails_its_job(caplog):
    pool = make_pool(idle=0, python="/nonexistent/python")
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            result = await pool.run_job(job())
            nursery.cancel_scope.cancel()
    assert not result.success
    assert result.error.startswith("cannot start a job process: FileNotFoundError")


async def test_run_job_needs_a_running_pool():
    with pytest.raises(RuntimeError, match=r"start ProcessPool\.run first"):
        await make_pool().run_job(job())


# -- the job process on its own --------------------------------------------------------------


def spawn_child():
    parent, child = socket.socketpair()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tvoice.job._child", str(child.fileno())],
        pass_fds=(child.fileno(),),
        stderr=subprocess.PIPE,
        text=True,
    )
    child.close()
    return parent, proc


async def test_the_job_process_refuses_garbage():
    parent, proc = spawn_child()
    with parent:
        parent.sendall(b"\x00\x00\x00\x05hello")
        _, err = await trio.to_thread.run_sync(proc.communicate, None, 10)
    assert proc.returncode == 2
    assert "the worker sent garbage: a message is not valid JSON" in err


async def test_the_job_process_exits_when_told_before_any_job():
    parent, proc = spawn_child()
    stream = MessageStream(trio.SocketStream(trio.socket.from_stdlib_socket(parent)))
    with trio.fail_after(30):  # a deadlock guard: cold starts on a busy machine take seconds
        await stream.send(InitializeProcess(target=SCRIPTED, log_level=logging.WARNING))
        assert await stream.receive() == ProcessReady()
        await stream.send(ShutdownJob(reason="bye"))
        assert (await stream.receive()).reason == "bye"
        assert await stream.receive() is None
        await stream.aclose()
        await trio.to_thread.run_sync(proc.communicate, None, 10)
    assert proc.returncode == 0


def test_the_job_process_wants_its_socket():
    done = subprocess.run(
        [sys.executable, "-m", "tvoice.job._child"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "usage" in done.stderr


async def test_metadata_as_large_as_the_server_accepts_reaches_the_job(tmp_path):
    # 174,700 CJK characters: 524 KB of UTF-8, under the LiveKit server's 512 KiB default limit.
    metadata = json.dumps(
        {"out": str(tmp_path / "big.json"), "pad": "語" * 174_700}, ensure_ascii=False
    )
    token = "t" * 1000  # about the size of a room token with its grants
    info = RunningJobInfo(
        job=JobInfo(id="big", room_name="r", metadata=metadata), url="", token=token
    )
    pool = make_pool(idle=0)
    with trio.fail_after(30):  # a deadlock guard: cold starts on a busy machine take seconds
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            result = await pool.run_job(info)
            nursery.cancel_scope.cancel()
    assert result == JobResult(success=True)
    assert json.loads((tmp_path / "big.json").read_text())["metadata_chars"] == len(metadata)


async def test_a_job_too_large_for_its_process_fails_alone(tmp_path):
    huge = RunningJobInfo(
        job=JobInfo(id="huge", room_name="r", metadata="\x01" * (4 << 20)), url="", token=""
    )
    pool = make_pool(idle=1)
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            failed = await pool.run_job(huge)
            after = await pool.run_job(job("next", out=str(tmp_path / "next.json")))
            nursery.cancel_scope.cancel()
    assert not failed.success
    assert failed.error.startswith("cannot hand the job to its process: StartJob is")
    assert after.success


async def test_a_long_error_text_is_cut_and_the_job_fails_with_it():
    pool = make_pool(idle=0)
    with trio.fail_after(30):  # a deadlock guard: cold starts on a busy machine take seconds
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            result = await pool.run_job(job(action="raise_long"))
            nursery.cancel_scope.cancel()
    assert not result.success
    assert result.error.startswith("RuntimeError: boom boom")
    assert result.error.endswith("(2500014 characters in all)")
    assert len(result.error) < 5000


async def test_a_job_that_uses_its_whole_shutdown_budget_is_not_killed(tmp_path, caplog):
    # The job process counts shutdown_timeout from the ShutdownJob it receives, and ends
    # everything by then (its callback cancelled at that deadline); the pool must not kill it
    # at the same instant, measured from its own, earlier, sending.
    pool = make_pool(idle=0, shutdown_timeout=1.0)
    callback = tmp_path / "callback.json"
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as jobs:
                    spec = {"action": "slow_shutdown", "callback_out": str(callback)}
                    await start_job(jobs, pool, job(**spec))
                    (pid,) = pool.statistics().job_pids.values()
                    scope.cancel()
            nursery.cancel_scope.cancel()
    assert json.loads(callback.read_text()) == {"reason": "job cancelled by the worker"}
    assert "killed" not in caplog.text
    assert not alive(pid)


async def test_a_job_handed_to_an_idle_process_that_just_died_runs_in_another(tmp_path):
    pool = make_pool(idle=1)
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            await wait_until(lambda: pool.statistics().idle_processes == 1)
            (pid,) = pool.statistics().pids
            os.kill(pid, signal.SIGKILL)  # the pool has not seen it die yet
            result = await pool.run_job(job(out=str(tmp_path / "out.json")))
            nursery.cancel_scope.cancel()
    assert result == JobResult(success=True)
    assert json.loads((tmp_path / "out.json").read_text())["pid"] != pid


def gone(pid):
    """Exited (a zombie waiting for whoever adopted it counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


async def test_a_job_process_dies_with_its_worker():
    # The worker is killed while its job process hangs with its socket still open elsewhere
    # (here: in the test), so no end of stream tells it: the kernel must.
    parent, child = socket.socketpair()
    fd = child.fileno()
    worker = (
        "import os, subprocess, sys\n"
        f"p = subprocess.Popen([sys.executable, '-m', 'tvoice.job._child', '{fd}'],"
        f" pass_fds=({fd},), stdout=subprocess.DEVNULL,"
        " env={**os.environ, 'TVOICE_WORKER_PID': str(os.getpid())})\n"
        "print(p.pid, flush=True)\n"
        "import time; time.sleep(1)\n"  # the job process is up, its signal set
        "os.kill(os.getpid(), 9)\n"
    )
    with parent:
        done = await trio.run_process(
            [sys.executable, "-c", worker],
            pass_fds=(fd,),
            capture_stdout=True,
            check=False,
            cwd=Path(__file__).parents[2],
        )
        child.close()
        pid = int(done.stdout)
        with trio.move_on_after(10):
            await wait_until(lambda: gone(pid))
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)
            raise AssertionError("the job process outlived its worker")
