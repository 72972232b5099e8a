"""A job process joins a real LiveKit room (loopback server), and leaves it when its job ends
or its process is killed."""

import asyncio
import os
import signal
import uuid
from pathlib import Path

import pytest
import trio
from livekit import api

from tvoice.job import JobInfo, WorkerOptions
from tvoice.job._pool import ProcessPool, RunningJobInfo
from tvoice.testing import LiveKitServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        "ignore:The HMAC key is 6 bytes long:jwt.warnings.InsecureKeyLengthWarning"
    ),
]

AGENT = str(Path(__file__).parent / "agents" / "joins_room.py")


async def _never(ctx):
    raise AssertionError("not called in the worker")


def agent_token(server: LiveKitServer, room: str, identity: str) -> str:
    grants = api.VideoGrants(room_join=True, room=room, agent=True)
    token = api.AccessToken(server.api_key, server.api_secret)
    return token.with_identity(identity).with_kind("agent").with_grants(grants).to_jwt()


async def participants(server: LiveKitServer, room: str) -> list[str]:
    async def main() -> list[str]:
        async with (
            asyncio.timeout(10),
            api.LiveKitAPI(server.http_url, server.api_key, server.api_secret) as lkapi,
        ):
            listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
        return [p.identity for p in listed.participants]

    return await trio.to_thread.run_sync(asyncio.run, main())


async def wait_for(predicate_async, *, step=0.1):
    while not await predicate_async():  # noqa: ASYNC110 - the server's state, polled
        await trio.sleep(step)


@pytest.mark.parametrize("end", ["cancel", "sigkill"])
async def test_a_job_process_joins_and_leaves_a_real_room(livekit_server, tmp_path, end):
    room = f"room-{uuid.uuid4().hex[:8]}"
    joined = tmp_path / "joined.txt"
    info = RunningJobInfo(
        # As for a publisher worker: the session is to link the participant who published.
        job=JobInfo(id="job-lk", room_name=room, metadata=str(joined), publisher_identity="caller"),
        url=livekit_server.url,
        token=agent_token(livekit_server, room, "agent-job-lk"),
    )
    pool = ProcessPool(
        target=AGENT,
        options=WorkerOptions(entrypoint_fnc=_never, num_idle_processes=1, shutdown_timeout=5.0),
    )
    result = []
    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as jobs:

                    async def run(task_status=trio.TASK_STATUS_IGNORED):
                        result.append(await pool.run_job(info, task_status=task_status))

                    await jobs.start(run)

                    async def has_joined():
                        return joined.exists()

                    await wait_for(has_joined)
                    assert joined.read_text() == f"{room} agent-job-lk caller caller"
                    assert await participants(livekit_server, room) == ["agent-job-lk"]
                    if end == "sigkill":
                        (pid,) = pool.statistics().job_pids.values()
                        os.kill(pid, signal.SIGKILL)
                    else:
                        scope.cancel()
            if end == "cancel":

                async def has_left():
                    return await participants(livekit_server, room) == []

                # A graceful end leaves the room at once, not once the server notices a lost
                # connection (tens of seconds); 10 s leaves room for a busy machine.
                with trio.fail_after(10):
                    await wait_for(has_left)
            nursery.cancel_scope.cancel()
    if end == "sigkill":
        assert [r.error for r in result] == ["job process exited with signal SIGKILL"]
