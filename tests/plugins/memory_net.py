"""A loopback network held in memory, for tests that run the wire servers on trio's virtual
clock.

The plugins reach their servers through ``trio.open_tcp_stream`` (trio-websocket, wsproto and
httpx under trio all do), which makes its sockets with ``trio.socket.socket``. trio lets a run
replace that factory (``trio.socket.set_custom_socket_factory``, made for tests); this one
makes sockets that connect to servers registered here, so the bytes of both ends move through
memory channels. Every wait is then a trio wait: under ``MockClock(autojump_threshold=0)`` the
clock jumps only when every task, servers included, waits for time, never while bytes are in
flight, so times in a conversation are exact and no timeout can fire early. (Real loopback
sockets under the autojump clock are not: a task that waits on the kernel counts as blocked,
and a jump can happen while the other end's bytes are on their way.)

``serve(handler)`` registers a server (it gets a ``trio.SocketStream`` per connection, as
``trio.serve_tcp`` gives) and returns its port on 127.0.0.1; ``serve_websocket(handle)`` does
the same for a trio-websocket request handler.
"""

from __future__ import annotations

import errno
import itertools
import math
import socket as stdlib_socket
from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio_websocket

Handler = Callable[[trio.SocketStream], Awaitable[None]]


class MemoryNetwork(trio.abc.SocketFactory):
    """Servers on 127.0.0.1, reached by any ``trio.socket.socket`` of the run once
    :meth:`install` ran; their connections are tasks of ``nursery``."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._servers: dict[int, Handler] = {}
        self._ports = itertools.count(40001)
        self.connections: list[int] = []  # the port of each connection made

    def install(self) -> MemoryNetwork:
        trio.socket.set_custom_socket_factory(self)
        return self

    def serve(self, handler: Handler) -> int:
        port = next(self._ports)
        self._servers[port] = handler
        return port

    def serve_websocket(self, handle: Callable[[Any], Awaitable[None]]) -> int:
        async def serve(stream: trio.SocketStream) -> None:
            async with stream, trio.open_nursery() as nursery:
                request = await trio_websocket.wrap_server_stream(nursery, stream)
                await handle(request)
                nursery.cancel_scope.cancel()

        return self.serve(serve)

    def stop(self, port: int) -> None:
        """Refuse new connections to ``port`` (those open go on)."""
        self._servers.pop(port, None)

    def socket(
        self,
        family: stdlib_socket.AddressFamily | int = stdlib_socket.AF_INET,
        type: stdlib_socket.SocketKind | int = stdlib_socket.SOCK_STREAM,
        proto: int = 0,
    ) -> trio.socket.SocketType:
        return MemorySocket(self, family, type, proto)

    def connect(self, client: MemorySocket, address: Any) -> None:
        host, port = address[0], address[1]
        handler = self._servers.get(port) if host == "127.0.0.1" else None
        if handler is None:
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"nothing serves {host}:{port}")
        server = MemorySocket(self, client.family, client.type, client.proto)
        client.pair(server)
        self.connections.append(port)
        self._nursery.start_soon(handler, trio.SocketStream(server))


class MemorySocket(trio.socket.SocketType):
    """One end of a connection: what it sends is at once readable at the other end; closing
    or shutting down its writing side is an end of file there."""

    def __init__(self, network: MemoryNetwork, family: Any, type: Any, proto: int) -> None:
        super().__init__()
        self._network = network
        self._family, self._type, self._proto = family, type, proto
        self._send: trio.MemorySendChannel[bytes] | None = None
        self._receive: trio.MemoryReceiveChannel[bytes] | None = None
        self._pending = b""
        self._closed = False
        self._shut = False

    def pair(self, peer: MemorySocket) -> None:
        self._send, peer._receive = trio.open_memory_channel[bytes](math.inf)
        peer._send, self._receive = trio.open_memory_channel[bytes](math.inf)

    @property
    def family(self) -> Any:
        return self._family

    @property
    def type(self) -> Any:
        return self._type

    @property
    def proto(self) -> int:
        return self._proto

    @property
    def did_shutdown_SHUT_WR(self) -> bool:
        return self._shut

    def fileno(self) -> int:
        return -1 if self._closed else 1000

    def setsockopt(self, *args: Any) -> None:
        pass

    def getsockopt(self, *args: Any) -> int:
        return 0

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 0)

    def getpeername(self) -> tuple[str, int]:
        return ("127.0.0.1", 0)

    async def connect(self, address: Any) -> None:
        await trio.lowlevel.checkpoint()
        self._network.connect(self, address)

    async def send(self, data: Any, flags: int = 0) -> int:
        await trio.lowlevel.checkpoint()
        if self._closed or self._send is None:
            raise OSError(errno.EBADF, "closed")
        try:
            self._send.send_nowait(bytes(data))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise BrokenPipeError(errno.EPIPE, "the other end is closed") from None
        return len(data)

    async def wait_writable(self) -> None:
        await trio.lowlevel.checkpoint()

    async def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self._closed or self._receive is None:
            await trio.lowlevel.checkpoint()
            raise OSError(errno.EBADF, "closed")
        if not self._pending:
            try:
                self._pending = await self._receive.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return b""
        else:
            await trio.lowlevel.checkpoint()
        data, self._pending = self._pending[:bufsize], self._pending[bufsize:]
        return data

    def is_readable(self) -> bool:
        if self._receive is None:
            return False
        state = self._receive.statistics()
        return bool(self._pending) or state.current_buffer_used > 0 or state.open_send_channels == 0

    def shutdown(self, how: int) -> None:
        if how in (stdlib_socket.SHUT_WR, stdlib_socket.SHUT_RDWR) and self._send is not None:
            self._shut = True
            self._send.close()

    def close(self) -> None:
        self._closed = True
        for channel in (self._send, self._receive):
            if channel is not None:
                channel.close()
