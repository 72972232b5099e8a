from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["EventEmitter"]

logger = logging.getLogger("tvoice")
E = TypeVar("E", bound=str)


class EventEmitter(Generic[E]):
    """Synchronous callbacks by event name, like LiveKit's ``EventEmitter``.

    Callbacks run inline when the event is emitted, so they must not block; to do async work,
    start a task in a nursery you own. A callback that raises is logged and does not stop the
    others or the emitter.
    """

    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callable[..., Any]]] = {}

    def on(self, event: E, callback: Callable[..., Any] | None = None) -> Any:
        """Register ``callback`` for ``event``; usable as a decorator when callback is omitted."""
        if callback is None:

            def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
                self.on(event, fn)
                return fn

            return decorator
        self._callbacks.setdefault(event, []).append(callback)
        return callback

    def once(self, event: E, callback: Callable[..., Any]) -> None:
        """Register ``callback`` for the next ``event`` only."""

        def wrapper(*args: Any) -> None:
            self.off(event, wrapper)
            callback(*args)

        self.on(event, wrapper)

    def off(self, event: E, callback: Callable[..., Any]) -> None:
        """Remove a callback registered with :meth:`on`."""
        callbacks = self._callbacks.get(event, [])
        if callback in callbacks:
            callbacks.remove(callback)

    def emit(self, event: E, *args: Any) -> None:
        """Call every callback of ``event`` with ``args``."""
        for callback in list(self._callbacks.get(event, ())):
            try:
                callback(*args)
            except Exception:
                logger.exception("error in %r callback %r", event, callback)
