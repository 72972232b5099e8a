"""What an entrypoint receives: its process, its job and its room."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
import trio

from ..io import Participant, SessionRoom

__all__ = ["JobContext", "JobInfo", "JobProcess"]

logger = logging.getLogger("tvoice.job")
T = TypeVar("T")


class JobProcess:
    """The process a job runs in. ``prewarm_fnc(proc)`` fills ``userdata`` (models loaded once,
    before any job arrives); every job of the process sees the same ``userdata``."""

    def __init__(self, *, progress: Callable[[str], None] | None = None) -> None:
        self.userdata: dict[str, Any] = {}
        self.pid = os.getpid()
        self._progress = progress or (lambda line: logger.info("%s", line))

    def load(self, label: str, loader: Callable[[], T]) -> T:
        """Run ``loader()`` (a model load), reporting progress: ``proc.load("VAD", VAD.load)``."""
        self._progress(f"loading {label}...")
        # perf_counter: a human-facing duration of start-up work, not session time.
        start = time.perf_counter()
        value = loader()
        self._progress(f"loaded {label} in {time.perf_counter() - start:.1f} s")
        return value


@attrs.frozen(kw_only=True)
class JobInfo:
    """The job the server assigned: its id, room name, and the dispatch's metadata."""

    id: str
    room_name: str
    agent_name: str = ""
    metadata: str = ""
    publisher_identity: str = ""
    """For a ``WorkerType.PUBLISHER`` worker, the participant whose publishing started the
    job (the session links it); "" for a room job."""


class JobContext:
    """Everything an entrypoint needs: ``ctx.room`` to start a session in, ``ctx.proc`` with the
    prewarmed models, ``ctx.job``, and the job's lifetime (``shutdown``, shutdown callbacks)."""

    def __init__(
        self,
        *,
        proc: JobProcess,
        job: JobInfo,
        room: SessionRoom,
    ) -> None:
        self.proc = proc
        self.job = job
        self.room = room
        self._shutdown = trio.Event()
        self.shutdown_reason = ""
        self._callbacks: list[Callable[[], Awaitable[None]]] = []
        self.log_context_fields: dict[str, Any] = {"job_id": job.id, "room": job.room_name}

    async def connect(self) -> None:
        """Join the room (a no-op when already connected, or in the console)."""
        await self.room.connect()

    async def wait_for_participant(self, *, identity: str | None = None) -> Participant:
        """The participant the agent serves: ``identity``, or the first one to join."""
        return await self.room.wait_for_participant(identity=identity)

    def add_shutdown_callback(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``await callback()`` when the job ends (shielded, within the shutdown deadline)."""
        self._callbacks.append(callback)

    def shutdown(self, reason: str = "") -> None:
        """End the job: the entrypoint is cancelled and the shutdown callbacks run."""
        if not self._shutdown.is_set():
            self.shutdown_reason = reason
            self._shutdown.set()

    async def wait_for_shutdown(self) -> None:
        """Wait until :meth:`shutdown` is called."""
        await self._shutdown.wait()

    async def run_shutdown_callbacks(self, *, timeout_s: float) -> None:
        """Run the callbacks, shielded, within ``timeout_s`` (the job runner calls this)."""
        with trio.CancelScope(shield=True, deadline=trio.current_time() + timeout_s):
            for callback in self._callbacks:
                try:
                    await callback()
                except Exception:
                    logger.exception("shutdown callback %r failed", callback)
