from __future__ import annotations

import logging
import math
from types import TracebackType
from typing import Generic, Self, TypeVar

import trio

from .._errors import APIError, APITimeoutError
from ._retry import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, retry_delay
from ._service import BackgroundTasks

__all__ = ["InputStream", "OutputStream"]

logger = logging.getLogger("tvoice")
T = TypeVar("T")
In = TypeVar("In")


class OutputStream(Generic[T]):
    """Base of every model stream: ``async with`` it, then ``async for`` its output.

    A subclass writes ``_run()``, which produces output with ``await self._emit(item)``. It runs
    in a task the stream owns, so leaving the ``async with`` block (or ``aclose()``) cancels the
    provider's work, wherever it is. ``_run`` is retried on ``APIError(retryable=True)`` while
    nothing has been emitted in that attempt, with the delays of :class:`APIConnectOptions`.
    Any error ends the output and is raised from iteration: provider errors as they are, any
    other exception as a non-retryable ``APIError`` whose ``__cause__`` is the original.

    With ``_idle_timeout`` set, ``conn_options.timeout`` bounds every wait for the next piece
    of output (the time the consumer takes to read is not counted) and raises
    ``APITimeoutError``, so a provider that stops answering can never hang a turn.
    """

    _output_capacity: int = 32
    _idle_timeout: bool = False

    def __init__(self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS) -> None:
        self._conn_options = conn_options
        self._send: trio.MemorySendChannel[T]
        self._recv: trio.MemoryReceiveChannel[T]
        # Not ``open_memory_channel[T](...)``: subscripting runs typing's machinery per stream.
        self._send, self._recv = trio.open_memory_channel(self._output_capacity)
        self._tasks = BackgroundTasks()
        self._state = "new"
        self._error: APIError | None = None
        self._emitted = False
        self._watchdog: trio.CancelScope | None = None
        self._started_at = 0.0
        self._first_output_at: float | None = None

    @property
    def conn_options(self) -> APIConnectOptions:
        """The retry and timeout settings of this stream."""
        return self._conn_options

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RuntimeError(f"{type(self).__name__} can be entered only once")
        nursery = await self._tasks.__aenter__()
        self._state = "open"
        nursery.start_soon(self._main)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel the provider's work and release the stream. Safe to call more than once."""
        if self._state == "open":
            self._state = "closed"
            self._recv.close()
            await self._tasks.__aexit__(None, None, None)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        if self._state == "new":
            raise RuntimeError(
                f"{type(self).__name__} must be opened first: `async with ... as stream:`"
            )
        try:
            return await self._recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            if self._error is not None:
                raise self._error from self._error.__cause__
            raise StopAsyncIteration from None

    async def collect(self) -> list[T]:
        """Read the whole output (the stream must be open)."""
        return [item async for item in self]

    async def _emit(self, item: T) -> None:
        """Send one piece of output; waits while the consumer is behind (backpressure)."""
        self._emitted = True
        if self._first_output_at is None:
            self._first_output_at = trio.current_time()
        watchdog = self._watchdog
        # Only the wait for the consumer is set aside from the watchdog: the provider is timed,
        # the reader is not.
        if watchdog is not None:
            watchdog.deadline = math.inf
        try:
            await self._send.send(item)
        except trio.BrokenResourceError:
            # The consumer closed the stream: stop producing.
            raise _ConsumerGone from None
        if watchdog is not None:
            watchdog.deadline = trio.current_time() + self._conn_options.timeout

    async def _run(self) -> None:
        raise NotImplementedError

    async def _attempt(self) -> None:
        if not self._idle_timeout:
            await self._run()
            return
        with trio.CancelScope(deadline=trio.current_time() + self._conn_options.timeout) as scope:
            self._watchdog = scope
            try:
                await self._run()
            finally:
                self._watchdog = None
        if scope.cancelled_caught:
            raise APITimeoutError(
                f"{type(self).__name__}: no output for {self._conn_options.timeout} s"
            )

    async def _main(self) -> None:
        self._started_at = trio.current_time()
        finished = False
        try:
            await self._attempts()
            finished = True
        finally:
            # Report before the consumer can see the end of the output, and close without a
            # checkpoint: a consumer that leaves as soon as the output ends cancels this task,
            # which must not turn a finished stream into a cancelled one.
            try:
                self._report(cancelled=not finished or self._error is not None)
            finally:
                self._send.close()
                self._ended()

    def _ended(self) -> None:
        """Called once when the provider's task ends, after the output closed."""

    def _report(self, *, cancelled: bool) -> None:
        """Called once when the stream ends (also on cancellation): emit metrics here."""

    async def _attempts(self) -> None:
        retries = 0
        while True:
            self._emitted = False
            try:
                # Without a watchdog, no frame in between: an idle stream's task holds less.
                await (self._attempt() if self._idle_timeout else self._run())
                return
            except _ConsumerGone:
                return
            except APIError as e:
                if not e.retryable or self._emitted or retries >= self._conn_options.max_retry:
                    self._error = e
                    return
                retries += 1
                delay = retry_delay(self._conn_options, retries)
                logger.warning(
                    "%s failed (%s), retry %d in %.2f s", type(self).__name__, e, retries, delay
                )
                await trio.sleep(delay)
            except Exception as e:
                logger.exception("%s failed", type(self).__name__)
                error = APIError(f"{type(self).__name__} failed: {e!r}", retryable=False)
                error.__cause__ = e
                self._error = error
                return


class _ConsumerGone(Exception):
    """Raised inside ``_run`` when nobody reads the output any more."""


class InputStream(OutputStream[T], Generic[In, T]):
    """An :class:`OutputStream` that also takes input: ``await push(x)``, then ``end_input()``.

    The input channel is bounded, so a provider that falls behind slows whoever pushes. ``_run``
    reads ``self._input`` (an async iterable that ends after ``end_input()``); a retry continues
    with the input not yet read.
    """

    _input_capacity: int = 64

    def __init__(self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS) -> None:
        super().__init__(conn_options=conn_options)
        self._input_send: trio.MemorySendChannel[In]
        self._input: trio.MemoryReceiveChannel[In]
        self._input_send, self._input = trio.open_memory_channel(self._input_capacity)

    async def _push(self, item: In) -> None:
        if self._state == "new":
            raise RuntimeError(
                f"{type(self).__name__} must be opened first: `async with ... as stream:`"
            )
        try:
            await self._input_send.send(item)
        except trio.ClosedResourceError:
            raise RuntimeError(f"{type(self).__name__}: input already ended") from None
        except trio.BrokenResourceError:
            # The provider stopped reading (it failed or finished): its error is raised from
            # iteration, so pushing more is simply dropped rather than raising twice.
            pass

    def end_input(self) -> None:
        """No more input: the provider finishes what it has, then the output ends."""
        self._input_send.close()

    async def aclose(self) -> None:
        self._input_send.close()
        await super().aclose()

    def _ended(self) -> None:
        # Pushes after the provider stopped reading are dropped instead of blocking forever.
        self._input.close()
        super()._ended()
