"""The sans-IO protocol between the worker and its job processes.

Each message is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON: an object
with a ``"type"`` tag (the message class's name) and the message's fields. :func:`encode` turns a
message into bytes; a :class:`Decoder` is fed whatever bytes arrive and returns the complete
messages. Neither touches a socket: the pool and the child own their I/O.

A conversation, worker -> process (``>``) and back (``<``)::

    > InitializeProcess    < ProcessReady        (prewarm ran, or the error that stopped it)
    > Ping                 < Pong                (every few seconds, for the whole life)
    > StartJob             < JobStarted          (the entrypoint is running)
    > ShutdownJob          < JobEnded            (success, or why not)
                           < Exiting             (the process is about to exit)
"""

from __future__ import annotations

import collections
import json
import struct
from collections.abc import Iterable
from typing import Any, TypeAlias

import attrs
import trio

__all__ = [
    "MAX_MESSAGE_SIZE",
    "Decoder",
    "Exiting",
    "InitializeProcess",
    "JobEnded",
    "JobStarted",
    "Message",
    "MessageStream",
    "Ping",
    "Pong",
    "ProcessReady",
    "ProtocolError",
    "ShutdownJob",
    "StartJob",
    "decode_payload",
    "encode",
]

MAX_MESSAGE_SIZE = 8 << 20
"""The largest payload a :class:`Decoder` accepts by default (8 MiB): a StartJob carries the
job's metadata, which the LiveKit server accepts up to 512 KiB by default, and JSON may escape
each byte of it into six."""

_HEADER = struct.Struct(">I")


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)  # a JSON list arrives as a list


class ProtocolError(Exception):
    """The other side sent bytes that are not a message of this protocol."""


@attrs.frozen(kw_only=True)
class InitializeProcess:
    """Worker -> process: import the agent file ``target`` and run its prewarm function."""

    target: str
    log_level: int = 20
    shutdown_timeout: float = 10.0


@attrs.frozen(kw_only=True)
class ProcessReady:
    """Process -> worker: prewarm is done (``error == ""``) or failed with ``error``."""

    error: str = ""


@attrs.frozen(kw_only=True)
class StartJob:
    """Worker -> process: run this job (the fields of a ``RunningJobInfo``)."""

    job_id: str
    room_name: str
    agent_name: str = ""
    metadata: str = ""
    url: str = ""
    fallback_urls: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    token: str = attrs.field(default="", repr=False)  # the room token: never in a log
    worker_id: str = ""
    participant_identity: str = ""
    publisher_identity: str = ""


@attrs.frozen(kw_only=True)
class JobStarted:
    """Process -> worker: the entrypoint is running."""


@attrs.frozen(kw_only=True)
class JobEnded:
    """Process -> worker: the job is over; ``error`` says why it failed."""

    success: bool
    error: str = ""


@attrs.frozen(kw_only=True)
class ShutdownJob:
    """Worker -> process: end the job (``ctx.shutdown(reason)``), then exit."""

    reason: str = ""


@attrs.frozen(kw_only=True)
class Ping:
    """Worker -> process: are you there? ``t`` is the worker's clock."""

    t: float


@attrs.frozen(kw_only=True)
class Pong:
    """Process -> worker: the answer to the ping sent at ``last``; ``t`` is the process's clock."""

    t: float
    last: float


@attrs.frozen(kw_only=True)
class Exiting:
    """Process -> worker: the process is exiting, and why."""

    reason: str = ""


Message: TypeAlias = (
    InitializeProcess
    | ProcessReady
    | StartJob
    | JobStarted
    | JobEnded
    | ShutdownJob
    | Ping
    | Pong
    | Exiting
)

_TYPES: dict[str, type[Message]] = {
    cls.__name__: cls
    for cls in (
        InitializeProcess,
        ProcessReady,
        StartJob,
        JobStarted,
        JobEnded,
        ShutdownJob,
        Ping,
        Pong,
        Exiting,
    )
}

# JSON value checks per annotated field type (annotations are strings: postponed evaluation).
_CHECKS: dict[str, Any] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "tuple[str, ...]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
}


def encode(message: Message) -> bytes:
    """The bytes of ``message`` on the wire: length prefix and JSON payload."""
    fields = attrs.asdict(message)
    # As UTF-8, not \u escapes: text in most scripts stays at its size instead of doubling.
    payload = json.dumps({"type": type(message).__name__, **fields}, ensure_ascii=False).encode()
    if len(payload) > MAX_MESSAGE_SIZE:
        raise ValueError(
            f"{type(message).__name__} is {len(payload)} bytes,"
            f" over the {MAX_MESSAGE_SIZE >> 20} MiB limit"
        )
    return _HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> Message:
    """One message from its JSON payload (no length prefix); :class:`ProtocolError` if it is
    not one."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ProtocolError(f"a message is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"a message must be a JSON object, not {type(data).__name__}")
    kind = data.pop("type", None)
    cls = _TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {kind!r}")
    fields = {f.name: f for f in attrs.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ProtocolError(f"{kind} has no field(s) {', '.join(unknown)}")
    for name, field in fields.items():
        if name not in data:
            if field.default is attrs.NOTHING:
                raise ProtocolError(f"{kind} lacks its {name!r} field")
            continue
        if not _CHECKS[str(field.type)](data[name]):
            raise ProtocolError(f"{kind}.{name} must be {field.type}, not {data[name]!r:.80}")
    return cls(**data)


@attrs.define
class Decoder:
    """Turns a byte stream into messages: ``for msg in decoder.feed(data): ...``.

    Raises :class:`ProtocolError` on anything that is not this protocol (a payload over
    ``max_size``, bad JSON, an unknown type, wrong fields). After an error the stream cannot be
    trusted: the decoder stays failed and every later ``feed`` raises again.
    """

    max_size: int = MAX_MESSAGE_SIZE
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)
    _error: ProtocolError | None = attrs.field(default=None, init=False)

    def feed(self, data: bytes | bytearray) -> list[Message]:
        """Add ``data``; return the messages it completed, in order."""
        if self._error is not None:
            raise ProtocolError(f"the stream already failed: {self._error}")
        self._buffer += data
        messages: list[Message] = []
        try:
            while len(self._buffer) >= _HEADER.size:
                (size,) = _HEADER.unpack_from(self._buffer)
                if size > self.max_size:
                    raise ProtocolError(
                        f"a message of {size} bytes is over the limit of {self.max_size}"
                    )
                end = _HEADER.size + size
                if len(self._buffer) < end:
                    break
                payload = bytes(self._buffer[_HEADER.size : end])
                del self._buffer[:end]
                messages.append(decode_payload(payload))
        except ProtocolError as exc:
            self._error = exc
            raise
        return messages

    @property
    def pending(self) -> int:
        """How many bytes of an incomplete message are buffered."""
        return len(self._buffer)


class MessageStream:
    """The thin trio edge of the protocol: messages over a byte stream (a socket of a
    socketpair). ``send`` may be called from several tasks; ``receive`` from one."""

    def __init__(self, stream: trio.abc.Stream, *, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._stream = stream
        self._decoder = Decoder(max_size=max_size)
        self._received: collections.deque[Message] = collections.deque()
        self._send_lock = trio.Lock()

    async def send(self, message: Message) -> None:
        """Send one message; ``trio.BrokenResourceError`` / ``ClosedResourceError`` if the
        other side is gone."""
        data = encode(message)
        async with self._send_lock:
            await self._stream.send_all(data)

    async def receive(self) -> Message | None:
        """The next message, or ``None`` when the other side closed the stream.
        :class:`ProtocolError` on garbage (or a stream cut inside a message)."""
        while not self._received:
            try:
                data = await self._stream.receive_some(65536)
            except trio.BrokenResourceError:
                data = b""
            if not data:
                if self._decoder.pending:
                    raise ProtocolError("the stream ended inside a message")
                return None
            self._received.extend(self._decoder.feed(data))
        return self._received.popleft()

    async def aclose(self) -> None:
        """Close the stream (the other side sees the end of it)."""
        await self._stream.aclose()
