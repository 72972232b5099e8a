"""`WorkerOptions` and `run_app`: how an agent file describes itself to the command line."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import attrs

from ..livekit._permissions import WorkerPermissions, WorkerType
from ._context import JobContext, JobProcess

__all__ = ["JobRequest", "WorkerOptions", "WorkerPermissions", "WorkerType"]


@attrs.define(kw_only=True)
class JobRequest:
    """A job offered to the worker; ``request_fnc`` accepts or rejects it."""

    job_id: str
    room_name: str
    agent_name: str = ""
    metadata: str = ""
    publisher_identity: str = ""
    """The publishing participant a ``WorkerType.PUBLISHER`` job is for ("" for a room job)."""
    accepted: bool | None = None
    identity: str = ""
    name: str = ""

    async def accept(self, *, identity: str = "", name: str = "") -> None:
        """Take the job (optionally with the agent participant's identity and name)."""
        self.accepted, self.identity, self.name = True, identity, name

    async def reject(self) -> None:
        """Leave the job to another worker."""
        self.accepted = False


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def _urls(urls: str | Iterable[str]) -> tuple[str, ...]:
    # One URL given as a string is one URL, not a tuple of its characters.
    return (urls,) if isinstance(urls, str) else tuple(urls)


@attrs.frozen(kw_only=True)
class WorkerOptions:
    """An agent file's entrypoint, prewarm and worker settings (LiveKit Agents' names)."""

    entrypoint_fnc: Callable[[JobContext], Awaitable[None]]
    prewarm_fnc: Callable[[JobProcess], Any] | None = None
    request_fnc: Callable[[JobRequest], Awaitable[None]] | None = None
    agent_name: str = ""
    num_idle_processes: int = 2
    load_threshold: float = 0.7
    job_memory_warn_mb: float = 500.0
    job_memory_limit_mb: float = 0.0
    drain_timeout: float = 1800.0
    shutdown_timeout: float = 60.0
    """Seconds a job has to end once asked to (by the room, the server, a drain): its
    session's close (``AgentSession(close_timeout=...)``, 10 s by default), its shutdown
    callbacks and leaving its room all come out of this one budget; past it (and a moment to
    exit) the process is killed."""
    initialize_process_timeout: float = 10.0
    load_fnc: Callable[[], float] | Callable[[Any], float] | None = None
    """The worker's load in [0, 1], read every 2.5 s: ``load_fnc()`` or ``load_fnc(worker)``
    (``worker.active_jobs`` lists its running jobs). Default: the machine's CPU use. The
    server picks among available workers at random, weighted by ``1 - load``: nothing goes
    to a worker at load 1."""
    max_retry: int = 16
    """Reconnection attempts to the server before the worker gives up (0: forever)."""
    worker_type: WorkerType = WorkerType.ROOM
    """One job per room, or one per participant publishing in it (``WorkerType.PUBLISHER``)."""
    permissions: WorkerPermissions = attrs.field(factory=WorkerPermissions)
    """What the agent may do in its rooms (the server writes them into each job's token)."""
    host: str = "127.0.0.1"
    port: int = 8081
    ws_url: str = attrs.field(factory=lambda: _env("LIVEKIT_URL", "ws://127.0.0.1:7880"))
    fallback_urls: tuple[str, ...] = attrs.field(default=(), converter=_urls)
    """Other servers of the same LiveKit deployment (nodes sharing its Redis), for when the
    current one is lost: each failed connection attempt moves on to the next URL of
    ``(ws_url, *fallback_urls)``, round and round, and the worker stays with whichever server
    registers it. Each job joins its room through the server that assigned it, and joins it
    again through the others if that server is lost during the call."""
    api_key: str = attrs.field(factory=lambda: _env("LIVEKIT_API_KEY"))
    api_secret: str = attrs.field(factory=lambda: _env("LIVEKIT_API_SECRET"), repr=False)
