"""run_job: a job's lifetime on the virtual clock - ends, failures, shutdown, bounded cleanup."""

import pytest
import trio

from tvoice.io import SessionRoom
from tvoice.job import JobContext, JobInfo, JobProcess, WorkerOptions
from tvoice.job._lifetime import run_job


class Room(SessionRoom):
    def __init__(self, *, disconnect_takes=0.0, closes_at=None):
        self.disconnect_takes = disconnect_takes
        self.closes_at = closes_at
        self.left_at = None

    async def wait_closed(self):
        if self.closes_at is None:
            await trio.sleep_forever()
        await trio.sleep_until(self.closes_at)

    async def disconnect(self):
        await trio.sleep(self.disconnect_takes)
        self.left_at = trio.current_time()

    async def run_session_io(self, session, *, task_status=trio.TASK_STATUS_IGNORED):
        raise NotImplementedError


def make(entrypoint, *, shutdown_timeout=5.0, **room):
    options = WorkerOptions(entrypoint_fnc=entrypoint, shutdown_timeout=shutdown_timeout)
    ctx = JobContext(proc=JobProcess(), job=JobInfo(id="j", room_name="r"), room=Room(**room))
    return options, ctx


async def test_the_job_ends_when_the_entrypoint_returns(autojump_clock):
    done = []

    async def entrypoint(ctx):
        ctx.add_shutdown_callback(lambda: _note(done, "callback"))
        await trio.sleep(2)

    options, ctx = make(entrypoint)
    await run_job(options, ctx)
    assert done == [("callback", 2.0)]
    assert ctx.room.left_at == 2.0
    assert ctx.shutdown_reason == "entrypoint returned"


async def test_the_job_ends_when_the_room_closes_under_it(autojump_clock):
    # The room deleted while the entrypoint waits for a participant who never comes.
    cancelled = []

    async def entrypoint(ctx):
        try:
            await trio.sleep_forever()
        finally:
            cancelled.append(trio.current_time())

    options, ctx = make(entrypoint, closes_at=4.0)
    await run_job(options, ctx)
    assert cancelled == [4.0]
    assert ctx.shutdown_reason == "the room closed"
    assert ctx.room.left_at == 4.0


async def _note(done, what):
    done.append((what, trio.current_time()))


async def test_shutdown_cancels_the_entrypoint(autojump_clock):
    cancelled = []

    async def entrypoint(ctx):
        try:
            await trio.sleep_forever()
        finally:
            cancelled.append(trio.current_time())

    options, ctx = make(entrypoint)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_job, options, ctx)
        await trio.sleep(3)
        ctx.shutdown("participant left")
    assert cancelled == [3.0]
    assert ctx.shutdown_reason == "participant left"
    assert ctx.room.left_at == 3.0


async def test_an_entrypoint_error_is_raised_after_the_cleanup(autojump_clock, caplog):
    done = []

    async def entrypoint(ctx):
        ctx.add_shutdown_callback(lambda: _note(done, "callback"))
        await trio.sleep(1)
        raise KeyError("no such thing")

    options, ctx = make(entrypoint)
    with pytest.raises(KeyError, match="no such thing"):
        await run_job(options, ctx)
    assert done == [("callback", 1.0)]
    assert ctx.room.left_at == 1.0
    assert ctx.shutdown_reason == "entrypoint failed"
    assert "the entrypoint failed" in caplog.text


async def test_hung_callbacks_and_a_hung_room_are_bounded(autojump_clock):
    async def hang():
        await trio.sleep_forever()

    async def entrypoint(ctx):
        ctx.add_shutdown_callback(hang)

    options, ctx = make(entrypoint, shutdown_timeout=2.0, disconnect_takes=100.0)
    await run_job(options, ctx)
    # The callbacks used the whole timeout; leaving the room still got its moment.
    assert trio.current_time() == 2.5
    assert ctx.room.left_at is None


async def test_cancelling_the_runner_still_cleans_up(autojump_clock):
    done = []

    async def entrypoint(ctx):
        ctx.add_shutdown_callback(lambda: _note(done, "callback"))
        await trio.sleep_forever()

    options, ctx = make(entrypoint)
    with trio.move_on_after(4):
        await run_job(options, ctx)
    assert done == [("callback", 4.0)]
    assert ctx.room.left_at == 4.0
    assert ctx.shutdown_reason == "job cancelled"


async def test_one_deadline_from_the_shutdown_request_covers_the_whole_shutdown(autojump_clock):
    # The entrypoint's own cleanup (a session closing, 3 s), then a callback that would run
    # forever, then leaving the room: all within shutdown_timeout of the request, since the
    # process is killed at that deadline (plus a moment to exit).
    done = []

    async def hang():
        try:
            await trio.sleep_forever()
        finally:
            done.append(("callback cancelled", trio.current_time()))

    async def entrypoint(ctx):
        ctx.add_shutdown_callback(hang)
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(3)

    options, ctx = make(entrypoint, shutdown_timeout=5.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_job, options, ctx)
        await trio.sleep(1)
        ctx.shutdown("participant left")
    assert done == [("callback cancelled", 6.0)]
    assert ctx.room.left_at == 6.0
