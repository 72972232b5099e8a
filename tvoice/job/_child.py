"""The job process: ``python -m tvoice.job._child FD``.

``FD`` is this process's end of a socketpair whose other end the worker's process pool holds.
The process imports the agent file and runs its prewarm function once (``InitializeProcess`` ->
``ProcessReady``), waits warm for a job, runs that one job (``StartJob`` -> ``JobStarted`` ...
``JobEnded``), answers pings all along, and exits. trio runs as the guest of an asyncio host
loop, where the LiveKit SDK lives (:func:`tvoice.livekit.run_with_asyncio_host`).

Interrupts go to the worker, not here: the worker decides when a job ends (``ShutdownJob``). If
the worker goes away (the socket ends), the job is shut down as if it had asked.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import inspect
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import trio

from ..io import SessionRoom
from ._context import JobContext, JobInfo, JobProcess
from ._ipc import (
    Exiting,
    InitializeProcess,
    JobEnded,
    JobStarted,
    Message,
    MessageStream,
    Ping,
    Pong,
    ProcessReady,
    ProtocolError,
    ShutdownJob,
    StartJob,
)
from ._launch import cut_error
from ._lifetime import run_job
from ._loader import load_agent_file
from ._options import WorkerOptions

__all__ = ["main"]

logger = logging.getLogger("tvoice.job.process")


class _JobFields(logging.Filter):
    """Adds the running job's fields to every record the process logs (``%(job)s``)."""

    def __init__(self) -> None:
        super().__init__()
        self.text = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.job = self.text
        return True


_job_fields = _JobFields()


def _configure_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_job_fields)
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [pid %(process)d%(job)s]: %(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class _DetachedRoom(SessionRoom):
    """The room of a job given no LiveKit URL (tests of the pool): it cannot be joined."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def connect(self) -> None:
        raise RuntimeError("this job was given no LiveKit URL: it has no room to join")

    async def run_session_io(
        self, session: Any, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED
    ) -> None:
        raise RuntimeError("this job was given no LiveKit URL: it has no room for a session")


def _room(start: StartJob) -> SessionRoom:
    if not start.url:
        return _DetachedRoom(start.room_name)
    from ..livekit import LiveKitRoom, RoomOptions  # imported while warm (see _host)

    # A publisher job is for the participant who published; a room job links the first one.
    options = RoomOptions(participant_identity=start.publisher_identity or None)
    return LiveKitRoom(
        url=start.url, token=start.token, options=options, fallback_urls=start.fallback_urls
    )


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return cut_error(str(exc.code))
    return cut_error(f"{type(exc).__name__}: {exc}")


@attrs.define(eq=False)
class _JobProcessServer:
    """Serves the worker's messages for one warm process and its one job."""

    stream: MessageStream
    options: WorkerOptions
    proc: JobProcess
    start: StartJob | None = None
    start_requested: trio.Event = attrs.Factory(trio.Event)
    ctx: JobContext | None = None
    shutdown_reason: str | None = None

    async def serve(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read)
            await self.start_requested.wait()
            reason = self.shutdown_reason or ""
            if self.start is not None:
                # Even when told to shut down meanwhile: the job then ends at once, reported.
                ended = await self._run(self.start)
                await self._send(ended)
                reason = "job ended"
            await self._send(Exiting(reason=reason))
            nursery.cancel_scope.cancel()

    async def _run(self, start: StartJob) -> JobEnded:
        job = JobInfo(
            id=start.job_id,
            room_name=start.room_name,
            agent_name=start.agent_name,
            metadata=start.metadata,
            publisher_identity=start.publisher_identity,
        )
        try:
            room = _room(start)
        except Exception as exc:
            logger.exception("cannot make the job's room")
            return JobEnded(success=False, error=f"cannot make the job's room: {_error_text(exc)}")
        ctx = JobContext(proc=self.proc, job=job, room=room)
        _job_fields.text = "".join(f" {k}={v}" for k, v in ctx.log_context_fields.items())
        self.ctx = ctx
        if self.shutdown_reason is not None:
            ctx.shutdown(self.shutdown_reason)
        await self._send(JobStarted())
        try:
            await run_job(self.options, ctx)
        except Exception as exc:
            return JobEnded(success=False, error=_error_text(exc))
        return JobEnded(success=True)

    async def _read(self) -> None:
        while True:
            try:
                message = await self.stream.receive()
            except ProtocolError as exc:
                logger.error("the worker sent garbage, ending: %s", exc)
                self._shutdown("worker sent garbage")
                return
            if message is None:
                self._shutdown("worker gone")
                return
            await self._handle(message)

    async def _handle(self, message: Message) -> None:
        if isinstance(message, Ping):
            await self._send(Pong(t=trio.current_time(), last=message.t))
        elif isinstance(message, StartJob):
            if self.start is not None or self.shutdown_reason is not None:
                logger.warning("a job process runs one job: ignoring job %s", message.job_id)
                return
            self.start = message
            self.start_requested.set()
        elif isinstance(message, ShutdownJob):
            self._shutdown(message.reason or "shutdown requested")
        else:
            logger.warning("unexpected %s from the worker, ignored", type(message).__name__)

    def _shutdown(self, reason: str) -> None:
        if self.ctx is not None:
            self.ctx.shutdown(reason)
        elif self.shutdown_reason is None and self.start is None:
            self.shutdown_reason = reason
            self.start_requested.set()
        elif self.shutdown_reason is None:
            self.shutdown_reason = reason

    async def _send(self, message: Message) -> None:
        try:
            await self.stream.send(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            logger.debug("the worker is gone; %s not sent", type(message).__name__)


async def _prewarm(options: WorkerOptions, proc: JobProcess) -> None:
    if options.prewarm_fnc is None:
        return
    result = options.prewarm_fnc(proc)
    if inspect.isawaitable(result):
        await result


def _give_back_free_memory() -> None:
    """Return the heap that loading models freed to the system (glibc keeps it otherwise: an
    ONNX session's graph optimizer leaves about 6 MB of free heap in every warm process)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to give back this way


async def serve(sock: socket.socket, *, watchdog: _Watchdog | None = None) -> int:
    """Serve the worker on ``sock``: initialize, run one job, return the exit code."""
    stream = MessageStream(trio.SocketStream(trio.socket.from_stdlib_socket(sock)))
    try:
        init = await stream.receive()
    except ProtocolError as exc:
        print(f"tvoice job process: the worker sent garbage: {exc}", file=sys.stderr)
        return 2
    if not isinstance(init, InitializeProcess):
        print(f"tvoice job process: expected InitializeProcess, got {init!r:.80}", file=sys.stderr)
        return 2
    _configure_logging(init.log_level)
    try:
        options = attrs.evolve(load_agent_file(init.target), shutdown_timeout=init.shutdown_timeout)
        if watchdog is not None:
            watchdog.grace = init.shutdown_timeout + 1.0
        proc = JobProcess()
        await _prewarm(options, proc)
        _give_back_free_memory()
        # What prewarm built lives as long as the process: keep the collector off it, so a
        # full collection during a call walks only the call's own objects.
        gc.freeze()
    except (Exception, SystemExit) as exc:
        logger.exception("the job process failed to initialize")
        await stream.send(ProcessReady(error=_error_text(exc)))
        await stream.send(Exiting(reason="initialization failed"))
        return 1
    await stream.send(ProcessReady())
    await _JobProcessServer(stream=stream, options=options, proc=proc).serve()
    await stream.aclose()
    return 0


def _host() -> Callable[[Callable[[socket.socket], Awaitable[int]], socket.socket], int]:
    """asyncio as host and trio as guest when the bridge is there, plain trio otherwise (the
    LiveKit extra not installed: jobs then have no room)."""
    try:
        # LiveKitRoom brings the LiveKit SDK in: a warm process has it loaded before its job
        # arrives (importing it when the job starts costs 200 ms of dispatch latency).
        from ..livekit import LiveKitRoom, run_with_asyncio_host

        del LiveKitRoom
    except ImportError:
        return trio.run
    return run_with_asyncio_host


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tvoice.job._child FD``: serve the worker on the inherited socket ``FD``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m tvoice.job._child FD (started by the worker)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    watchdog = _Watchdog()
    if not watchdog.start():
        print("tvoice job process: the worker is gone", file=sys.stderr)
        return 1
    sock = socket.socket(fileno=int(args[0]))
    return _host()(functools.partial(serve, watchdog=watchdog), sock)


class _Watchdog:
    """Ends this process when the worker dies, even if its job is too busy (or hung) to see its
    socket end: a job process never outlives its worker for long.

    PR_SET_PDEATHSIG cannot do it: it fires when the *thread* that started the process exits,
    and trio starts processes from its worker threads, which exit when idle.
    """

    def __init__(self) -> None:
        self.grace = 0.0
        """How long this process may go on once the worker is gone: its job's own shutdown,
        which the end of the socket starts (set once initialized; before, nothing to save)."""

    def start(self) -> bool:
        """Watch the worker (``$TVOICE_WORKER_PID``); False if it is already gone."""
        worker = os.environ.get("TVOICE_WORKER_PID", "")
        if not worker.isdigit():
            return True  # not started by a worker (a test, by hand)
        if int(worker) != os.getppid():
            return False  # it died before this process got here: it was adopted
        try:
            fd = os.pidfd_open(int(worker))
        except (OSError, AttributeError):
            return True  # no pidfd (not Linux 5.3+): the socket's end still tells the job
        threading.Thread(
            target=self._watch, args=(fd,), name="worker watchdog", daemon=True
        ).start()
        return True

    def _watch(self, pidfd: int) -> None:
        select.select([pidfd], [], [])  # readable once the worker has exited
        # A plain thread, outside trio: the wall clock bounds how long an orphan lives.
        time.sleep(self.grace)
        os._exit(1)


def _exit(code: int) -> None:
    """Leave without interpreter finalization: the job's cleanup has run (room left, callbacks
    done, the worker told), and the LiveKit SDK's native threads may still call into Python
    while modules are torn down, which aborts the process with a Rust panic."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
