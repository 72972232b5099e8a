"""What the worker hands to whatever runs a job, and what it gets back.

The worker (``_worker.py``) and the process pool (``_pool.py``) meet here: the worker builds a
:class:`RunningJobInfo` from the server's assignment, a :class:`JobLauncher` (the pool, or a fake
in tests) runs it and returns a :class:`JobResult`.
"""

from __future__ import annotations

from typing import Protocol

import attrs
import trio

from ._context import JobInfo

__all__ = ["MAX_ERROR_CHARS", "JobLauncher", "JobResult", "RunningJobInfo", "cut_error"]

MAX_ERROR_CHARS = 4000
"""How much of an error text travels (to the worker, to the server, into the logs): an
exception's text is the job's to choose, and a long one must not outgrow a message."""


def cut_error(text: str) -> str:
    """``text``, cut to :data:`MAX_ERROR_CHARS` characters at most (saying how long it was)."""
    if len(text) <= MAX_ERROR_CHARS:
        return text
    # The cut text fits the limit itself: cutting it again (worker after process) is a no-op.
    suffix = f"... ({len(text)} characters in all)"
    return text[: MAX_ERROR_CHARS - len(suffix)] + suffix


@attrs.frozen(kw_only=True)
class RunningJobInfo:
    """A job the server assigned to this worker, with what is needed to join its room."""

    job: JobInfo
    url: str
    """The LiveKit WebSocket URL of the job's room."""
    fallback_urls: tuple[str, ...] = ()
    """The worker's other URLs of the same LiveKit deployment: the job joins its room again
    through them if its connection through ``url`` is lost."""
    token: str = attrs.field(repr=False)
    """The agent participant's access token (built by the server for this job; never in a
    repr, so never in a log)."""
    worker_id: str = ""
    participant_identity: str = ""
    """The identity the agent joins with (from ``JobRequest.accept``)."""


@attrs.frozen(kw_only=True)
class JobResult:
    """How a job ended: ``success``, or a clear ``error`` (crash, killed, timeout...)."""

    success: bool
    error: str = attrs.field(default="", converter=cut_error)


class JobLauncher(Protocol):
    """What the worker needs from a process pool: run one job, count the running ones."""

    @property
    def active_jobs(self) -> int:
        """How many jobs are running now."""
        ...

    async def run_job(
        self, info: RunningJobInfo, *, task_status: trio.TaskStatus[None] = ...
    ) -> JobResult:
        """Run ``info``'s job: ``task_status.started()`` once its entrypoint runs, return when it
        ends. Cancelling it shuts the job down gracefully (bounded)."""
        ...
