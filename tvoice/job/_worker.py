"""The worker: registers with a LiveKit server over ``/agent`` and runs the jobs it is given.

::

    Worker.run()                         owns everything below; returns after drain()
    |- load sampler                      CPU use (of the cgroup's limit), every 0.5 s (no load_fnc)
    |- connection loop                   connect, register, serve; reconnect with backoff;
    |                                    given up (or failed): drain, then raise from run()
    |  `- connection nursery             one per WebSocket
    |     |- receiver                    server messages; bad frames are logged and skipped
    |     |- status reporter             UpdateWorkerStatus every 2.5 s (and at once on drain)
    |     |- keepalive                   WorkerPing; no answer for 30 s: connect again
    |     `- availability answers        request_fnc, bounded; then wait for the assignment
    `- jobs nursery                      one task per job: launcher.run_job, then its status
                                         (jobs outlive connections: a reconnect keeps them)

The protocol itself (messages, token, URL) is :mod:`tvoice.livekit.protocol`; the jobs run in a
:class:`~tvoice.job._launch.JobLauncher` (the process pool, or a fake in tests).
"""

from __future__ import annotations

import inspect
import logging
import math
import random
import ssl
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urlsplit

import attrs
import trio
import trio_websocket

from .._errors import APIConnectionError
from ..livekit import protocol as p
from ._context import JobInfo
from ._cpu_load import CGROUP, LOAD_SAMPLE_INTERVAL, CpuLoad
from ._launch import JobLauncher, JobResult, RunningJobInfo
from ._options import JobRequest, WorkerOptions

__all__ = ["Worker"]

logger = logging.getLogger("tvoice.worker")

STATUS_INTERVAL = 2.5
REGISTER_TIMEOUT = 10.0  # the server's own RegisterTimeout
CONNECT_TIMEOUT = 10.0
CLOSE_TIMEOUT = 2.0
# The server gives up on an availability answer after 10 s: request_fnc must decide before.
REQUEST_TIMEOUT = 5.0
ASSIGNMENT_TIMEOUT = 7.5
PING_INTERVAL = 10.0
PING_TIMEOUT = 30.0
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 10.0
# An offer carries the job's metadata, which a server may be configured to accept far past its
# 512 KiB default; trio-websocket's 1 MiB default would drop the connection, again and again.
MAX_SERVER_MESSAGE = 16 << 20


def _tvoice_version() -> str:
    try:
        return version("tvoice")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0"


@attrs.define(eq=False)
class _RunningJob:
    """A job of this worker: its cancel scope, and when it was asked for and started."""

    info: RunningJobInfo
    requested_at: float
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    started_at: float | None = None
    ended_by: str = ""  # "terminated" or "drained" when the worker cancelled it

    def started(self, value: None = None) -> None:
        # The launcher's task_status: the entrypoint runs now.
        self.started_at = trio.current_time()
        logger.info(
            "job %s running (%.0f ms after the server's request)",
            self.info.job.id,
            1000 * (self.started_at - self.requested_at),
        )


@attrs.define(eq=False)
class _Pending:
    """An offered job: being decided on, then (accepted) waiting for the server's assignment."""

    requested_at: float
    answered: bool = False
    """Whether the worker said yes: only then is an assignment for it expected."""
    arrived: trio.Event = attrs.field(factory=trio.Event)
    assignment: p.JobAssignment | None = None
    server_url: str = ""
    """The server the assignment came from: the job joins its room through it."""


class Worker:
    """A LiveKit Agents-style worker: serves the jobs a LiveKit server dispatches to it.

    ``await worker.run()`` connects to ``options.ws_url`` (or, when that fails, to each of
    ``options.fallback_urls`` in turn), registers ``options.agent_name``,
    answers the server's job offers through ``options.request_fnc``, starts each assigned job
    in ``pool`` and reports its end, reports its load every 2.5 s, and connects again with
    backoff when the connection drops. Running jobs keep running across reconnections, and
    when the worker gives up on the server (or anything else ends its connection loop) they
    drain rather than being cancelled; a repeated offer for a job it has is refused.
    ``drain()`` stops taking jobs and lets ``run()`` return once the running ones end (at most
    ``options.drain_timeout``; the rest are cancelled, which the pool turns into a graceful
    shutdown).

    The attributes below are for health checks and metrics (``tvoice.job._health``).
    """

    def __init__(self, options: WorkerOptions, *, pool: JobLauncher) -> None:
        self.options = options
        self.agent_name = options.agent_name
        self.worker_type = options.worker_type.value
        self.version = _tvoice_version()
        self.worker_id = ""
        """The id the server gave at the last registration ("" before the first)."""
        self.status = p.WorkerStatus.AVAILABLE
        """As last reported to the server."""
        self.load = 0.0
        """As last reported to the server."""
        self.jobs_started = 0
        self.jobs_succeeded = 0
        self.jobs_failed = 0
        self.jobs_rejected = 0
        self.registrations = 0
        """Successful registrations: 1 + the reconnections."""
        self.job_start_seconds_sum = 0.0
        """Total time from the server's requests to the jobs' entrypoints running."""
        self.job_start_count = 0
        """How many jobs ``job_start_seconds_sum`` covers."""
        self.ping_rtt: float | None = None
        self.server_url = ""
        """The URL of the server the worker is (or was last) registered with."""
        self._pool = pool
        self._cpu = CpuLoad(cgroup=CGROUP)
        self._load_takes_worker = _takes_an_argument(options.load_fnc)
        self._ws: trio_websocket.WebSocketConnection | None = None
        self._connected = trio.Event()
        self._draining = False
        self._drain_requested = trio.Event()
        self._status_wakeup = trio.Event()
        self._jobs_changed = trio.Event()
        self._running: dict[str, _RunningJob] = {}
        self._pending: dict[str, _Pending] = {}
        self._jobs: trio.Nursery | None = None
        self._last_heard = 0.0
        self._drain_expired = False
        self._task_status: trio.TaskStatus[None] | None = None
        self._lost: Exception | None = None
        self._unsent_statuses: list[p.UpdateJobStatus] = []
        """Why the connection loop gave up (raised by run() once the jobs drained)."""

    # --- state for health checks and metrics

    @property
    def connected(self) -> bool:
        """Whether the worker is registered with the server over a live connection."""
        return self._ws is not None

    @property
    def draining(self) -> bool:
        """Whether :meth:`drain` was called."""
        return self._draining

    @property
    def active_jobs(self) -> list[RunningJobInfo]:
        """The jobs running now."""
        return [job.info for job in self._running.values()]

    async def wait_registered(self) -> str:
        """Wait until the worker is registered over a live connection; return its worker id."""
        while not self.connected:
            await self._connected.wait()
        return self.worker_id

    # --- control

    def drain(self) -> None:
        """Take no new job (report full), let the running ones end, then make :meth:`run` return.

        Running jobs get ``options.drain_timeout`` seconds; those still running then are
        cancelled (the pool shuts them down gracefully) and reported failed.
        """
        if not self._draining:
            logger.info("draining: no new jobs; %d running", len(self._running))
            self._draining = True
            self._drain_requested.set()
            self._status_wakeup.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until :meth:`drain` completes (or until cancelled).

        ``task_status.started()`` once registered with the server for the first time.
        Raises :class:`~tvoice.APIConnectionError` when the server stays unreachable for
        ``options.max_retry`` attempts in a row, or refuses the API key: the worker then
        drains first (running jobs get ``options.drain_timeout``, with no new ones).
        """
        for url in (self.options.ws_url, *self.options.fallback_urls):
            p.agent_url(url)  # a bad URL fails here, not in a retry loop
        self._task_status = task_status
        stop_connection = trio.Event()
        async with trio.open_nursery() as nursery:
            if self.options.load_fnc is None:
                nursery.start_soon(self._sample_cpu)
            async with trio.open_nursery() as connection:
                connection.start_soon(self._stay_connected, stop_connection)
                async with trio.open_nursery() as jobs:
                    self._jobs = jobs
                    await self._drain_requested.wait()
                    await self._finish_jobs()
                    self._jobs = None
                # The jobs' statuses are sent: close the connection politely, then stop.
                stop_connection.set()
                connection.cancel_scope.deadline = trio.current_time() + CLOSE_TIMEOUT + 1.0
            nursery.cancel_scope.cancel()
            if self._lost is not None:
                raise self._lost
        self._mark_started()  # drained before it ever registered
        logger.info("worker %s drained and closed", self.worker_id or "(never registered)")

    def _mark_started(self) -> None:
        task_status, self._task_status = self._task_status, None
        if task_status is not None:
            task_status.started()

    # --- connection

    async def _stay_connected(self, stop: trio.Event) -> None:
        try:
            await self._connection_loop(stop)
        except Exception as exc:
            # The jobs nursery sits inside the connection's: raising here would cancel every
            # running call. They drain instead (the room connections do not need the worker's),
            # and run() raises once they are over.
            logger.error(
                "%s: draining %d running job(s)",
                exc,
                len(self._running),
                exc_info=not isinstance(exc, APIConnectionError),
            )
            self._lost = exc
            self.drain()

    async def _connection_loop(self, stop: trio.Event) -> None:
        servers = [self.options.ws_url, *self.options.fallback_urls]
        current = 0
        url = p.agent_url(servers[current])
        failures = 0
        last_error = ""
        while not stop.is_set():
            if failures:
                if self.options.max_retry and failures > self.options.max_retry:
                    where = url if len(servers) == 1 else f"any of {', '.join(servers)}"
                    raise APIConnectionError(
                        f"could not reach the LiveKit server at {where} after {failures - 1}"
                        f" retries: {last_error}",
                        retryable=False,
                    )
                delay = min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** (failures - 1))
                delay *= random.uniform(0.5, 1.0)  # jitter: workers of one server spread out
                logger.warning(
                    "connecting to %s in %.1f s (attempt %d%s): %s",
                    url,
                    delay,
                    failures + 1,
                    f" of {self.options.max_retry + 1}" if self.options.max_retry else "",
                    last_error,
                )
                with trio.move_on_after(delay):
                    await stop.wait()
                if stop.is_set():
                    return
            registrations = self.registrations
            try:
                await self._serve_connection(servers[current], url, stop)
            except trio_websocket.ConnectionRejected as exc:
                if exc.status_code in (401, 403):
                    raise APIConnectionError(
                        f"the LiveKit server at {url} refused the worker's token"
                        f" ({exc.status_code}): check the API key and secret",
                        retryable=False,
                    ) from None
                last_error = f"handshake refused with status {exc.status_code}"
            except (
                OSError,
                trio_websocket.HandshakeError,
                trio_websocket.ConnectionClosed,
                p.ProtocolError,
                _Retry,
            ) as exc:
                last_error = _describe(exc)
            else:
                last_error = "the server closed the connection"
            if stop.is_set():
                return
            if self.registrations > registrations:
                # A connection that worked: the next attempt is the first of a new series.
                failures = 0
            failures += 1
            # The next attempt goes to the next server of the deployment (the same one when
            # there is no other): a lost node is left for one that may still be up.
            if len(servers) > 1:
                last_error = f"{servers[current]}: {last_error}"
                current = (current + 1) % len(servers)
                url = p.agent_url(servers[current])

    async def _serve_connection(self, server_url: str, url: str, stop: trio.Event) -> None:
        """One connection to ``url`` (the ``/agent`` endpoint of ``server_url``): register, then
        serve until it drops or ``stop`` is set."""
        token = p.agent_token(self.options.api_key, self.options.api_secret)
        headers = [(b"authorization", f"Bearer {token}".encode())]
        parts = urlsplit(url)
        host, secure = parts.hostname or "", parts.scheme == "wss"
        port = parts.port or (443 if secure else 80)
        with trio.move_on_after(CONNECT_TIMEOUT) as connecting:
            stream: trio.SocketStream | trio.SSLStream[trio.SocketStream]
            if secure:
                stream = await trio.open_ssl_over_tcp_stream(
                    host, port, ssl_context=ssl.create_default_context(), https_compatible=True
                )
            else:
                stream = await trio.open_tcp_stream(host, port)
        if connecting.cancelled_caught:
            raise _Retry(f"no connection within {CONNECT_TIMEOUT:.0f} s")
        # The stream is ours to close: trio-websocket leaves it open after an abnormal closure.
        async with stream:
            try:
                async with trio.open_nursery() as nursery:
                    with trio.move_on_after(CONNECT_TIMEOUT) as handshake:
                        ws = await trio_websocket.wrap_client_stream(
                            nursery,
                            stream,
                            parts.netloc,
                            parts.path or "/",
                            extra_headers=headers,
                            max_message_size=MAX_SERVER_MESSAGE,
                        )
                    if handshake.cancelled_caught:
                        raise _Retry(f"no WebSocket handshake within {CONNECT_TIMEOUT:.0f} s")
                    try:
                        await self._serve(ws, server_url, url, stop)
                    finally:
                        with trio.CancelScope(shield=True) as closing:
                            closing.deadline = trio.current_time() + CLOSE_TIMEOUT
                            await ws.aclose()
                    nursery.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                # The nursery holds trio-websocket's reader: one error, from it or from us.
                raise _single_error(group) from None

    async def _serve(
        self, ws: trio_websocket.WebSocketConnection, server_url: str, url: str, stop: trio.Event
    ) -> None:
        await ws.send_message(
            p.encode(
                p.Register(
                    agent_name=self.agent_name,
                    version=self.version,
                    type=p.JobType[self.options.worker_type.name],
                    permissions=self.options.permissions,
                )
            )
        )
        with trio.move_on_after(REGISTER_TIMEOUT) as registering:
            answer = p.decode(_as_bytes(await ws.get_message()))
        if registering.cancelled_caught:
            raise _Retry(f"no registration answer within {REGISTER_TIMEOUT:.0f} s")
        if not isinstance(answer, p.Registered):
            raise p.ProtocolError(f"expected the registration answer, got {answer!r}")
        self.worker_id = answer.worker_id
        self.server_url = server_url
        self.registrations += 1
        logger.info(
            "registered worker %s (agent %r) with LiveKit %s at %s",
            answer.worker_id,
            self.agent_name,
            answer.server_version or "?",
            url,
        )
        self._last_heard = trio.current_time()
        try:
            async with trio.open_nursery() as conn:
                self._ws = ws
                self._connected.set()
                self._mark_started()
                while self._unsent_statuses:
                    if not await self._send(self._unsent_statuses[0]):
                        break
                    del self._unsent_statuses[0]
                conn.start_soon(self._report_status)
                conn.start_soon(self._keepalive, conn.cancel_scope)
                conn.start_soon(_cancel_when, stop, conn.cancel_scope)
                await self._receive(ws, conn)
                conn.cancel_scope.cancel()
        finally:
            self._ws = None
            self._connected = trio.Event()
        if not stop.is_set():
            logger.warning(
                "lost the connection to %s (%s); %d job(s) keep running",
                url,
                ws.closed or "no answer",
                len(self._running),
            )

    async def _receive(self, ws: trio_websocket.WebSocketConnection, conn: trio.Nursery) -> None:
        while True:
            try:
                data = await ws.get_message()
            except trio_websocket.ConnectionClosed:
                return
            self._last_heard = trio.current_time()
            try:
                message = p.decode(_as_bytes(data))
            except p.ProtocolError as exc:
                logger.warning("skipping a bad frame from the server: %s", exc)
                continue
            match message:
                case p.AvailabilityRequest():
                    self._on_availability(message, conn)
                case p.JobAssignment():
                    self._on_assignment(message)
                case p.JobTermination():
                    self._on_termination(message)
                case p.ServerPong():
                    self.ping_rtt = (trio.current_time() * 1000 - message.last_timestamp) / 1000
                case p.GoAway():
                    logger.info("the server asks the worker to go away (%s)", message.reason)
                    return
                case p.Registered():
                    logger.warning("skipping a second registration answer from the server")

    async def _send(self, message: p.WorkerMessage) -> bool:
        """Send on the current connection; False (and nothing sent) when there is none."""
        ws = self._ws
        if ws is None:
            logger.debug("not connected: %r not sent", message)
            return False
        try:
            await ws.send_message(p.encode(message))
        except trio_websocket.ConnectionClosed:
            logger.debug("connection closed: %r not sent", message)
            return False
        return True

    async def _keepalive(self, scope: trio.CancelScope) -> None:
        while True:
            await trio.sleep(PING_INTERVAL)
            if trio.current_time() - self._last_heard > PING_TIMEOUT:
                logger.warning("no word from the server in %.0f s: connecting again", PING_TIMEOUT)
                scope.cancel()
                return
            await self._send(p.WorkerPing(timestamp=int(trio.current_time() * 1000)))

    # --- load and status

    async def _sample_cpu(self) -> None:
        while True:
            self._cpu.sample(trio.current_time())
            await trio.sleep(LOAD_SAMPLE_INTERVAL)

    def _current_load(self) -> float:
        if self.options.load_fnc is None:
            return self._cpu.value
        try:
            load_fnc: Callable[..., float] = self.options.load_fnc
            load = float(load_fnc(self) if self._load_takes_worker else load_fnc())
        except Exception:
            logger.exception("load_fnc failed; reporting the last load")
            return self.load
        if not math.isfinite(load) or load < 0:
            logger.warning("load_fnc returned %r; reporting the last load", load)
            return self.load
        return load

    def _status_update(self) -> p.UpdateWorkerStatus:
        load = self._current_load()
        full = load >= self.options.load_threshold
        status = p.WorkerStatus.FULL if full or self._draining else p.WorkerStatus.AVAILABLE
        if status != self.status and not self._draining:
            logger.info(
                "load %.2f %s the threshold %.2f: %s",
                load,
                "reached" if full else "is below",
                self.options.load_threshold,
                "full, no new jobs" if full else "available again",
            )
        self.status, self.load = status, load
        return p.UpdateWorkerStatus(
            status=status, load=load, job_count=len(self._running), draining=self._draining
        )

    async def _report_status(self) -> None:
        while True:
            self._status_wakeup = trio.Event()
            await self._send(self._status_update())
            with trio.move_on_after(STATUS_INTERVAL):
                await self._status_wakeup.wait()

    # --- jobs

    def _on_availability(self, request: p.AvailabilityRequest, conn: trio.Nursery) -> None:
        job_id = request.job.id
        if job_id in self._pending or job_id in self._running:
            # A repeated offer (the server retrying, or a confused one): the job is already
            # ours. Answering it again would make two tasks wait for one assignment.
            logger.warning("refusing a repeated offer of job %s", job_id)
            self.jobs_rejected += 1
            conn.start_soon(self._send, p.AvailabilityResponse(job_id=job_id, available=False))
            return
        # Reserved at once: a second offer may arrive while request_fnc decides on this one.
        pending = self._pending[job_id] = _Pending(requested_at=trio.current_time())
        conn.start_soon(self._answer_availability, request, pending)

    async def _answer_availability(self, request: p.AvailabilityRequest, pending: _Pending) -> None:
        try:
            await self._decide_and_start(request, pending)
        except Exception:
            # One offer's failure costs that offer alone, not the connection and its jobs.
            logger.exception("failed to answer the offer of job %s", request.job.id)
            await self._send(p.AvailabilityResponse(job_id=request.job.id, available=False))
        finally:
            if self._pending.get(request.job.id) is pending:
                del self._pending[request.job.id]
                self._notify_jobs_changed()

    async def _decide_and_start(self, request: p.AvailabilityRequest, pending: _Pending) -> None:
        job = request.job
        requested_at = pending.requested_at
        if self._draining or self.status is p.WorkerStatus.FULL:
            why = "draining" if self._draining else f"full (load {self.load:.2f})"
            logger.info("refusing job %s for room %r: %s", job.id, job.room_name, why)
            self.jobs_rejected += 1
            await self._send(p.AvailabilityResponse(job_id=job.id, available=False))
            return
        logger.info("job %s offered for room %r", job.id, job.room_name)
        req = JobRequest(
            job_id=job.id,
            room_name=job.room_name,
            agent_name=job.agent_name,
            metadata=job.metadata,
            publisher_identity=job.participant_identity,
        )
        request_fnc = self.options.request_fnc or _accept
        with trio.move_on_after(REQUEST_TIMEOUT) as timeout:
            try:
                await request_fnc(req)
            except Exception:
                logger.exception("request_fnc failed on job %s: rejected", job.id)
                req.accepted = False
        if timeout.cancelled_caught and req.accepted is None:
            logger.warning("request_fnc did not answer within %.1f s: rejected", REQUEST_TIMEOUT)
        if not req.accepted:
            if req.accepted is None and not timeout.cancelled_caught:
                logger.warning("request_fnc neither accepted nor rejected job %s", job.id)
            self.jobs_rejected += 1
            await self._send(p.AvailabilityResponse(job_id=job.id, available=False))
            return
        identity = req.identity or f"agent-{job.id}"
        answered = await self._send(
            p.AvailabilityResponse(
                job_id=job.id,
                available=True,
                participant_identity=identity,
                participant_name=req.name,
            )
        )
        if answered:
            pending.answered = True
            with trio.move_on_after(ASSIGNMENT_TIMEOUT):
                await pending.arrived.wait()
        assignment = pending.assignment
        if assignment is None:
            logger.warning("job %s was accepted but never assigned", job.id)
            return
        url = assignment.url or pending.server_url or self.options.ws_url
        info = RunningJobInfo(
            job=JobInfo(
                id=job.id,
                room_name=job.room_name,
                agent_name=job.agent_name,
                metadata=job.metadata,
                publisher_identity=job.participant_identity,
            ),
            url=url,
            fallback_urls=tuple(
                u for u in (self.options.ws_url, *self.options.fallback_urls) if u != url
            ),
            token=assignment.token,
            worker_id=self.worker_id,
            participant_identity=identity,
        )
        if self._jobs is None:
            await self._send(
                p.UpdateJobStatus(job_id=job.id, status=p.JobStatus.FAILED, error="worker closed")
            )
            return
        # Registered before this task (which belongs to the connection) can be cancelled: from
        # here on the job belongs to the jobs nursery and outlives the connection.
        self._running[job.id] = _RunningJob(info=info, requested_at=requested_at)
        self.jobs_started += 1
        self._notify_jobs_changed()
        self._jobs.start_soon(self._run_job, self._running[job.id])

    def _on_assignment(self, assignment: p.JobAssignment) -> None:
        pending = self._pending.get(assignment.job.id)
        if pending is None or not pending.answered or pending.arrived.is_set():
            logger.warning("skipping the assignment of a job not waited for: %s", assignment.job.id)
            return
        pending.assignment = assignment
        pending.server_url = self.server_url
        pending.arrived.set()

    def _on_termination(self, termination: p.JobTermination) -> None:
        job = self._running.get(termination.job_id)
        if job is None:
            logger.debug("termination of a job not running here: %s", termination.job_id)
            return
        logger.info("the server terminates job %s", termination.job_id)
        job.ended_by = job.ended_by or "terminated"
        job.scope.cancel()

    async def _run_job(self, job: _RunningJob) -> None:
        info = job.info
        job_id = info.job.id
        logger.info("starting job %s in room %r", job_id, info.job.room_name)
        if self._drain_expired:
            job.ended_by = "drained"
            job.scope.cancel()
        result: JobResult | None = None
        try:
            with job.scope:
                result = await self._pool.run_job(info, task_status=job)
        except Exception as exc:
            logger.exception("the job launcher failed on job %s", job_id)
            result = JobResult(success=False, error=f"the job launcher failed: {exc!r}")
        finally:
            del self._running[job_id]
            self._notify_jobs_changed()
        if job.started_at is not None:
            self.job_start_seconds_sum += job.started_at - job.requested_at
            self.job_start_count += 1
        if job.ended_by == "terminated":
            result = JobResult(success=True)
        elif job.ended_by == "drained" or result is None:
            result = JobResult(
                success=False,
                error=f"still running after the drain timeout ({self.options.drain_timeout} s)",
            )
        if result.success:
            self.jobs_succeeded += 1
            logger.info("job %s ended", job_id)
        else:
            self.jobs_failed += 1
            logger.warning("job %s failed: %s", job_id, result.error)
        status = p.JobStatus.SUCCESS if result.success else p.JobStatus.FAILED
        update = p.UpdateJobStatus(job_id=job_id, status=status, error=result.error)
        if not await self._send(update):
            # The server learns how its job ended once the worker is back (one per job).
            self._unsent_statuses.append(update)

    async def _finish_jobs(self) -> None:
        with trio.move_on_after(self.options.drain_timeout):
            while self._running or self._pending:
                await self._jobs_changed.wait()
        if self._running:
            logger.warning(
                "drain timeout (%.0f s): cancelling %d job(s)",
                self.options.drain_timeout,
                len(self._running),
            )
            self._drain_expired = True
            for job in self._running.values():
                job.ended_by = job.ended_by or "drained"
                job.scope.cancel()

    def _notify_jobs_changed(self) -> None:
        self._jobs_changed.set()
        self._jobs_changed = trio.Event()
        # The server picks workers by their last reported load: report job changes at once.
        self._status_wakeup.set()


async def _accept(request: JobRequest) -> None:
    await request.accept()


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _as_bytes(data: str | bytes) -> bytes:
    if isinstance(data, str):
        raise p.ProtocolError(f"expected a binary frame, got text ({len(data)} characters)")
    return data


class _Retry(Exception):
    """This connection attempt failed; the next one may work."""


def _single_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error in ``group`` (Cancelled aside); the group itself when there are several."""
    errors = [exc for exc in _leaves(group) if not isinstance(exc, trio.Cancelled)]
    return errors[0] if len(errors) == 1 else group


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _Retry):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _takes_an_argument(fn: Callable[..., object] | None) -> bool:
    """Whether ``load_fnc`` is ``load_fnc(worker)`` rather than ``load_fnc()``."""
    if fn is None:
        return False
    try:
        return bool(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return False
