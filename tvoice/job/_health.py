"""The worker's health and metrics endpoint: a tiny HTTP/1.1 server on trio.

``GET /`` answers 200 ``OK`` while the worker is registered over a live connection (503
otherwise: a load balancer or Kubernetes readiness probe takes the worker out); ``GET /livez``
answers 200 as long as the process serves at all (a liveness probe: a worker that lost its
server still runs its calls to their end, and restarting it would drop them); ``GET /worker``
describes it in JSON; ``GET /metrics`` is the Prometheus text exposition format (version 0.0.4).

One request per connection (``Connection: close``), GET and HEAD only, request heads of at most
8 KiB read within 5 s, at most 64 clients at once: enough for probes and scrapers, and nothing a
client sends can make the server wait or grow without bound, or stop it.
"""

from __future__ import annotations

import json
import logging
import resource
import sys
from collections.abc import Sequence
from typing import Protocol

import trio

from ._launch import RunningJobInfo

__all__ = ["HealthServer", "WorkerState", "render_metrics"]

logger = logging.getLogger("tvoice.worker")

MAX_REQUEST_HEAD = 8192
READ_TIMEOUT = 5.0
WRITE_TIMEOUT = 5.0
MAX_CONNECTIONS = 64
"""Clients served at once; past it a client gets 503 at once (each may hold a slot for
READ_TIMEOUT + WRITE_TIMEOUT, so a flood cannot grow memory or tasks without bound)."""
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class WorkerState(Protocol):
    """What the server reads from the worker (:class:`~tvoice.job._worker.Worker` has it all)."""

    agent_name: str
    worker_id: str
    worker_type: str
    version: str
    load: float
    jobs_started: int
    jobs_succeeded: int
    jobs_failed: int
    jobs_rejected: int
    registrations: int
    job_start_seconds_sum: float
    job_start_count: int

    @property
    def connected(self) -> bool: ...
    @property
    def draining(self) -> bool: ...
    @property
    def active_jobs(self) -> Sequence[RunningJobInfo]: ...
    @property
    def status(self) -> object: ...


class HealthServer:
    """Serves ``worker``'s health and metrics on ``host:port`` (port 0: any free port)."""

    def __init__(self, worker: WorkerState, *, host: str = "127.0.0.1", port: int = 8081) -> None:
        self.worker = worker
        self.host = host
        self.port = port
        self._connections = 0

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled; ``task_status.started(port)`` with the bound port."""
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        port: int = listeners[0].socket.getsockname()[1]
        logger.info("health and metrics on http://%s:%d/", self.host, port)
        task_status.started(port)
        await trio.serve_listeners(self.handle, listeners)

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Answer one request on ``stream``, then close it. Never raises (but Cancelled)."""
        self._connections += 1
        try:
            async with stream:
                if self._connections > MAX_CONNECTIONS:
                    status, headers = 503, [("Content-Type", "text/plain; charset=utf-8")]
                    body, head_only = b"too many connections\n", False
                else:
                    status, headers, body, head_only = await self._respond(stream)
                head = f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                for name, value in [
                    *headers,
                    ("Content-Length", str(len(body))),
                    ("Connection", "close"),
                ]:
                    head += f"{name}: {value}\r\n"
                with trio.move_on_after(WRITE_TIMEOUT):
                    data = head.encode("ascii") + b"\r\n"
                    await stream.send_all(data if head_only else data + body)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the client left
        except Exception:
            logger.exception("health server: failed to answer a request")
        finally:
            self._connections -= 1

    async def _respond(
        self, stream: trio.abc.Stream
    ) -> tuple[int, list[tuple[str, str]], bytes, bool]:
        text = [("Content-Type", "text/plain; charset=utf-8")]
        head = b""
        with trio.move_on_after(READ_TIMEOUT) as timeout:
            while b"\r\n\r\n" not in head and len(head) <= MAX_REQUEST_HEAD:
                chunk = await stream.receive_some(MAX_REQUEST_HEAD + 1 - len(head) or 1)
                if not chunk:
                    break
                head += chunk
        if timeout.cancelled_caught:
            return 408, text, b"request timeout\n", False
        end = head.find(b"\r\n\r\n")
        if end < 0:
            if len(head) > MAX_REQUEST_HEAD:
                return 431, text, b"request head too large\n", False
            return 400, text, b"incomplete request\n", False
        request_line = head[: head.find(b"\r\n")]
        parts = request_line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not parts[1].startswith(b"/"):
            return 400, text, b"malformed request line\n", False
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return 405, [*text, ("Allow", "GET, HEAD")], b"method not allowed\n", False
        return (*self._route(target), method == b"HEAD")

    def _route(self, path: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        text = [("Content-Type", "text/plain; charset=utf-8")]
        worker = self.worker
        if path == b"/":
            if worker.connected:
                return 200, text, b"OK\n"
            return 503, text, b"not registered with the LiveKit server\n"
        if path == b"/livez":
            return 200, text, b"alive\n"
        if path == b"/worker":
            info = {
                "agent_name": worker.agent_name,
                "worker_id": worker.worker_id,
                "worker_type": worker.worker_type,
                "active_jobs": len(worker.active_jobs),
                "jobs": [
                    {"id": job.job.id, "room": job.job.room_name} for job in worker.active_jobs
                ],
                "status": _status_name(worker.status),
                "draining": worker.draining,
                "connected": worker.connected,
                "load": worker.load,
                "sdk_version": worker.version,
                "sdk": "tvoice",
            }
            return 200, [("Content-Type", "application/json")], json.dumps(info).encode()
        if path == b"/metrics":
            return 200, [("Content-Type", PROMETHEUS_CONTENT_TYPE)], render_metrics(worker).encode()
        return 404, text, b"not found\n"


def _status_name(status: object) -> str:
    value = getattr(status, "value", status)
    return str(value)


def render_metrics(worker: WorkerState) -> str:
    """The worker's metrics in the Prometheus text format."""
    agent = _label(worker.agent_name)
    labels = f'agent_name="{agent}"'
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for extra, value in samples:
            all_labels = ",".join(filter(None, [labels, extra]))
            lines.append(f"{name}{{{all_labels}}} {_number(value)}")

    metric(
        "tvoice_worker_load",
        "gauge",
        "The load last reported to the LiveKit server (0 to 1).",
        [("", worker.load)],
    )
    metric(
        "tvoice_worker_active_jobs", "gauge", "Jobs running now.", [("", len(worker.active_jobs))]
    )
    metric(
        "tvoice_worker_connected",
        "gauge",
        "1 while registered with the LiveKit server over a live connection.",
        [("", int(worker.connected))],
    )
    metric(
        "tvoice_worker_available",
        "gauge",
        "1 while the worker takes new jobs (not full, not draining).",
        [("", int(_status_name(worker.status) == "available" and not worker.draining))],
    )
    metric(
        "tvoice_worker_registrations_total",
        "counter",
        "Registrations with the LiveKit server (the first, then each reconnection).",
        [("", worker.registrations)],
    )
    metric(
        "tvoice_worker_jobs_total",
        "counter",
        "Jobs by outcome: started, succeeded, failed; rejected offers.",
        [
            ('outcome="started"', worker.jobs_started),
            ('outcome="succeeded"', worker.jobs_succeeded),
            ('outcome="failed"', worker.jobs_failed),
            ('outcome="rejected"', worker.jobs_rejected),
        ],
    )
    start = "tvoice_worker_job_start_seconds"
    lines.append(
        f"# HELP {start} From the server's job offer to the entrypoint running in a process."
    )
    lines.append(f"# TYPE {start} summary")
    lines.append(f"{start}_sum{{{labels}}} {_number(worker.job_start_seconds_sum)}")
    lines.append(f"{start}_count{{{labels}}} {worker.job_start_count}")
    rss = _resident_memory_bytes()
    if rss is not None:
        lines.append("# HELP process_resident_memory_bytes Resident memory of the worker process.")
        lines.append("# TYPE process_resident_memory_bytes gauge")
        lines.append(f"process_resident_memory_bytes {rss}")
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak *= 1 if sys.platform == "darwin" else 1024
    lines.append("# HELP process_max_resident_memory_bytes Peak resident memory of the process.")
    lines.append("# TYPE process_max_resident_memory_bytes gauge")
    lines.append(f"process_max_resident_memory_bytes {peak}")
    return "\n".join(lines) + "\n"


def _resident_memory_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))
