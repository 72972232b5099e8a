"""The tvoice worker of the worker benchmark (``bench_worker.py``).

Run with ``tvoice worker bench/worker_agent_tvoice.py``, with ``LIVEKIT_URL``,
``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET`` and the benchmark's variables: ``BENCH_WORKER_EVENTS``
(the file the timestamps are appended to), ``BENCH_WORKER_HTTP_PORT`` (its health server) and
``BENCH_WORKER_IDLE`` (warm idle processes). The same program as ``worker_agent_livekit.py``,
written against tvoice's public interfaces: prewarm loads the Silero VAD, the request handler
takes the time and accepts, the entrypoint takes the time, joins the room and stays until the
job is shut down (the room goes away).

Each event is one line ``KIND ROOM JOB_ID UNIX_TIME PID`` appended with a single ``write`` (lines
from several processes never interleave).
"""

from __future__ import annotations

import os
import time

from tvoice.job import JobContext, JobProcess, JobRequest, WorkerOptions


def note(kind: str, room: str = "-", job_id: str = "-", at: float | None = None) -> None:
    """Append one event line to ``$BENCH_WORKER_EVENTS``."""
    at = time.time() if at is None else at
    line = f"{kind} {room} {job_id} {at:.6f} {os.getpid()}\n".encode()
    fd = os.open(os.environ["BENCH_WORKER_EVENTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def no_load() -> float:
    """The worker's load: always 0. The default, the machine's CPU use, rises while a replacement
    process prewarms; on a small machine the worker then reports itself unavailable and the
    server drops the next dispatch. The benchmark measures dispatch, not load shedding."""
    return 0.0


def prewarm(proc: JobProcess) -> None:
    from tvoice_plugins import silero

    proc.userdata["vad"] = silero.VAD.load()
    note("prewarm")


async def request(req: JobRequest) -> None:
    at = time.time()
    await req.accept()
    note("request", req.room_name, req.job_id, at)


async def entrypoint(ctx: JobContext) -> None:
    at = time.time()
    note("entry", ctx.job.room_name, ctx.job.id, at)
    await ctx.connect()
    note("connected", ctx.job.room_name, ctx.job.id)
    await ctx.wait_for_shutdown()


options = WorkerOptions(
    entrypoint_fnc=entrypoint,
    prewarm_fnc=prewarm,
    request_fnc=request,
    agent_name="bench-worker",
    num_idle_processes=int(os.environ.get("BENCH_WORKER_IDLE", "2")),
    load_fnc=no_load,
    host="127.0.0.1",
    port=int(os.environ.get("BENCH_WORKER_HTTP_PORT", "0")),
)
