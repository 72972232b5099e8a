"""A small HTTP/1.1 server on trio, for the local inference server: h11 parses, trio serves.

One task per connection, requests answered one after the other on it (keep-alive, as httpx
uses it). A request's head and body are bounded (``Limits``) and read within a timeout; a
handler answers with a :class:`Response` whose body is bytes, or a writer: an async function
that sends the body piece by piece as it is made (chunked: server-sent events, streamed audio),
run in the connection's task. A client that leaves mid-way makes the writer's next send raise,
which ends that writer and its connection, and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import h11
import trio

from ._openai import error_body

__all__ = ["HTTPError", "Handler", "Limits", "Request", "Response", "serve_http"]

logger = logging.getLogger("tvoice.inference")


@attrs.frozen(kw_only=True)
class Limits:
    """What one request may cost: head and body size, and how long the client may take."""

    max_head: int = 16 * 1024
    max_body: int = 25 * 1024 * 1024  # OpenAI's own limit for an audio file
    read_timeout: float = 30.0
    idle_timeout: float = 60.0  # a kept-alive connection waiting for its next request


@attrs.frozen
class Request:
    """One request, its body read whole."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str, default: str = "") -> str:
        """The value of header ``name`` (any case), or ``default``."""
        return self.headers.get(name.lower(), default)


Send = Callable[[bytes], Awaitable[None]]
Writer = Callable[[Send], Awaitable[None]]
"""Sends a streamed body with the ``Send`` it is given; the body ends when it returns."""


@attrs.frozen
class Response:
    """An answer: ``body`` whole, or written piece by piece by a :data:`Writer` (chunked)."""

    status: int
    body: bytes | Writer = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


class HTTPError(Exception):
    """Raised by a handler to answer ``status`` with ``body`` (an OpenAI error body)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


Handler = Callable[[Request], Awaitable[Response]]


async def serve_http(
    handler: Handler,
    *,
    host: str,
    port: int,
    limits: Limits = Limits(),
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``handler`` on ``host:port`` until cancelled; started with the bound port."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound: int = listeners[0].socket.getsockname()[1]
    task_status.started(bound)

    async def connection(stream: trio.SocketStream) -> None:
        async with stream:
            await _Connection(stream, handler, limits).run()

    await trio.serve_listeners(connection, listeners)


class _Connection:
    def __init__(self, stream: trio.SocketStream, handler: Handler, limits: Limits) -> None:
        self._stream = stream
        self._handler = handler
        self._limits = limits
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head)

    async def run(self) -> None:
        try:
            while True:
                request = await self._read_request()
                if request is None:
                    return
                await self._answer(request)
                if self._conn.our_state is not h11.DONE:
                    return
                self._conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError, OSError):
            return  # the client left, or spoke something that is not HTTP/1.1

    async def _read_request(self) -> Request | None:
        """The next request, or None when the client is done or too slow."""
        limits = self._limits
        event = None
        with trio.move_on_after(limits.idle_timeout):
            event = await self._next_event()
        if not isinstance(event, h11.Request):
            return None
        target = event.target.decode("ascii", "replace")
        path, _, query = target.partition("?")
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
        body = bytearray()
        with trio.move_on_after(limits.read_timeout) as timeout:
            while True:
                part = await self._next_event()
                if isinstance(part, h11.Data):
                    body += part.data
                    if len(body) > limits.max_body:
                        await self._simple(413, error_body("the request body is too large"))
                        return None
                elif isinstance(part, h11.EndOfMessage):
                    break
                else:
                    return None
        if timeout.cancelled_caught:
            await self._simple(408, error_body("the request took too long to arrive"))
            return None
        return Request(event.method.decode(), path, query, headers, bytes(body))

    async def _next_event(self) -> Any:
        while True:
            event = self._conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await self._stream.receive_some(65536)
            self._conn.receive_data(data)

    async def _answer(self, request: Request) -> None:
        try:
            response = await self._handler(request)
        except HTTPError as e:
            response = Response(e.status, e.body)
        except Exception:
            logger.exception("inference server: %s %s failed", request.method, request.path)
            response = Response(500, error_body("the server failed to answer", kind="server_error"))
        headers = [("content-type", response.content_type), *response.headers]
        if isinstance(response.body, bytes):
            headers.append(("content-length", str(len(response.body))))
            await self._send(h11.Response(status_code=response.status, headers=headers))
            await self._send(h11.Data(data=response.body))
        else:
            headers.append(("cache-control", "no-cache"))
            await self._send(h11.Response(status_code=response.status, headers=headers))
            await response.body(self._send_data)
        await self._send(h11.EndOfMessage())

    async def _send_data(self, data: bytes) -> None:
        if data:
            await self._send(h11.Data(data=data))

    async def _simple(self, status: int, body: bytes) -> None:
        """Answer an unread request and close the connection."""
        headers = [
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            ("connection", "close"),
        ]
        await self._send(h11.Response(status_code=status, headers=headers))
        await self._send(h11.Data(data=body))
        await self._send(h11.EndOfMessage())

    async def _send(self, event: Any) -> None:
        data = self._conn.send(event)
        if data:
            await self._stream.send_all(data)
