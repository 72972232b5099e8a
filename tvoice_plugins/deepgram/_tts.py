"""``deepgram.TTS``: Aura text-to-speech over Deepgram's ``/v1/speak`` WebSocket."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Awaitable, Callable

import numpy as np
import trio

from tvoice import APIConnectionError, APIConnectOptions, APITimeoutError
from tvoice import tts as tts_
from tvoice.audio import AudioFrame

from .._kept import KeptConnections
from .._websocket import Closed, Connection, Rejected
from ._errors import close_code_error, handshake_error, malformed, message_error, missing_api_key
from ._wire import CLEAR, FLUSH, speak, speak_url

__all__ = ["TTS", "ChunkedStream", "SynthesizeStream"]

logger = logging.getLogger("tvoice.deepgram")

DEFAULT_BASE_URL = "wss://api.deepgram.com/v1"
_DEFAULT_OPTIONS = APIConnectOptions()
# How long an interrupted reply may take to send its Clear.
_CLEAR_TIMEOUT = 0.5
_MAX_IDLE = 2


class TTS(tts_.TTS):
    """Deepgram's Aura streaming text-to-speech, raw 16-bit mono PCM.

    ``model``: the voice (``aura-2-thalia-en``...); ``sample_rate``; ``api_key`` (else
    ``DEEPGRAM_API_KEY``), sent as ``Authorization: Token``; ``base_url`` (``wss://`` or
    ``https://``, ``/speak`` is added); ``connect_timeout``.

    The TTS keeps its WebSocket between replies (``prewarm()`` opens it ahead,
    ``keep_warm()``, which a session runs, opens it again when it drops, ``aclose()`` closes
    it). A reply sends its text as it comes (``Speak``) and ends each segment with
    ``Flush``, whose ``Flushed`` ends the segment's audio. Leaving a reply early sends
    ``Clear``: the next reply on that connection drops the audio that still arrives until the
    server's ``Cleared``. Aura gives no word timings, so ``delta_text`` stays empty.
    """

    def __init__(
        self,
        *,
        model: str = "aura-2-thalia-en",
        sample_rate: int = 24000,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        connect_timeout: float = 10.0,
    ) -> None:
        if sample_rate <= 0 or connect_timeout <= 0:
            raise ValueError("sample_rate and connect_timeout must be > 0")
        super().__init__(
            sample_rate=sample_rate,
            num_channels=1,
            capabilities=tts_.TTSCapabilities(streaming=True),
        )
        key = api_key if api_key is not None else os.environ.get("DEEPGRAM_API_KEY")
        if not key:
            raise missing_api_key()
        self._api_key = key
        self._model = model
        self._url = speak_url(
            base_url, {"model": model, "encoding": "linear16", "sample_rate": sample_rate}
        )
        self._connect_timeout = connect_timeout
        self._kept = KeptConnections(self._open_speaker, max_idle=_MAX_IDLE)

    def __repr__(self) -> str:
        return f"deepgram.TTS(model={self._model!r}, url={self._url!r})"

    @property
    def label(self) -> str:
        return "deepgram.TTS"

    @property
    def model(self) -> str:
        """The Aura voice model."""
        return self._model

    @property
    def url(self) -> str:
        """The WebSocket URL (it holds no secret)."""
        return self._url

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

    async def _open_speaker(self) -> _Speaker:
        return _Speaker(await self._open())

    async def _open(self) -> Connection:
        headers = [("Authorization", f"Token {self._api_key}")]
        try:
            with trio.fail_after(self._connect_timeout):
                return await Connection.open(self._url, headers)
        except trio.TooSlowError:
            raise APITimeoutError(
                f"deepgram: no connection within {self._connect_timeout} s"
            ) from None
        except Rejected as e:
            raise handshake_error(e.status, e.headers, e.body, api_key=self._api_key) from None
        except Closed as e:
            raise self.failure(e) from None
        except OSError as e:
            raise APIConnectionError(f"deepgram: could not connect ({type(e).__name__})") from None

    def speaker(self) -> contextlib.AbstractAsyncContextManager[_Speaker]:
        """A connection for one reply: a kept one, or a new one; kept again afterwards
        unless it failed."""
        return self._kept.take()

    def failure(self, error: Exception) -> Exception:
        """The tvoice error for what a reply met on the wire (the key scrubbed from it)."""
        if isinstance(error, Closed):
            return close_code_error(error.code, error.reason, api_key=self._api_key)
        if isinstance(error, _Malformed):
            return malformed(str(error))
        if isinstance(error, _NoAnswer):
            return APITimeoutError(f"deepgram: {error}")
        if isinstance(error, _ServerError):
            return message_error(error.body, api_key=self._api_key)
        return error


class _Malformed(Exception):
    pass


class _NoAnswer(Exception):
    """The server did not answer a Flush in time."""


class _ServerError(Exception):
    def __init__(self, body: dict[str, object]) -> None:
        super().__init__(str(body.get("description") or body.get("err_msg") or "error"))
        self.body = body


class _Speaker:
    """A connection and what the last reply left on it: a ``Clear`` whose ``Cleared`` has
    not been read yet (the audio before it belongs to that reply)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        # While a Flush awaits its Flushed, each wait for the server is bounded by this
        # (the reply's conn_options.timeout); the scope of the wait under way moves with it.
        self.timeout = math.inf
        self._waiting = trio.CancelScope()
        self.clearing = False
        self.pending = 0  # Flushes sent whose Flushed has not been read
        self.unflushed = False  # text sent since the last Flush

    @property
    def closed(self) -> bool:
        return self.connection.closed

    async def aclose(self) -> None:
        await self.connection.aclose()

    async def wait_closed(self) -> None:
        await self.connection.wait_closed()

    async def speak(self, text: str) -> None:
        """Add ``text`` to the server's buffer."""
        self.unflushed = True
        await self.connection.send_text(speak(text))

    async def flush(self) -> None:
        """Have the buffered text spoken; :meth:`play` then reads its audio."""
        self.unflushed = False
        self.pending += 1
        await self.connection.send_text(FLUSH)
        self._waiting.deadline = min(self._waiting.deadline, trio.current_time() + self.timeout)

    async def clear(self) -> None:
        """Drop what the server still has for this reply (on an interruption), briefly,
        even while the reply is being cancelled."""
        if self.connection.closed or not (self.pending or self.unflushed):
            return
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + _CLEAR_TIMEOUT
            try:
                await self.connection.send_text(CLEAR)
                self.clearing = True
                self.pending = 0
                self.unflushed = False
            except Closed:
                return

    async def next(self) -> bytes | dict[str, object]:
        """The next audio frame or message of the current reply."""
        while True:
            bounded = self.pending or self.clearing
            deadline = trio.current_time() + self.timeout if bounded else math.inf
            with trio.CancelScope(deadline=deadline) as self._waiting:
                frame = await self.connection.receive()
            if self._waiting.cancelled_caught:
                raise _NoAnswer(f"no answer for {self.timeout} s after a Flush")
            if isinstance(frame, bytes):
                if not self.clearing:
                    return frame
                continue
            try:
                message = json.loads(frame)
            except ValueError:
                raise _Malformed(f"not JSON: {frame[:80]!r}") from None
            if not isinstance(message, dict) or not isinstance(message.get("type"), str):
                raise _Malformed(f"not a typed JSON object: {frame[:80]!r}")
            kind = message["type"]
            if kind == "Cleared":
                self.clearing = False
            elif kind == "Error":
                raise _ServerError(message)
            elif kind == "Warning":
                logger.warning("deepgram: %s", message.get("description", "a warning"))
            elif kind == "Flushed" and not self.clearing:
                return message
            # Metadata, and a Flushed of a cleared reply, tell this reply nothing.

    async def play(self, sample_rate: int, emit: Callable[[AudioFrame], Awaitable[None]]) -> None:
        """Emit audio until the ``Flushed`` of the oldest pending ``Flush``."""
        odd = b""
        while True:
            item = await self.next()
            if isinstance(item, dict):
                self.pending -= 1
                return
            data, odd = odd + item, b""
            if len(data) % 2:
                data, odd = data[:-1], data[-1:]
            samples = np.frombuffer(data, "<i2").astype(np.int16).reshape(-1, 1)
            await emit(AudioFrame(samples, sample_rate))


class ChunkedStream(tts_.ChunkedStream):
    """The audio of one ``synthesize`` call: ``Speak``, ``Flush``, audio until ``Flushed``."""

    def __init__(self, tts: TTS, text: str, *, conn_options: APIConnectOptions) -> None:
        super().__init__(tts, text, conn_options=conn_options)
        self._deepgram = tts

    async def _run(self) -> None:
        if not self.input_text.strip():
            return
        tts = self._deepgram
        async with tts.speaker() as speaker:
            speaker.timeout = self.conn_options.timeout
            try:
                await speaker.speak(self.input_text)
                await speaker.flush()
                await speaker.play(tts.sample_rate, self._emit_frame)
            except (Closed, _Malformed, _ServerError, _NoAnswer) as e:
                raise tts.failure(e) from None
            finally:
                await speaker.clear()


class SynthesizeStream(tts_.SynthesizeStream):
    """Text in as it is written (``Speak``), a ``Flush`` at the end of each segment."""

    def __init__(self, tts: TTS, *, conn_options: APIConnectOptions) -> None:
        super().__init__(tts, conn_options=conn_options)
        self._deepgram = tts
        # Input taken by attempts that failed before any output: the next attempt says it
        # again (a kept connection the server had closed fails only once it is used).
        self._taken: list[object] = []

    async def _run(self) -> None:
        tts = self._deepgram
        async with tts.speaker() as speaker:
            speaker.timeout = self.conn_options.timeout
            segments_send, segments_recv = trio.open_memory_channel[bool](64)
            failure: Exception | None = None
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._send_text, speaker, segments_send)
                    try:
                        async for spoken in segments_recv:
                            if spoken:
                                await speaker.play(tts.sample_rate, self._emit_frame)
                            await self._end_segment()
                    except (Closed, _Malformed, _ServerError, _NoAnswer) as e:
                        failure = tts.failure(e)
                    except Exception as e:
                        failure = e
                    nursery.cancel_scope.cancel()
            finally:
                await speaker.clear()
            if failure is not None:
                raise failure

    async def _send_text(self, speaker: _Speaker, segments: trio.MemorySendChannel[bool]) -> None:
        has_text = False

        async def take(item: object) -> None:
            nonlocal has_text
            if isinstance(item, str):
                await speaker.speak(item)
                has_text = True
            else:
                await end_segment()

        async def end_segment() -> None:
            nonlocal has_text
            if has_text:
                await speaker.flush()
            await segments.send(has_text)
            has_text = False

        async with segments:
            try:
                for item in list(self._taken):
                    await take(item)
                async for item in self._input:
                    self._taken.append(item)
                    await take(item)
                if has_text:
                    await end_segment()
            except Closed:
                pass  # the reading side reports why
