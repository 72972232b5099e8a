"""``cartesia.TTS``: Sonic over Cartesia's TTS WebSocket, a context per reply."""

from __future__ import annotations

import contextlib
import math
import os
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np
import trio

from tvoice import APIConnectionError, APIConnectOptions, APITimeoutError
from tvoice import tts as tts_
from tvoice.audio import AudioFrame, TimedText

from .._contexts import ContextInbox, NoAnswer
from .._kept import KeptConnections
from .._websocket import Closed, Connection, Rejected
from ._errors import closed_error, malformed, message_error, missing_api_key, rejected_error
from ._wire import (
    Chunk,
    Done,
    Error,
    MalformedMessage,
    Message,
    Timestamps,
    cancel_request,
    generation_request,
    parse_message,
    websocket_url,
)

__all__ = ["TTS", "ChunkedStream", "SynthesizeStream"]

DEFAULT_BASE_URL = "wss://api.cartesia.ai"
API_VERSION = "2025-04-16"
# A stock English voice from Cartesia's library ("Katie"), the one LiveKit's plugin uses.
DEFAULT_VOICE = "f786b574-daa5-4673-aa0c-cbe3e8534c02"
_DEFAULT_OPTIONS = APIConnectOptions()
# How long an interrupted reply may take to tell the server to stop its context.
_CANCEL_TIMEOUT = 0.5
# Idle connections kept for the next replies (more are opened when replies overlap).
_MAX_IDLE = 2

Emit = Callable[[AudioFrame, str], Awaitable[None]]


class TTS(tts_.TTS):
    """Cartesia's streaming text-to-speech (``sonic-2`` by default), 16-bit mono PCM.

    ``voice``: a voice id; ``language``; ``sample_rate`` of the audio asked for;
    ``extra``: more fields for every generation request (``speed``, ``max_buffer_delay_ms``,
    ``generation_config``...). ``api_key`` (else ``CARTESIA_API_KEY``), sent in the
    ``X-API-Key`` header, never in the URL; ``api_version`` (``Cartesia-Version``);
    ``base_url`` (``wss://`` or ``https://``; ``/tts/websocket`` is added);
    ``connect_timeout``.

    The TTS keeps its WebSocket between replies: each reply takes it (or opens one when
    another reply holds it), speaks in a context of its own and gives it back; ``prewarm()``
    opens it ahead of the first reply, ``keep_warm()`` (a session runs it) opens it again
    when it drops, and ``aclose()`` closes it. Text pushed to
    ``stream()`` goes out as it comes (``continue: true``); ``flush()`` and the end of input
    end the context. Leaving a stream early cancels its context on the wire, and audio still
    arriving for it is dropped. Each frame carries the words whose timestamps start in it,
    as ``delta_text`` and with their times as ``timed_text``.
    """

    def __init__(
        self,
        *,
        model: str = "sonic-2",
        voice: str = DEFAULT_VOICE,
        language: str = "en",
        sample_rate: int = 24000,
        extra: Mapping[str, Any] | None = None,
        api_key: str | None = None,
        api_version: str = API_VERSION,
        base_url: str = DEFAULT_BASE_URL,
        connect_timeout: float = 10.0,
    ) -> None:
        if not voice:
            raise ValueError("voice must not be empty")
        if sample_rate <= 0 or connect_timeout <= 0:
            raise ValueError("sample_rate and connect_timeout must be > 0")
        super().__init__(
            sample_rate=sample_rate,
            num_channels=1,
            capabilities=tts_.TTSCapabilities(streaming=True),
        )
        key = api_key if api_key is not None else os.environ.get("CARTESIA_API_KEY")
        if not key:
            raise missing_api_key()
        self._api_key = key
        self._api_version = api_version
        self._url = websocket_url(base_url)
        self._model = model
        self._voice = voice
        self._language = language
        self._extra = dict(extra or {})
        self._connect_timeout = connect_timeout
        self._kept = KeptConnections(self._open, max_idle=_MAX_IDLE)

    def __repr__(self) -> str:
        return f"cartesia.TTS(model={self._model!r}, voice={self._voice!r}, url={self._url!r})"

    @property
    def label(self) -> str:
        return "cartesia.TTS"

    @property
    def model(self) -> str:
        """The Sonic model."""
        return self._model

    @property
    def url(self) -> str:
        """The WebSocket URL (it holds no secret)."""
        return self._url

    def request(self, context_id: str, transcript: str, *, more: bool) -> str:
        """The generation request for a piece of a context's text."""
        return generation_request(
            context_id=context_id,
            transcript=transcript,
            more=more,
            model=self._model,
            voice=self._voice,
            language=self._language,
            sample_rate=self.sample_rate,
            extra=self._extra,
        )

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = _DEFAULT_OPTIONS
    ) -> ChunkedStream:
        return ChunkedStream(self, text, conn_options=conn_options)

    def stream(self, *, conn_options: APIConnectOptions = _DEFAULT_OPTIONS) -> SynthesizeStream:
        return SynthesizeStream(self, conn_options=conn_options)

    async def prewarm(self) -> None:
        """Open the connection now, so that the first reply does not wait for it."""
        await self._kept.prewarm()

    async def keep_warm(self) -> None:
        """Keep a connection open for the next reply until cancelled: opened now, and when
        it drops (the server closed it, the network broke) opened again in the background
        after a backoff of 0.5 s doubling to 8 s; after 8 setbacks in a row it stops trying
        (logged once) and replies connect when they need. A session runs it while it lasts."""
        await self._kept.keep_warm()

    async def aclose(self) -> None:
        """Close the kept connections; those in use close when their reply ends."""
        await self._kept.aclose()

    async def _open(self) -> Connection:
        headers = [("X-API-Key", self._api_key), ("Cartesia-Version", self._api_version)]
        try:
            with trio.fail_after(self._connect_timeout):
                return await Connection.open(self._url, headers)
        except trio.TooSlowError:
            raise APITimeoutError(
                f"cartesia: no connection within {self._connect_timeout} s"
            ) from None
        except Rejected as e:
            raise rejected_error(e, api_key=self._api_key) from None
        except Closed as e:
            raise closed_error(e, api_key=self._api_key) from None
        except OSError as e:
            raise APIConnectionError(f"cartesia: could not connect ({type(e).__name__})") from None

    def connection(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A connection for one reply: a kept one, or a new one; kept again afterwards
        unless it failed."""
        return self._kept.take()

    def failure(self, error: Exception) -> Exception:
        """The tvoice error for what a reply met on the wire (the key scrubbed from it)."""
        if isinstance(error, Closed):
            return closed_error(error, api_key=self._api_key)
        if isinstance(error, MalformedMessage):
            return malformed(str(error))
        if isinstance(error, NoAnswer):
            return APITimeoutError(f"{self.label}: {error}")
        if isinstance(error, _ServerError):
            m = error.message
            return message_error(m.status_code, m.message, m.body, api_key=self._api_key)
        return error


class _ServerError(Exception):
    def __init__(self, message: Error) -> None:
        super().__init__(message.message)
        self.message = message


_Inbox = ContextInbox[Message]


def _inbox(connection: Connection, timeout: float) -> _Inbox:
    """The connection's messages by context; an error for no context is the connection's."""
    return _Inbox(
        connection,
        timeout,
        parse=parse_message,
        about_connection=lambda message: isinstance(message, Error),
    )


async def _play(inbox: _Inbox, context_id: str, sample_rate: int, emit: Emit) -> None:
    """Emit a context's audio until its ``done``; each frame carries the words whose
    timestamps start within it, as ``delta_text`` and as ``timed_text`` (their times from the
    frame's start; words told late go with the next frame)."""
    words: deque[tuple[str, float, float]] = deque()
    position = 0.0
    odd = b""
    while True:
        message = await inbox.next(context_id)
        if isinstance(message, Chunk):
            data, odd = odd + message.audio, b""
            if len(data) % 2:
                data, odd = data[:-1], data[-1:]
            samples = np.frombuffer(data, "<i2").astype(np.int16).reshape(-1, 1)
            start, position = position, position + len(samples) / sample_rate
            text, timed = _due(words, start, position)
            await emit(AudioFrame(samples, sample_rate, timed_text=timed), text)
        elif isinstance(message, Timestamps):
            words.extend(message.words)
        elif isinstance(message, Done):
            if words:
                text, timed = _due(words, position, math.inf)
                empty = np.zeros((0, 1), np.int16)
                await emit(AudioFrame(empty, sample_rate, timed_text=timed), text)
            inbox.finished(context_id)
            return
        elif isinstance(message, Error):
            raise _ServerError(message)


def _due(
    words: deque[tuple[str, float, float]], at: float, until: float
) -> tuple[str, list[TimedText]]:
    """The words that start before ``until``: their text, and their times from ``at``."""
    said = []
    while words and words[0][1] < until:
        said.append(words.popleft())
    text = " ".join(word for word, _, _ in said) + (" " if said else "")
    return text, [TimedText(word, start - at, end - at) for word, start, end in said]


async def _cancel(connection: Connection, contexts: set[str]) -> None:
    """Tell the server to stop ``contexts`` (an interrupted reply), briefly, even while
    the reply is being cancelled."""
    if not contexts or connection.closed:
        return
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + _CANCEL_TIMEOUT
        for context_id in sorted(contexts):
            try:
                await connection.send_text(cancel_request(context_id))
            except Closed:
                return


class ChunkedStream(tts_.ChunkedStream):
    """The audio of one ``synthesize`` call: one context, its whole text in one request."""

    def __init__(self, tts: TTS, text: str, *, conn_options: APIConnectOptions) -> None:
        super().__init__(tts, text, conn_options=conn_options)
        self._cartesia = tts

    async def _emit_timed(self, frame: AudioFrame, text: str) -> None:
        await self._emit_frame(frame, delta_text=text)

    async def _run(self) -> None:
        if not self.input_text.strip():
            return
        tts = self._cartesia
        async with tts.connection() as connection:
            inbox = _inbox(connection, self.conn_options.timeout)
            context_id = uuid.uuid4().hex
            inbox.mine.add(context_id)
            try:
                await connection.send_text(tts.request(context_id, self.input_text, more=False))
                inbox.end(context_id)
                await _play(inbox, context_id, tts.sample_rate, self._emit_timed)
            except (Closed, MalformedMessage, _ServerError, NoAnswer) as e:
                raise tts.failure(e) from None
            finally:
                await _cancel(connection, inbox.mine)


class SynthesizeStream(tts_.SynthesizeStream):
    """Text in as it is written, audio out: a context per segment (up to each ``flush()``),
    its text sent piece by piece with ``continue: true`` and ended with ``continue: false``.
    """

    def __init__(self, tts: TTS, *, conn_options: APIConnectOptions) -> None:
        super().__init__(tts, conn_options=conn_options)
        self._cartesia = tts
        self._segment = ""
        # Input taken by attempts that failed before any output: the next attempt says it
        # again (a kept connection the server had closed fails only once it is used).
        self._taken: list[object] = []

    async def _emit_timed(self, frame: AudioFrame, text: str) -> None:
        await self._emit_frame(frame, segment_id=self._segment, delta_text=text)

    async def _run(self) -> None:
        tts = self._cartesia
        async with tts.connection() as connection:
            inbox = _inbox(connection, self.conn_options.timeout)
            segments_send, segments_recv = trio.open_memory_channel[str | None](64)
            failure: Exception | None = None
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._send_text, connection, inbox, segments_send)
                    try:
                        await self._play_segments(inbox, segments_recv)
                    except (Closed, MalformedMessage, _ServerError, NoAnswer) as e:
                        failure = tts.failure(e)
                    except Exception as e:
                        failure = e
                    nursery.cancel_scope.cancel()
            finally:
                await _cancel(connection, inbox.mine)
            if failure is not None:
                raise failure

    async def _send_text(
        self,
        connection: Connection,
        inbox: _Inbox,
        segments: trio.MemorySendChannel[str | None],
    ) -> None:
        tts = self._cartesia
        context: str | None = None

        async def take(item: object) -> None:
            nonlocal context
            if isinstance(item, str):
                if context is None:
                    context = uuid.uuid4().hex
                    inbox.mine.add(context)
                    await segments.send(context)
                await connection.send_text(tts.request(context, item, more=True))
            elif context is None:
                await segments.send(None)  # an empty segment
            else:
                await connection.send_text(tts.request(context, "", more=False))
                inbox.end(context)
                context = None

        async with segments:
            try:
                for item in list(self._taken):
                    await take(item)
                async for item in self._input:
                    self._taken.append(item)
                    await take(item)
                if context is not None:
                    await connection.send_text(tts.request(context, "", more=False))
                    inbox.end(context)
            except Closed:
                pass  # the reading side reports why

    async def _play_segments(
        self, inbox: _Inbox, segments: trio.MemoryReceiveChannel[str | None]
    ) -> None:
        async for context in segments:
            self._segment = context or ""
            if context is not None:
                await _play(inbox, context, self._cartesia.sample_rate, self._emit_timed)
            await self._end_segment(self._segment)
