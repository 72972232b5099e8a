"""``deepgram.STT``: live transcription over Deepgram's ``/v1/listen`` WebSocket."""

from __future__ import annotations

import logging
import math
import os
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import SplitResult, urlsplit

import numpy as np
import trio
import trio_websocket

from tvoice import APIConnectionError, APIConnectOptions, APIError, APITimeoutError
from tvoice import stt as stt_
from tvoice.audio import AudioFrame, AudioResampler, combine_frames

from ._errors import closed_error, malformed, message_error, missing_api_key, rejected_error
from ._wire import (
    CLOSE_STREAM,
    FINALIZE,
    KEEP_ALIVE,
    MalformedMessage,
    Message,
    Results,
    listen_url,
    parse_message,
)

__all__ = ["STT", "SpeechStream"]

logger = logging.getLogger("tvoice.deepgram")

DEFAULT_BASE_URL = "wss://api.deepgram.com/v1"
_DEFAULT_OPTIONS = APIConnectOptions()
_Stream = trio.SocketStream | trio.SSLStream[trio.SocketStream]
# How long a closing stream waits for the server's close frame before dropping the socket.
_CLOSE_TIMEOUT = 0.5
# recognize() sends its audio in pieces of this many seconds.
_RECOGNIZE_PIECE = 0.1


class STT(stt_.STT):
    """Deepgram's streaming speech-to-text (``nova-3`` by default).

    ``language``: a BCP-47 tag (``"multi"`` for Nova-3's code switching). ``interim_results``,
    ``endpointing_ms`` (silence before a result is ``speech_final``; None turns it off),
    ``utterance_end_ms`` (gap between words that sends ``UtteranceEnd``; at least 1000, None
    turns it off) and ``vad_events`` (``SpeechStarted``) feed START_OF_SPEECH and
    END_OF_SPEECH. ``keyterms`` (Nova-3) or ``keywords`` (``"word:boost"``, earlier models)
    prompt vocabulary. ``sample_rate``: the rate sent; frames at other rates are resampled.
    ``keepalive_interval``: seconds without audio after which a ``KeepAlive`` is sent.
    ``api_key`` (else ``DEEPGRAM_API_KEY``), ``base_url`` (``wss://`` or ``https://``, the
    ``/listen`` path is added), ``connect_timeout``.

    Every stream has a connection of its own (Deepgram recognizes one audio stream per
    connection), opened in the stream's task and closed with it; the STT holds none.
    """

    def __init__(
        self,
        *,
        model: str = "nova-3",
        language: str = "en-US",
        sample_rate: int = 16000,
        interim_results: bool = True,
        endpointing_ms: int | None = 25,
        utterance_end_ms: int | None = 1000,
        vad_events: bool = True,
        punctuate: bool = True,
        smart_format: bool = False,
        keyterms: Sequence[str] = (),
        keywords: Sequence[str] = (),
        keepalive_interval: float = 5.0,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        connect_timeout: float = 10.0,
    ) -> None:
        if utterance_end_ms is not None and utterance_end_ms < 1000:
            raise ValueError("utterance_end_ms must be at least 1000 (Deepgram's minimum)")
        if sample_rate <= 0 or keepalive_interval <= 0 or connect_timeout <= 0:
            raise ValueError("sample_rate, keepalive_interval and connect_timeout must be > 0")
        super().__init__(
            capabilities=stt_.STTCapabilities(streaming=True, interim_results=interim_results)
        )
        key = api_key if api_key is not None else os.environ.get("DEEPGRAM_API_KEY")
        if not key:
            raise missing_api_key()
        self._api_key = key
        self._base_url = base_url
        self._model = model
        self._language = language
        self._sample_rate = sample_rate
        self._keepalive_interval = keepalive_interval
        self._connect_timeout = connect_timeout
        self._options: dict[str, Any] = {
            "model": model,
            "encoding": "linear16",
            "sample_rate": sample_rate,
            "channels": 1,
            "interim_results": interim_results,
            "endpointing": endpointing_ms if endpointing_ms is not None else False,
            "utterance_end_ms": utterance_end_ms,
            "vad_events": vad_events,
            "punctuate": punctuate,
            "smart_format": smart_format,
            "keyterm": list(keyterms) or None,
            "keywords": list(keywords) or None,
        }

    def __repr__(self) -> str:
        return f"deepgram.STT(model={self._model!r}, base_url={self._base_url!r})"

    @property
    def label(self) -> str:
        return "deepgram.STT"

    @property
    def model(self) -> str:
        """The Deepgram model."""
        return self._model

    @property
    def sample_rate(self) -> int:
        """The rate of the audio sent to Deepgram."""
        return self._sample_rate

    @property
    def keepalive_interval(self) -> float:
        """Seconds without audio after which a ``KeepAlive`` is sent."""
        return self._keepalive_interval

    def url(self, *, language: str | None = None) -> str:
        """The ``/listen`` URL a stream connects to (it holds no secret)."""
        return listen_url(self._base_url, {**self._options, "language": language or self._language})

    def stream(
        self, *, language: str | None = None, conn_options: APIConnectOptions = _DEFAULT_OPTIONS
    ) -> SpeechStream:
        return SpeechStream(self, language=language or self._language, conn_options=conn_options)

    async def _recognize_impl(
        self, frame: AudioFrame, *, language: str | None, conn_options: APIConnectOptions
    ) -> stt_.SpeechEvent:
        # One request = one live stream: the audio, a Finalize, a CloseStream. recognize()
        # retries around this, so the stream itself does not.
        once = APIConnectOptions(max_retry=0, timeout=conn_options.timeout)
        piece = max(1, round(_RECOGNIZE_PIECE * frame.sample_rate))
        async with self.stream(language=language, conn_options=once) as stream:
            for start in range(0, frame.samples_per_channel, piece):
                await stream.push_frame(
                    AudioFrame(frame.data[start : start + piece], frame.sample_rate)
                )
            stream.end_input()
            events = await stream.collect()
        finals = [e for e in events if e.type == stt_.SpeechEventType.FINAL_TRANSCRIPT and e.text]
        best = [e.alternatives[0] for e in finals]
        return stt_.SpeechEvent(
            type=stt_.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[
                stt_.SpeechData(
                    text=" ".join(d.text for d in best),
                    confidence=min((d.confidence for d in best), default=0.0),
                    language=best[0].language if best else (language or self._language),
                    start_time=best[0].start_time if best else 0.0,
                    end_time=best[-1].end_time if best else 0.0,
                )
            ],
            request_id=finals[0].request_id if finals else "",
        )

    def _headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"Authorization", f"Token {self._api_key}".encode())]

    @asynccontextmanager
    async def connect(self, url: str) -> AsyncIterator[trio_websocket.WebSocketConnection]:
        """An open connection to ``url`` for the block; failures to connect are tvoice's.

        The TCP stream is ours and closed with the block (trio-websocket leaves a client's
        stream open when the server ends the close handshake), and its reader task lives in a
        nursery of the block, so the connection is gone when the block is.
        """
        parts = urlsplit(url)
        try:
            with trio.fail_after(self._connect_timeout):
                stream = await _open_stream(parts.scheme, parts.hostname or "", parts.port)
        except trio.TooSlowError:
            raise APITimeoutError(
                f"deepgram: no connection within {self._connect_timeout} s"
            ) from None
        except OSError as e:
            raise APIConnectionError(f"deepgram: could not connect ({type(e).__name__})") from None
        async with stream:
            try:
                async with trio.open_nursery() as nursery:
                    ws = await self._handshake(nursery, stream, parts)
                    try:
                        yield ws
                    finally:
                        with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                            await ws.aclose()
                    nursery.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                # The nursery holds trio-websocket's reader: the one error, from it or from us.
                raise self._translate(_single_error(group)) from None

    async def _handshake(
        self, nursery: trio.Nursery, stream: _Stream, parts: SplitResult
    ) -> trio_websocket.WebSocketConnection:
        resource = parts.path + (f"?{parts.query}" if parts.query else "")
        with trio.move_on_after(self._connect_timeout) as handshake:
            return await trio_websocket.wrap_client_stream(
                nursery, stream, parts.netloc, resource, extra_headers=self._headers()
            )
        assert handshake.cancelled_caught
        raise APITimeoutError(f"deepgram: no handshake within {self._connect_timeout} s")

    def _translate(self, error: BaseException) -> BaseException:
        if isinstance(error, trio_websocket.ConnectionRejected):
            return rejected_error(error, api_key=self._api_key)
        if isinstance(error, trio_websocket.HandshakeError | trio.BrokenResourceError | OSError):
            return APIConnectionError(f"deepgram: the handshake failed ({type(error).__name__})")
        return error

    def message_error(self, body: Any) -> APIError:
        """The error for an ``Error`` message (the key scrubbed from it)."""
        return message_error(body, api_key=self._api_key)

    def close_error(self, reason: trio_websocket.CloseReason | None) -> APIError:
        """The error for a close the stream did not ask for (the key scrubbed from it)."""
        return closed_error(reason, api_key=self._api_key)


async def _open_stream(scheme: str, host: str, port: int | None) -> _Stream:
    if scheme == "wss":
        return await trio.open_ssl_over_tcp_stream(
            host, port or 443, ssl_context=ssl.create_default_context(), https_compatible=True
        )
    return await trio.open_tcp_stream(host, port or 80)


def _single_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error in ``group`` (Cancelled aside); the group itself when there are several."""
    errors = [e for e in _leaves(group) if not isinstance(e, trio.Cancelled)]
    return errors[0] if len(errors) == 1 else group


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for sub in error.exceptions for leaf in _leaves(sub)]
    return [error]


class SpeechStream(stt_.RecognizeStream):
    """A live recognition: audio frames in, speech events out.

    The audio goes out as it is pushed (16-bit PCM, resampled to the STT's rate); while none
    comes for ``keepalive_interval`` seconds a ``KeepAlive`` is sent instead, ``flush()``
    sends ``Finalize``, and the end of input sends ``Finalize`` then ``CloseStream``: the
    events end when the server has sent the last results and closed. Leaving the stream early
    drops the connection at once.
    """

    def __init__(self, stt: STT, *, language: str, conn_options: APIConnectOptions) -> None:
        super().__init__(stt, language=language, conn_options=conn_options)
        self._dg = stt
        self._language_tag = language
        self._resampler: AudioResampler | None = None
        self._speaking = False
        # Seconds of audio sent on earlier connections: a retry's times continue from there.
        self._sent_before = 0.0
        self._sent = 0.0
        self._request_id = ""
        # Bounds the wait for the server's last results once CloseStream is sent: the
        # deadline, and the scope of the receive under way (moved when the deadline is set).
        self._close_deadline = math.inf
        self._reading = trio.CancelScope()

    async def _run(self) -> None:
        self._sent_before += self._sent
        self._sent = 0.0
        self._close_deadline = math.inf
        async with self._dg.connect(self._dg.url(language=self._language_tag)) as ws:
            # The error is raised once the sender is gone, so it leaves as itself, not
            # inside an ExceptionGroup.
            failure: Exception | None = None
            async with trio.open_nursery() as nursery:
                closing = trio.Event()
                nursery.start_soon(self._send_input, ws, closing)
                try:
                    await self._receive(ws, closing)
                except Exception as e:
                    failure = e
                nursery.cancel_scope.cancel()
            if failure is not None:
                raise failure

    async def _send_input(
        self, ws: trio_websocket.WebSocketConnection, closing: trio.Event
    ) -> None:
        interval = self._dg.keepalive_interval
        try:
            while True:
                with trio.move_on_after(interval) as idle:
                    try:
                        item = await self._input.receive()
                    except trio.EndOfChannel:
                        break
                if idle.cancelled_caught:
                    await ws.send_message(KEEP_ALIVE)
                elif isinstance(item, AudioFrame):
                    await self._send_audio(ws, self._pcm(item))
                else:
                    await self._send_audio(ws, self._rest())
                    await ws.send_message(FINALIZE)
            await self._send_audio(ws, self._rest())
            await ws.send_message(FINALIZE)
            closing.set()
            await ws.send_message(CLOSE_STREAM)
            self._close_deadline = trio.current_time() + self.conn_options.timeout
            self._reading.deadline = self._close_deadline
        except trio_websocket.ConnectionClosed:
            pass  # the receiving side reports why

    async def _send_audio(self, ws: trio_websocket.WebSocketConnection, data: bytes) -> None:
        if data:  # an empty binary frame would end the stream
            await ws.send_message(data)

    def _rest(self) -> bytes:
        """What the resampler still holds (at a flush or the end of input)."""
        if self._resampler is None:
            return b""
        pieces = self._resampler.flush()
        self._resampler = None
        return self._bytes(combine_frames(pieces)) if pieces else b""

    def _bytes(self, frame: AudioFrame) -> bytes:
        self._sent += frame.duration
        return frame.data.astype("<i2").tobytes()

    def _pcm(self, frame: AudioFrame) -> bytes:
        data = frame.data
        if frame.num_channels > 1:
            data = data.mean(axis=1, keepdims=True).astype(np.int16)
            frame = AudioFrame(data, frame.sample_rate)
        rate = self._dg.sample_rate
        if frame.sample_rate != rate:
            if self._resampler is None or self._resampler.input_rate != frame.sample_rate:
                self._resampler = AudioResampler(frame.sample_rate, rate)
            pieces = self._resampler.push(frame)
            if not pieces:
                return b""
            frame = combine_frames(pieces)
        return self._bytes(frame)

    async def _receive(self, ws: trio_websocket.WebSocketConnection, closing: trio.Event) -> None:
        while True:
            try:
                with trio.CancelScope(deadline=self._close_deadline) as self._reading:
                    raw = await ws.get_message()
            except trio_websocket.ConnectionClosed as e:
                if closing.is_set() and e.reason is not None and e.reason.code == 1000:
                    break
                raise self._dg.close_error(e.reason) from None
            if self._reading.cancelled_caught:
                raise APITimeoutError(
                    f"deepgram: the stream did not end {self.conn_options.timeout} s "
                    "after CloseStream"
                )
            try:
                message = parse_message(raw, language=self._language_tag, offset=self._sent_before)
            except MalformedMessage as e:
                raise malformed(str(e)) from None
            if isinstance(message, Results):
                await self._on_results(message)
            else:
                await self._on_message(message)
        if self._speaking:
            await self._end_of_speech()

    async def _on_results(self, results: Results) -> None:
        self._request_id = results.request_id or self._request_id
        Type = stt_.SpeechEventType
        has_text = bool(results.alternatives and results.alternatives[0].text)
        if has_text:
            if not self._speaking:
                await self._start_of_speech()
            await self._emit(
                stt_.SpeechEvent(
                    type=Type.FINAL_TRANSCRIPT if results.is_final else Type.INTERIM_TRANSCRIPT,
                    alternatives=results.alternatives,
                    request_id=self._request_id,
                )
            )
        if results.speech_final and self._speaking:
            await self._end_of_speech()

    async def _on_message(self, message: Message) -> None:
        if message.type == "SpeechStarted":
            if not self._speaking:
                await self._start_of_speech()
        elif message.type == "UtteranceEnd":
            if self._speaking:
                await self._end_of_speech()
        elif message.type == "Metadata":
            self._request_id = str(message.body.get("request_id", "")) or self._request_id
        elif message.type == "Error":
            raise self._dg.message_error(message.body)
        else:
            logger.debug("deepgram: ignored a %r message", message.type)

    async def _start_of_speech(self) -> None:
        self._speaking = True
        await self._emit(
            stt_.SpeechEvent(type=stt_.SpeechEventType.START_OF_SPEECH, request_id=self._request_id)
        )

    async def _end_of_speech(self) -> None:
        self._speaking = False
        await self._emit(
            stt_.SpeechEvent(type=stt_.SpeechEventType.END_OF_SPEECH, request_id=self._request_id)
        )
