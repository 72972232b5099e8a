"""``elevenlabs.TTS``: streaming speech over ElevenLabs' multi-context WebSocket."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np
import trio

from tvoice import APIConnectionError, APIConnectOptions, APITimeoutError
from tvoice import tts as tts_
from tvoice.audio import AudioFrame

from .._contexts import ContextInbox, NoAnswer
from .._kept import KeptConnections
from .._websocket import Closed, Connection, Rejected
from ._errors import closed_error, malformed, message_error, missing_api_key, rejected_error
from ._wire import (
    PCM_RATES,
    Audio,
    Error,
    Final,
    MalformedMessage,
    Message,
    close_context,
    flush,
    init_context,
    parse_message,
    send_text,
    stream_url,
)

__all__ = ["TTS", "ChunkedStream", "SynthesizeStream"]

DEFAULT_BASE_URL = "wss://api.elevenlabs.io"
# "Rachel", a stock voice of ElevenLabs' library.
DEFAULT_VOICE = "21m00Tcm4TlvDq8ikWAM"
_DEFAULT_OPTIONS = APIConnectOptions()
# How long an interrupted reply may take to tell the server to close its context.
_CANCEL_TIMEOUT = 0.5
_MAX_IDLE = 2

Emit = Callable[[AudioFrame, str], Awaitable[None]]


class TTS(tts_.TTS):
    """ElevenLabs' streaming text-to-speech (``eleven_flash_v2_5`` by default), raw PCM.

    ``voice``: a voice id; ``model``; ``sample_rate``: one of 8000, 16000, 22050, 24000,
    44100 (``output_format=pcm_<rate>``); ``language`` (``language_code``, for the models
    that take one); ``voice_settings`` and ``generation_config`` are sent when a context
    opens; ``query``: more query parameters (``auto_mode``, ``inactivity_timeout``...).
    ``api_key`` (else ``ELEVEN_API_KEY``, then ``ELEVENLABS_API_KEY``), sent in the
    ``xi-api-key`` header, never in the URL; ``base_url`` (``wss://`` or ``https://``: a
    regional endpoint or a proxy); ``connect_timeout``.

    The TTS keeps its WebSocket between replies (``prewarm()`` opens it ahead,
    ``keep_warm()``, which a session runs, opens it again when it drops, ``aclose()`` closes
    it); each reply speaks in a context of its own: text goes out as it comes, and
    the end of a segment sends ``flush`` then ``close_context`` and waits for ``isFinal``.
    Leaving a stream early closes its context on the wire, and audio still arriving for it
    is dropped. Each audio item carries the characters it speaks (``alignment``) as
    ``delta_text``, and their words with their times as its frame's ``timed_text``.
    """

    def __init__(
        self,
        *,
        voice: str = DEFAULT_VOICE,
        model: str = "eleven_flash_v2_5",
        sample_rate: int = 24000,
        language: str | None = None,
        voice_settings: Mapping[str, Any] | None = None,
        generation_config: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        connect_timeout: float = 10.0,
    ) -> None:
        if not voice:
            raise ValueError("voice must not be empty")
        if sample_rate not in PCM_RATES:
            raise ValueError(f"sample_rate must be one of {PCM_RATES}, got {sample_rate}")
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be > 0")
        super().__init__(
            sample_rate=sample_rate,
            num_channels=1,
            capabilities=tts_.TTSCapabilities(streaming=True),
        )
        key = api_key
        if key is None:
            key = os.environ.get("ELEVEN_API_KEY") or os.environ.get("ELEVENLABS_API_KEY")
        if not key:
            raise missing_api_key()
        self._api_key = key
        self._model = model
        self._voice = voice
        self._url = stream_url(
            base_url,
            voice,
            {
                "model_id": model,
                "output_format": f"pcm_{sample_rate}",
                "language_code": language,
                "sync_alignment": True,
                **(query or {}),
            },
        )
        self._settings: dict[str, Any] = {}
        if voice_settings:
            self._settings["voice_settings"] = dict(voice_settings)
        if generation_config:
            self._settings["generation_config"] = dict(generation_config)
        self._connect_timeout = connect_timeout
        self._kept = KeptConnections(self._open, max_idle=_MAX_IDLE)

    def __repr__(self) -> str:
        return f"elevenlabs.TTS(model={self._model!r}, voice={self._voice!r}, url={self._url!r})"

    @property
    def label(self) -> str:
        return "elevenlabs.TTS"

    @property
    def model(self) -> str:
        """The ElevenLabs model."""
        return self._model

    @property
    def url(self) -> str:
        """The WebSocket URL (it holds no secret)."""
        return self._url

    @property
    def context_settings(self) -> Mapping[str, Any]:
        """What is sent with the message that opens a context."""
        return self._settings

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
        try:
            with trio.fail_after(self._connect_timeout):
                return await Connection.open(self._url, [("xi-api-key", self._api_key)])
        except trio.TooSlowError:
            raise APITimeoutError(
                f"elevenlabs: no connection within {self._connect_timeout} s"
            ) from None
        except Rejected as e:
            raise rejected_error(e, api_key=self._api_key) from None
        except Closed as e:
            raise closed_error(e, api_key=self._api_key) from None
        except OSError as e:
            raise APIConnectionError(
                f"elevenlabs: could not connect ({type(e).__name__})"
            ) from None

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
            return message_error(m.message, m.body, api_key=self._api_key)
        return error


class _ServerError(Exception):
    def __init__(self, message: Error) -> None:
        super().__init__(message.message)
        self.message = message


class _Inbox(ContextInbox[Message]):
    """The connection's messages by context, and the contexts whose close_context was sent
    (an interruption need not send it again)."""

    def __init__(self, connection: Connection, timeout: float) -> None:
        super().__init__(
            connection,
            timeout,
            parse=parse_message,
            about_connection=lambda message: isinstance(message, Error),
        )
        self.closed: set[str] = set()

    def finished(self, context_id: str) -> None:
        super().finished(context_id)
        self.closed.discard(context_id)


async def _play(inbox: _Inbox, context_id: str, sample_rate: int, emit: Emit) -> None:
    """Emit a context's audio until its ``isFinal``, each chunk with the text it speaks and
    when (``timed_text``)."""
    odd = b""
    while True:
        message = await inbox.next(context_id)
        if isinstance(message, Audio):
            data, odd = odd + message.pcm, b""
            if len(data) % 2:
                data, odd = data[:-1], data[-1:]
            samples = np.frombuffer(data, "<i2").astype(np.int16).reshape(-1, 1)
            await emit(AudioFrame(samples, sample_rate, timed_text=message.words), message.text)
        elif isinstance(message, Final):
            inbox.finished(context_id)
            return
        elif isinstance(message, Error):
            raise _ServerError(message)


async def _close_contexts(connection: Connection, inbox: _Inbox) -> None:
    """Close the contexts of an interrupted reply on the wire, briefly, even while the reply
    is being cancelled. (One already closed after its flush still speaks what was flushed:
    the API cannot stop it; its audio is dropped as it arrives.)"""
    contexts = inbox.mine - inbox.closed
    if not contexts or connection.closed:
        return
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + _CANCEL_TIMEOUT
        for context_id in sorted(contexts):
            try:
                await connection.send_text(close_context(context_id))
            except Closed:
                return


async def _open_context(tts: TTS, connection: Connection, inbox: _Inbox) -> str:
    context_id = uuid.uuid4().hex
    inbox.mine.add(context_id)
    await connection.send_text(init_context(context_id, tts.context_settings))
    return context_id


async def _end_context(connection: Connection, inbox: _Inbox, context_id: str) -> None:
    await connection.send_text(flush(context_id))
    inbox.closed.add(context_id)
    await connection.send_text(close_context(context_id))
    inbox.end(context_id)


class ChunkedStream(tts_.ChunkedStream):
    """The audio of one ``synthesize`` call: one context, its text, a flush."""

    def __init__(self, tts: TTS, text: str, *, conn_options: APIConnectOptions) -> None:
        super().__init__(tts, text, conn_options=conn_options)
        self._eleven = tts

    async def _emit_timed(self, frame: AudioFrame, text: str) -> None:
        await self._emit_frame(frame, delta_text=text)

    async def _run(self) -> None:
        if not self.input_text.strip():
            return
        tts = self._eleven
        async with tts.connection() as connection:
            inbox = _Inbox(connection, self.conn_options.timeout)
            try:
                context_id = await _open_context(tts, connection, inbox)
                await connection.send_text(send_text(context_id, self.input_text))
                await _end_context(connection, inbox, context_id)
                await _play(inbox, context_id, tts.sample_rate, self._emit_timed)
            except (Closed, MalformedMessage, _ServerError, NoAnswer) as e:
                raise tts.failure(e) from None
            finally:
                await _close_contexts(connection, inbox)


class SynthesizeStream(tts_.SynthesizeStream):
    """Text in as it is written, audio out: a context per segment (up to each ``flush()``)."""

    def __init__(self, tts: TTS, *, conn_options: APIConnectOptions) -> None:
        super().__init__(tts, conn_options=conn_options)
        self._eleven = tts
        self._segment = ""
        # Input taken by attempts that failed before any output: the next attempt says it
        # again (a kept connection the server had closed fails only once it is used).
        self._taken: list[object] = []

    async def _emit_timed(self, frame: AudioFrame, text: str) -> None:
        await self._emit_frame(frame, segment_id=self._segment, delta_text=text)

    async def _run(self) -> None:
        tts = self._eleven
        async with tts.connection() as connection:
            inbox = _Inbox(connection, self.conn_options.timeout)
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
                await _close_contexts(connection, inbox)
            if failure is not None:
                raise failure

    async def _send_text(
        self,
        connection: Connection,
        inbox: _Inbox,
        segments: trio.MemorySendChannel[str | None],
    ) -> None:
        tts = self._eleven
        context: str | None = None

        async def take(item: object) -> None:
            nonlocal context
            if isinstance(item, str):
                if context is None:
                    context = await _open_context(tts, connection, inbox)
                    await segments.send(context)
                await connection.send_text(send_text(context, item))
            elif context is None:
                await segments.send(None)  # an empty segment
            else:
                await _end_context(connection, inbox, context)
                context = None

        async with segments:
            try:
                for item in list(self._taken):
                    await take(item)
                async for item in self._input:
                    self._taken.append(item)
                    await take(item)
                if context is not None:
                    await _end_context(connection, inbox, context)
            except Closed:
                pass  # the reading side reports why

    async def _play_segments(
        self, inbox: _Inbox, segments: trio.MemoryReceiveChannel[str | None]
    ) -> None:
        async for context in segments:
            self._segment = context or ""
            if context is not None:
                await _play(inbox, context, self._eleven.sample_rate, self._emit_timed)
            await self._end_segment(self._segment)
