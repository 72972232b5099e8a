from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TypeVar

import trio

__all__ = ["BackgroundTasks"]

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
