"""asyncio as host, trio as guest: the livekit SDK lives on asyncio, everything else on trio.

:func:`run_with_asyncio_host` runs an asyncio loop (``asyncio.run``) and, inside it, a trio run
in guest mode (``trio.lowlevel.start_guest_run``). Both run on the same thread: a trio task and
an asyncio callback never run at the same time, so plain attributes can be read from either
side. What each side may *call* differs:

- trio code may call synchronous livekit/asyncio APIs (``source.clear_queue()``,
  ``room.on(...)``, ``loop.call_soon``); to await asyncio work it uses
  :meth:`AsyncioBridge.call`, which runs the coroutine as an asyncio task it owns and waits for it.
- asyncio code (room event callbacks, the SDK's tasks) must not touch trio objects directly
  (a trio channel's ``send_nowait`` needs the trio run's context): it hands a function to trio
  with :meth:`AsyncioBridge.run_sync_in_trio`, or puts items into a :class:`CrossingChannel`.

Cancellation crosses both ways: a trio cancellation cancels the asyncio task and waits for it
(bounded); an asyncio task cancelled from the asyncio side raises :class:`AsyncioCancelled` in
trio. An error from the trio side ends the host loop and propagates from
:func:`run_with_asyncio_host`; Ctrl-C (SIGINT) cancels the trio run and raises
``KeyboardInterrupt`` once it has unwound. SIGTERM keeps its default unless the trio side
handles it (``trio.open_signal_receiver`` works in guest mode).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

import outcome
import trio

__all__ = [
    "AsyncioBridge",
    "AsyncioCancelled",
    "CrossingChannel",
    "current_bridge",
    "run_with_asyncio_host",
]

logger = logging.getLogger("tvoice.livekit")
T = TypeVar("T")

# How long a trio cancellation waits for the asyncio task it cancelled to finish.
CANCEL_TIMEOUT = 5.0

_BRIDGE: trio.lowlevel.RunVar[AsyncioBridge] = trio.lowlevel.RunVar("tvoice_asyncio_bridge")


class AsyncioCancelled(RuntimeError):
    """The asyncio task behind :meth:`AsyncioBridge.call` was cancelled from the asyncio side
    (not by the trio caller): the host loop is shutting down, or asyncio code cancelled it."""


class AsyncioBridge:
    """The link between the trio guest and its asyncio host (see the module's docstring).

    Get it with :func:`current_bridge` from trio code running under
    :func:`run_with_asyncio_host`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, token: trio.lowlevel.TrioToken) -> None:
        self.loop = loop
        self._token = token

    async def call(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run ``fn(*args)`` as an asyncio task and return its result (or raise its error).

        Cancelling the calling trio task cancels the asyncio task and waits for it to end, at
        most ``CANCEL_TIMEOUT`` seconds (shielded), before the cancellation goes on.
        """
        done = trio.Event()
        task = self.loop.create_task(fn(*args))
        task.add_done_callback(lambda _: self.run_sync_in_trio(done.set))
        try:
            await done.wait()
        except BaseException:
            task.cancel()
            with trio.move_on_after(CANCEL_TIMEOUT) as scope:
                scope.shield = True
                await done.wait()
            if not task.done():
                logger.warning(
                    "asyncio task %r did not end within %s s of its cancellation",
                    task,
                    CANCEL_TIMEOUT,
                )
            elif not task.cancelled() and task.exception() is not None:
                # Its error would otherwise be logged as never retrieved.
                logger.debug(
                    "asyncio task %r failed while cancelled", task, exc_info=task.exception()
                )
            raise
        if task.cancelled():
            raise AsyncioCancelled(f"the asyncio task running {fn!r} was cancelled")
        error = task.exception()
        if error is not None:
            raise error
        return task.result()

    def run_sync_in_trio(self, fn: Callable[..., object], *args: Any) -> None:
        """Schedule ``fn(*args)`` to run in trio (from asyncio callbacks; thread-safe).

        An exception from ``fn`` is logged (it would otherwise crash the trio run); a call made
        after the trio run has finished is dropped.
        """
        try:
            self._token.run_sync_soon(_logged, fn, args)
        except trio.RunFinishedError:
            logger.debug("trio has finished: dropped %r", fn)

    def channel(
        self, capacity: int, *, label: str, on_drop: Callable[[Any], None] | None = None
    ) -> CrossingChannel[Any]:
        """A bounded channel from asyncio to trio that never blocks its asyncio sender."""
        return CrossingChannel(self, capacity, label=label, on_drop=on_drop)


def _logged(fn: Callable[..., object], args: tuple[Any, ...]) -> None:
    try:
        fn(*args)
    except Exception:
        logger.exception("error in %r, called from asyncio", fn)


class CrossingChannel(Generic[T]):
    """Items from asyncio code to a trio reader, in order, at most ``capacity`` waiting.

    :meth:`put` never blocks (the asyncio side is real time): when the trio reader is
    ``capacity`` items behind, the oldest waiting item is dropped and a warning is logged (once
    per burst). Items put in one asyncio callback burst cross in a single trio callback.
    ``on_drop(item)`` is called for each dropped item (to release what it holds).
    """

    def __init__(
        self,
        bridge: AsyncioBridge,
        capacity: int,
        *,
        label: str,
        on_drop: Callable[[T], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._bridge = bridge
        self.label = label
        self.capacity = capacity
        self._send, self.receiver = trio.open_memory_channel[T](capacity)
        self._pending: collections.deque[T] = collections.deque()
        self._scheduled = False
        self._closing = False
        self._dropping = False
        self._on_drop = on_drop
        self.dropped = 0

    def put(self, item: T) -> None:
        """Add ``item`` (asyncio side)."""
        if self._closing:
            return
        self._pending.append(item)
        if len(self._pending) > self.capacity:
            self._note_drop(self._pending.popleft())
        if not self._scheduled:
            self._scheduled = True
            self._bridge.run_sync_in_trio(self._deliver)

    def close(self) -> None:
        """End of the items (asyncio side): the reader sees the end after those already put."""
        self._closing = True
        if not self._scheduled:
            self._scheduled = True
            self._bridge.run_sync_in_trio(self._deliver)

    def _note_drop(self, item: T) -> None:
        self.dropped += 1
        if self._on_drop is not None:
            try:
                self._on_drop(item)
            except Exception:
                logger.exception("%s: on_drop failed", self.label)
        if not self._dropping:
            self._dropping = True
            logger.warning("%s: the trio side is behind, dropping the oldest items", self.label)

    def _deliver(self) -> None:
        # Runs in trio.
        self._scheduled = False
        dropped = False
        while self._pending:
            item = self._pending.popleft()
            try:
                self._send.send_nowait(item)
            except trio.WouldBlock:
                # The reader is `capacity` items behind: the oldest waiting item goes.
                with contextlib.suppress(trio.WouldBlock):
                    self._note_drop(self.receiver.receive_nowait())
                self._send.send_nowait(item)
                dropped = True
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                # Nobody reads any more: everything still waiting is dropped.
                for rest in (item, *self._pending):
                    self._note_drop(rest)
                self._pending.clear()
                return
        if not dropped:
            self._dropping = False  # caught up: warn again at the next burst
        if self._closing:
            self._send.close()


def current_bridge() -> AsyncioBridge:
    """The bridge of the current trio run; raises RuntimeError outside
    :func:`run_with_asyncio_host`."""
    try:
        return _BRIDGE.get()
    except (LookupError, RuntimeError):
        raise RuntimeError(
            "no asyncio host: run this trio code with tvoice.livekit.run_with_asyncio_host"
        ) from None


def run_with_asyncio_host(async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run an asyncio loop as host (like ``asyncio.run``) with trio as its guest running
    ``async_fn(*args)``; return its result or raise its error. Inside, :func:`current_bridge`
    works."""
    return asyncio.run(_host(async_fn, args))


async def _host(async_fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[outcome.Outcome[T | None]] = loop.create_future()
    main_scope = trio.CancelScope()
    tokens: list[trio.lowlevel.TrioToken] = []

    async def trio_main() -> T | None:
        token = trio.lowlevel.current_trio_token()
        tokens.append(token)
        _BRIDGE.set(AsyncioBridge(loop, token))
        with main_scope:
            return await async_fn(*args)
        return None  # cancelled by the host, which raises its own cancellation

    def finished(result: outcome.Outcome[T | None]) -> None:
        if not done.done():
            done.set_result(result)

    trio.lowlevel.start_guest_run(
        trio_main,
        run_sync_soon_threadsafe=loop.call_soon_threadsafe,
        done_callback=finished,
    )
    try:
        result = await asyncio.shield(done)
    except asyncio.CancelledError:
        # The host is being cancelled (Ctrl-C under asyncio.run): let trio unwind first.
        if tokens:
            with contextlib.suppress(trio.RunFinishedError):
                tokens[0].run_sync_soon(main_scope.cancel)
        await _wait_unwound(done)
        unwound = done.result()
        if isinstance(unwound, outcome.Error):
            logger.error("the trio side failed while cancelled", exc_info=unwound.error)
        raise
    return result.unwrap()  # type: ignore[return-value]  # None only when cancelled


async def _wait_unwound(done: asyncio.Future[Any]) -> None:
    # The trio run must finish before the loop closes; cancellations of this wait are refused.
    while not done.done():
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            continue
