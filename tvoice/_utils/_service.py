from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Generic, TypeVar

import trio

__all__ = ["BackgroundTasks", "StartedOnce"]

T = TypeVar("T")


class BackgroundTasks:
    """An ``async with`` that owns a nursery of helper tasks, cancelled when the block ends.

    Unlike a bare nursery, leaving the block does not wait for the tasks: they are cancelled
    (their ``finally`` blocks run) and only then does the block exit. The body's own exception
    propagates unwrapped, because the nursery is exited as if the body had finished normally
    after its tasks were cancelled; a crash of a helper task still propagates as a group.
    """

    __slots__ = ("_cm", "_nursery")

    def __init__(self) -> None:
        self._cm: AbstractAsyncContextManager[trio.Nursery] | None = None
        self._nursery: trio.Nursery | None = None

    @property
    def nursery(self) -> trio.Nursery:
        """The owned nursery; only valid inside the ``async with`` block."""
        if self._nursery is None:
            raise RuntimeError("BackgroundTasks used outside its `async with` block")
        return self._nursery

    async def __aenter__(self) -> trio.Nursery:
        if self._cm is not None:
            raise RuntimeError("BackgroundTasks cannot be entered twice")
        self._cm = trio.open_nursery()
        self._nursery = await self._cm.__aenter__()
        return self._nursery

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        assert self._cm is not None
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()
        cm, self._nursery = self._cm, None
        await cm.__aexit__(None, None, None)
        return False


class StartedOnce(trio.TaskStatus[T], Generic[T]):
    """Passes ``started()`` on to trio's task status, then lets go of it.

    trio's status keeps the nursery the task was started in (with its cancel scope) for as long
    as something holds the status; a task that runs for the whole session would keep it all that
    time. Wrap it, and drop the original::

        async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
            status = StartedOnce(task_status)
            del task_status
    """

    __slots__ = ("_status",)

    def __init__(self, status: trio.TaskStatus[T]) -> None:
        self._status: trio.TaskStatus[T] | None = status

    @property
    def pending(self) -> bool:
        """Whether :meth:`started` is still to be called."""
        return self._status is not None

    def started(self, value: T | None = None) -> None:
        """Report the task started (once, like trio's)."""
        if self._status is None:
            raise RuntimeError("called 'started' twice on the same task status")
        status, self._status = self._status, None
        status.started(value)  # type: ignore[arg-type]
