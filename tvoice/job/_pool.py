"""The process pool: warm job processes, one job each, supervised.

Every job process belongs to one task in the pool's nursery (:meth:`ProcessPool.run`), which
starts it, initializes it within ``initialize_process_timeout``, pings it, watches its memory,
and always waits for it to exit: no process outlives the pool, none is left a zombie. A job
that a process was running when it crashed, hung or was killed fails with a clear reason; the
pool goes on serving with the other processes and starts new warm ones.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys

import attrs
import trio

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
from ._launch import JobResult, RunningJobInfo
from ._options import WorkerOptions

__all__ = ["JobResult", "PoolStatistics", "ProcessPool", "RunningJobInfo"]

logger = logging.getLogger("tvoice.job.pool")

KILL_GRACE = 1.0
"""How long past ``shutdown_timeout`` a job process may take before it is killed: the process
counts its deadline from when it received ShutdownJob (later than it was sent), may take a
moment past it to leave its room, then reports and exits."""


@attrs.frozen(kw_only=True)
class PoolStatistics:
    """A snapshot of the pool, for the worker's metrics."""

    idle_processes: int
    """Warm processes waiting for a job."""
    starting_processes: int
    """Processes still initializing (prewarm running)."""
    active_jobs: int
    pids: tuple[int, ...]
    """Every live job process."""
    job_pids: dict[str, int] = attrs.field(factory=dict)
    """The process of each running job, by job id."""
    memory_mb: dict[int, float] = attrs.field(factory=dict)
    """The resident memory of each live process, by pid, as last read."""


def _rss_mb(pid: int) -> float | None:
    """The resident memory of process ``pid`` in MB (None where /proc cannot tell)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"job process exited with signal {name}"
    return f"job process exited with code {returncode}"


async def _send(stream: MessageStream, message: Message) -> bool:
    """Send; False if the process is gone (its exit watcher then says why)."""
    try:
        await stream.send(message)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return False
    return True


@attrs.define(eq=False)
class _Process:
    """One job process, as its supervising task and the job's caller see it."""

    pid: int = 0
    ready: trio.Event = attrs.Factory(trio.Event)
    """Set when the process is warm, or failed to get there (``failure`` says why)."""
    job: RunningJobInfo | None = None
    assigned: trio.Event = attrs.Factory(trio.Event)
    started: trio.Event = attrs.Factory(trio.Event)
    ended: trio.Event = attrs.Factory(trio.Event)
    result: JobResult | None = None
    failure: str = ""
    """Why the process was killed or failed (the job's error, if it had one)."""
    shutdown_reason: str | None = None
    shutdown_requested: trio.Event = attrs.Factory(trio.Event)
    last_pong: float = 0.0
    memory_mb: float = 0.0
    taken: bool = False
    """Started for a job that waits for it (not to be put with the idle ones)."""
    acknowledged: bool = False
    """The process said it runs the job (JobStarted)."""
    warm: bool = False
    read_done: trio.Event = attrs.Factory(trio.Event)
    exited: bool = False

    def request_shutdown(self, reason: str) -> None:
        if self.shutdown_reason is None:
            self.shutdown_reason = reason
            self.shutdown_requested.set()

    def outcome(self) -> JobResult:
        return self.result or JobResult(success=False, error=self.failure or "no result")

    def finish(self, result: JobResult) -> None:
        if self.result is None:
            self.result = result
        self.started.set()
        self.ended.set()


class ProcessPool:
    """Runs each job in its own process, taken warm from a pool of idle ones.

    ``target`` is the agent file, ``PATH[:entrypoint]``, that every process imports (its
    ``prewarm_fnc`` runs once per process). ``options`` gives ``num_idle_processes``,
    ``initialize_process_timeout``, ``shutdown_timeout``, ``job_memory_warn_mb`` and
    ``job_memory_limit_mb`` (0: no limit). ``ping_interval``/``ping_timeout``: how often a
    process is pinged and how long it may stay silent before it is killed as unresponsive;
    ``memory_interval``: how often its memory is read. ``preload_livekit``: each warm process
    imports the LiveKit SDK before its job arrives (a faster job start, more idle memory).
    """

    def __init__(
        self,
        *,
        target: str,
        options: WorkerOptions,
        python: str = sys.executable,
        ping_interval: float = 2.5,
        ping_timeout: float = 15.0,
        memory_interval: float = 2.5,
        log_level: int | None = None,
    ) -> None:
        self.target = target
        self.options = options
        self.python = python
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.memory_interval = memory_interval
        self.log_level = log_level
        self._nursery: trio.Nursery | None = None
        self._processes: list[_Process] = []
        self._idle: list[_Process] = []
        self._warming: set[_Process] = set()
        self._changed = trio.Event()
        self._failed_inits = 0

    # -- what the worker sees -----------------------------------------------------------------

    @property
    def active_jobs(self) -> int:
        """How many jobs are running now."""
        return sum(1 for p in self._processes if p.job is not None and not p.ended.is_set())

    def statistics(self) -> PoolStatistics:
        """Idle and starting processes, running jobs and their pids."""
        jobs = {
            p.job.job.id: p.pid
            for p in self._processes
            if p.job is not None and not p.ended.is_set()
        }
        live = [p for p in self._processes if p.pid and not p.exited]
        return PoolStatistics(
            idle_processes=len(self._idle),
            starting_processes=len(self._warming),
            active_jobs=len(jobs),
            pids=tuple(p.pid for p in live),
            job_pids=jobs,
            memory_mb={p.pid: p.memory_mb for p in live if p.memory_mb},
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep ``options.num_idle_processes`` warm processes until cancelled; then stop every
        process (running jobs get ``ShutdownJob`` and ``shutdown_timeout``, then are killed)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                task_status.started()
                await self._keep_warm(nursery)
            finally:
                self._nursery = None

    async def run_job(
        self, info: RunningJobInfo, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> JobResult:
        """Run ``info``'s job in a warm process (a new one if none is warm).

        ``task_status.started()`` is called once the entrypoint runs (or just before returning,
        if the job failed before that). Returns when the job ends. Cancelling it shuts the job
        down: ``ShutdownJob``, up to ``shutdown_timeout``, then the process is killed.
        """
        if self._nursery is None:
            raise RuntimeError("the process pool is not running: start ProcessPool.run first")
        process = await self._take_process()
        try:
            await self._hand_over(process, info)
            if not process.taken and process.exited and not process.acknowledged:
                # An idle process that died before the pool noticed (killed, out of memory):
                # it never had the job, which gets another process (once: a failure of that
                # one is the job's).
                logger.warning("job %s: its idle process had died; taking another", info.job.id)
                process = await self._take_process()
                await self._hand_over(process, info)
            # Also reached when the job ended before it started (finish() sets both): returning
            # without started() would break `nursery.start(pool.run_job, ...)`.
            task_status.started()
            await process.ended.wait()
        except trio.Cancelled:
            process.request_shutdown("job cancelled by the worker")
            with trio.CancelScope(shield=True):
                # The supervisor kills the process just past shutdown_timeout; this bound is a
                # backstop.
                with trio.move_on_after(self.options.shutdown_timeout + KILL_GRACE + 5.0):
                    await process.ended.wait()
            raise
        return process.outcome()

    async def _hand_over(self, process: _Process, info: RunningJobInfo) -> None:
        """Give ``process`` the job; return once it runs (or the process ended)."""
        if process.failure or process.result is not None:
            return  # it died before it was warm: the job never started
        process.job = info
        process.assigned.set()
        self._wake()
        await process.started.wait()

    # -- keeping processes warm ---------------------------------------------------------------

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _keep_warm(self, nursery: trio.Nursery) -> None:
        while True:
            while len(self._idle) + self._warming_for_idle() < self.options.num_idle_processes:
                process = _Process()
                self._warming.add(process)
                nursery.start_soon(self._supervise, process)
            changed = self._changed
            await changed.wait()
            if self._failed_inits:
                # A process that cannot initialize will not do better at once: back off.
                await trio.sleep(min(0.5 * 2 ** (self._failed_inits - 1), 10.0))

    def _warming_for_idle(self) -> int:
        return sum(1 for p in self._warming if not p.taken)

    async def _take_process(self) -> _Process:
        """A warm process for a job: an idle one, else whichever becomes warm first, a process
        started for this job or one warming for the idle pool (a busy machine may take longer
        than ``initialize_process_timeout`` to warm the job's own one while another gets there).
        If the job's own process fails to initialize and none is idle, it is returned: the job
        fails with its failure."""
        if self._idle:
            return self._pop_idle()
        assert self._nursery is not None
        own = _Process(taken=True)
        self._warming.add(own)
        self._nursery.start_soon(self._supervise, own)
        try:
            while True:
                changed = self._changed
                if own.ready.is_set() and not own.failure:
                    return own
                if self._idle:
                    self._release(own)
                    return self._pop_idle()
                if own.ready.is_set():
                    return own
                await changed.wait()
        except trio.Cancelled:
            self._release(own)
            raise

    def _pop_idle(self) -> _Process:
        process = self._idle.pop(0)
        self._wake()
        return process

    def _release(self, process: _Process) -> None:
        """Nobody will run a job in ``process``, started for one: it joins the idle ones once
        warm (at once if it is)."""
        process.taken = False
        if process.warm and process not in self._idle and process.result is None:
            self._idle.append(process)
            self._wake()

    # -- one process --------------------------------------------------------------------------

    async def _supervise(self, process: _Process) -> None:
        parent_sock, child_sock = socket.socketpair()
        try:
            proc = await trio.lowlevel.open_process(
                [self.python, "-m", "tvoice.job._child", str(child_sock.fileno())],
                pass_fds=(child_sock.fileno(),),
                stdin=subprocess.DEVNULL,
                # The process dies with the worker; it checks that its parent is still this.
                env={**os.environ, "TVOICE_WORKER_PID": str(os.getpid())},
            )
        except BaseException as exc:
            parent_sock.close()
            self._warming.discard(process)
            self._failed_inits += 1
            process.failure = f"cannot start a job process: {exc!r}"
            process.finish(JobResult(success=False, error=process.failure))
            process.ready.set()
            self._wake()
            if not isinstance(exc, OSError):
                raise
            logger.error("%s", process.failure)
            return
        finally:
            child_sock.close()
        process.pid = proc.pid
        self._processes.append(process)
        stream = MessageStream(trio.SocketStream(trio.socket.from_stdlib_socket(parent_sock)))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_exit, proc, process, nursery.cancel_scope)
                nursery.start_soon(self._read, stream, proc, process)
                if not await self._initialize(stream, proc, process):
                    await self._wait_exit(proc, process, grace=1.0)
                    return
                process.warm = True
                self._warming.discard(process)
                self._failed_inits = 0
                nursery.start_soon(self._ping, stream, proc, process)
                nursery.start_soon(self._watch_memory, proc, process)
                if not process.taken:
                    self._idle.append(process)
                self._wake()
                await process.assigned.wait()
                assert process.job is not None
                await self._serve_job(stream, proc, process, process.job)
        finally:
            with trio.CancelScope(shield=True):
                if not process.warm:
                    self._warming.discard(process)
                    self._failed_inits += 1
                if process in self._idle:
                    self._idle.remove(process)
                await self._stop(stream, proc, process)
                self._processes.remove(process)
                process.exited = True
                process.finish(JobResult(success=False, error=process.failure or "worker closed"))
                process.ready.set()
                self._wake()

    async def _initialize(
        self, stream: MessageStream, proc: trio.Process, process: _Process
    ) -> bool:
        level = self.log_level
        if level is None:
            level = logging.getLogger("tvoice").getEffectiveLevel()
        init = InitializeProcess(
            target=self.target,
            log_level=level,
            shutdown_timeout=self.options.shutdown_timeout,
        )
        with trio.move_on_after(self.options.initialize_process_timeout) as scope:
            await _send(stream, init)
            await process.ready.wait()
        if scope.cancelled_caught:
            self._kill(
                proc,
                process,
                f"job process did not initialize within "
                f"{self.options.initialize_process_timeout:g} s",
            )
            logger.warning("%s (pid %d): killed", process.failure, proc.pid)
            await process.ended.wait()
            return False
        if process.failure:
            logger.error("job process %d failed to initialize: %s", proc.pid, process.failure)
            return False
        process.last_pong = trio.current_time()
        return True

    async def _serve_job(
        self, stream: MessageStream, proc: trio.Process, process: _Process, info: RunningJobInfo
    ) -> None:
        start = StartJob(
            job_id=info.job.id,
            room_name=info.job.room_name,
            agent_name=info.job.agent_name,
            metadata=info.job.metadata,
            url=info.url,
            fallback_urls=info.fallback_urls,
            token=info.token,
            worker_id=info.worker_id,
            participant_identity=info.participant_identity,
            publisher_identity=info.job.publisher_identity,
        )
        try:
            await _send(stream, start)
        except ValueError as exc:  # too large for the wire: this job fails, nothing else
            logger.error("job %s cannot start: %s", info.job.id, exc)
            process.finish(
                JobResult(success=False, error=f"cannot hand the job to its process: {exc}")
            )
            await _send(stream, ShutdownJob(reason="job not started"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._forward_shutdown, stream, proc, process)
            await process.ended.wait()
            nursery.cancel_scope.cancel()
        # The process exits by itself after JobEnded; give it a moment, then make sure.
        await self._wait_exit(proc, process, grace=2.0)

    async def _forward_shutdown(
        self, stream: MessageStream, proc: trio.Process, process: _Process
    ) -> None:
        await process.shutdown_requested.wait()
        if not await _send(stream, ShutdownJob(reason=process.shutdown_reason or "")):
            return
        await trio.sleep(self.options.shutdown_timeout + KILL_GRACE)
        self._kill(
            proc,
            process,
            f"job did not end within the shutdown timeout "
            f"({self.options.shutdown_timeout:g} s): killed",
        )

    async def _read(self, stream: MessageStream, proc: trio.Process, process: _Process) -> None:
        try:
            await self._read_messages(stream, proc, process)
        finally:
            process.read_done.set()

    async def _read_messages(
        self, stream: MessageStream, proc: trio.Process, process: _Process
    ) -> None:
        while True:
            try:
                message = await stream.receive()
            except ProtocolError as exc:
                self._kill(proc, process, f"job process sent garbage: {exc}")
                return
            if message is None:
                return
            if isinstance(message, Pong):
                process.last_pong = trio.current_time()
            elif isinstance(message, ProcessReady):
                if message.error:
                    process.failure = f"job process failed to initialize: {message.error}"
                process.ready.set()
            elif isinstance(message, JobStarted):
                process.acknowledged = True
                process.started.set()
            elif isinstance(message, JobEnded):
                process.finish(JobResult(success=message.success, error=message.error))
            elif isinstance(message, Exiting):
                logger.debug("job process %d exiting: %s", proc.pid, message.reason)
            else:
                self._kill(proc, process, f"job process sent {type(message).__name__}")
                return

    async def _watch_exit(
        self, proc: trio.Process, process: _Process, scope: trio.CancelScope
    ) -> None:
        returncode = await proc.wait()
        process.exited = True
        # What it said before it died (JobEnded, an error) may still be in the socket.
        with trio.move_on_after(1.0):
            await process.read_done.wait()
        if process.result is None:
            reason = process.failure or _exit_reason(returncode)
            if process.job is not None:
                logger.error("job %s failed: %s", process.job.job.id, reason)
            elif process.warm:
                logger.warning("idle %s (pid %d); starting another", reason, proc.pid)
            process.failure = reason
            process.finish(JobResult(success=False, error=reason))
        process.ready.set()
        scope.cancel()

    async def _ping(self, stream: MessageStream, proc: trio.Process, process: _Process) -> None:
        while True:
            await trio.sleep(self.ping_interval)
            now = trio.current_time()
            if now - process.last_pong > self.ping_timeout:
                self._kill(
                    proc,
                    process,
                    f"job process unresponsive for {now - process.last_pong:.1f} s "
                    f"(ping timeout {self.ping_timeout:g} s): killed",
                )
                logger.error("%s (pid %d)", process.failure, proc.pid)
                return
            if not await _send(stream, Ping(t=now)):
                return

    async def _watch_memory(self, proc: trio.Process, process: _Process) -> None:
        warned = False
        limit, warn = self.options.job_memory_limit_mb, self.options.job_memory_warn_mb
        while True:
            rss = _rss_mb(proc.pid)
            if rss is not None:
                process.memory_mb = rss
                if limit > 0 and rss > limit:
                    self._kill(
                        proc,
                        process,
                        f"job process used {rss:.0f} MB, over the memory limit of {limit:g} MB:"
                        " killed",
                    )
                    logger.error("%s (pid %d)", process.failure, proc.pid)
                    return
                if warn > 0 and rss > warn and not warned:
                    job = process.job.job.id if process.job else "(idle)"
                    logger.warning(
                        "job %s: process %d uses %.0f MB (warning above %g MB)",
                        job,
                        proc.pid,
                        rss,
                        warn,
                    )
                warned = warn > 0 and rss > warn
            await trio.sleep(self.memory_interval)

    def _kill(self, proc: trio.Process, process: _Process, reason: str) -> None:
        if not process.failure:
            process.failure = reason
        if proc.returncode is None:
            proc.kill()

    async def _wait_exit(self, proc: trio.Process, process: _Process, *, grace: float) -> None:
        with trio.move_on_after(grace):
            await proc.wait()
        if proc.returncode is None:
            self._kill(proc, process, process.failure or "job process did not exit: killed")
            await proc.wait()

    async def _stop(self, stream: MessageStream, proc: trio.Process, process: _Process) -> None:
        """Bounded stop, always reaping the process (called shielded)."""
        if proc.returncode is None:
            busy = process.job is not None and not process.ended.is_set()
            await _send(stream, ShutdownJob(reason="worker closing"))
            grace = self.options.shutdown_timeout + KILL_GRACE if busy else 1.0
            with trio.move_on_after(grace):
                # Its last words (JobEnded) say how the job ended; the stream ends at its exit.
                await self._read_messages(stream, proc, process)
                await proc.wait()
            if proc.returncode is None:
                if busy:
                    self._kill(proc, process, "job did not end while the worker closed: killed")
                proc.kill()
            await proc.wait()
        await stream.aclose()
