"""A client WebSocket with no task of its own, so that a model object can keep one between
replies: whoever awaits :meth:`Connection.receive` reads the network (answering pings as it
goes), and sends from any task are serialised by a lock.

trio-websocket runs a reader task per connection in a nursery given at connect time, so its
connections cannot outlive the stream that opened them; this one, on wsproto (which
trio-websocket is built on), can be parked in the TTS and taken by the next reply, and while it
is parked a keeper may read it (:meth:`Connection.wait_closed`) to learn at once that it
dropped. The plugins whose TTS keeps a connection between replies (cartesia, elevenlabs,
deepgram) share it, through :mod:`._kept`.
"""

from __future__ import annotations

import contextlib
import ssl
from collections import deque
from urllib.parse import urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

__all__ = ["Closed", "Connection", "Rejected"]

_MAX_MESSAGE = 16 * 1024 * 1024
# How long answering a ping may take while the connection is idle.
_PONG_TIMEOUT = 1.0
_Stream = trio.SocketStream | trio.SSLStream[trio.SocketStream]


class Closed(Exception):
    """The connection ended: ``code`` from the peer's close frame, 1006 when it just broke."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"{code} {reason}".strip())
        self.code = code
        self.reason = reason


class Rejected(Exception):
    """The server refused the handshake with an HTTP status."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers
        self.body = body


class Connection:
    """An open client WebSocket: ``send_text``, ``receive``, ``aclose``."""

    def __init__(self, stream: _Stream) -> None:
        self._stream = stream
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._events: deque[Event] = deque()
        self._send_lock = trio.Lock()
        self._parts: list[str | bytes] = []
        self._size = 0
        self._closed: Closed | None = None

    @classmethod
    async def open(cls, url: str, headers: list[tuple[str, str]]) -> Connection:
        """Connect to ``url`` (``ws://`` or ``wss://``) and do the handshake. Raises
        :class:`Rejected`, :class:`Closed` or OSError; bound it with a timeout."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        stream: _Stream
        if parts.scheme == "wss":
            stream = await trio.open_ssl_over_tcp_stream(
                host,
                parts.port or 443,
                ssl_context=ssl.create_default_context(),
                https_compatible=True,
            )
        else:
            stream = await trio.open_tcp_stream(host, parts.port or 80)
        connection = cls(stream)
        try:
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            await connection._handshake(parts.netloc, target or "/", headers)
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return connection

    @property
    def closed(self) -> bool:
        """Whether the connection can no longer be used."""
        return self._closed is not None

    async def _handshake(self, host: str, target: str, headers: list[tuple[str, str]]) -> None:
        request = Request(
            host=host,
            target=target,
            extra_headers=[(k.encode(), v.encode()) for k, v in headers],
        )
        await self._write(self._ws.send(request))
        status, reply_headers, body = 0, {}, bytearray()
        while True:
            event = await self._next_event()
            if isinstance(event, AcceptConnection):
                return
            if isinstance(event, RejectConnection):
                status = event.status_code
                reply_headers = {
                    k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers
                }
                if not event.has_body:
                    raise Rejected(status, reply_headers, b"")
            elif isinstance(event, RejectData):
                body += event.data
                if event.body_finished or len(body) > 65536:
                    raise Rejected(status, reply_headers, bytes(body))

    async def send_text(self, text: str) -> None:
        """Send one text message."""
        await self._write(self._send_event(TextMessage(data=text)))

    def _send_event(self, event: Event) -> bytes:
        if self._closed is not None:
            raise self._closed
        try:
            return self._ws.send(event)
        except LocalProtocolError:
            raise Closed(1006, "the connection is closing") from None

    async def _write(self, data: bytes) -> None:
        async with self._send_lock:
            if self._closed is not None:
                raise self._closed
            done = False
            try:
                await self._stream.send_all(data)
                done = True
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                self._closed = Closed(1006, "the connection broke")
                raise self._closed from None
            finally:
                if not done and self._closed is None:
                    # Cancelled half-way: a frame may be cut, so the connection is unusable.
                    self._closed = Closed(1006, "a send was cancelled")

    async def _next_event(self) -> Event:
        while not self._events:
            if self._closed is not None:
                raise self._closed
            try:
                data = await self._stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                data = b""
            if not data:
                self._closed = Closed(1006, "the connection broke")
                raise self._closed
            try:
                self._ws.receive_data(bytes(data))
                self._events.extend(self._ws.events())
            except RemoteProtocolError as e:
                self._closed = Closed(1002, f"protocol error: {e}")
                raise self._closed from None
        return self._events.popleft()

    async def receive(self) -> str | bytes:
        """The next whole message. Raises :class:`Closed` when the connection ends."""
        while True:
            event = await self._next_event()
            if isinstance(event, TextMessage | BytesMessage):
                self._parts.append(event.data if isinstance(event.data, str) else bytes(event.data))
                self._size += len(event.data)
                if self._size > _MAX_MESSAGE:
                    self._closed = Closed(1009, "message too big")
                    raise self._closed
                if event.message_finished:
                    parts, self._parts, self._size = self._parts, [], 0
                    if isinstance(event, TextMessage):
                        return "".join(p for p in parts if isinstance(p, str))
                    return b"".join(p for p in parts if isinstance(p, bytes))
            elif isinstance(event, Ping):
                await self._write(self._send_event(event.response()))
            elif isinstance(event, CloseConnection):
                raise await self._close_received(event)

    async def _close_received(self, event: CloseConnection) -> Closed:
        closed = Closed(event.code, event.reason or "")
        if self._ws.state == ConnectionState.REMOTE_CLOSING:
            with contextlib.suppress(Closed):
                await self._write(self._send_event(event.response()))
        self._closed = closed
        await trio.aclose_forcefully(self._stream)
        return closed

    async def wait_closed(self) -> None:
        """Read the network while nobody receives (the connection is idle), until the
        connection ends: pings and a close frame are answered there and then, and messages
        are kept, in order, for the next :meth:`receive`. Returns once :attr:`closed`.

        Cancel it, and let it return, before another task receives: a cancellation lands
        between two reads, never inside one, so nothing read is lost.
        """
        held = 0
        while self._closed is None:
            try:
                data = await self._stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                data = b""
            if not data:
                self._closed = Closed(1006, "the connection broke")
                return
            pongs, closing = b"", None
            try:
                self._ws.receive_data(bytes(data))
                for event in self._ws.events():
                    if isinstance(event, Ping):
                        pongs += self._send_event(event.response())
                    elif isinstance(event, CloseConnection):
                        closing = event
                        break
                    else:
                        self._events.append(event)
                        if isinstance(event, TextMessage | BytesMessage):
                            held += len(event.data)
            except (RemoteProtocolError, Closed) as e:
                self._closed = Closed(1002, f"protocol error: {e}")
                return
            if held > _MAX_MESSAGE:
                self._closed = Closed(1009, "too much arrived while idle")
                await trio.aclose_forcefully(self._stream)
                return
            # Shielded, so that a reader taking over never finds half a pong sent; a pong
            # that cannot go out in time leaves the connection closed instead.
            with trio.CancelScope(shield=True, deadline=trio.current_time() + _PONG_TIMEOUT):
                try:
                    if pongs:
                        await self._write(pongs)
                    if closing is not None:
                        await self._close_received(closing)
                except Closed:
                    return

    async def aclose(self, code: int = 1000) -> None:
        """Say goodbye if still open, then close the socket (without waiting for the
        server's answer). Safe to call more than once."""
        if self._closed is None and self._ws.state == ConnectionState.OPEN:
            try:
                with trio.move_on_after(0.5):
                    await self._write(self._ws.send(CloseConnection(code=code)))
            except Closed:
                pass
        if self._closed is None:
            self._closed = Closed(code, "closed by us")
        await trio.aclose_forcefully(self._stream)
