"""Scripted VAD, STT, LLM and TTS: they answer on trio's clock exactly as the script says."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import trio

from .._errors import APIStatusError
from .._utils import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, BackgroundTasks
from ..audio import AudioFrame
from ..llm import (
    LLM,
    ChatChunk,
    ChatContext,
    ChoiceDelta,
    CompletionUsage,
    LLMStream,
    Tool,
    ToolChoice,
)
from ..stt import STT, RecognizeStream, SpeechData, SpeechEvent, SpeechEventType, STTCapabilities
from ..tts import TTS, ChunkedStream, SynthesizeStream, TTSCapabilities
from ..vad import VAD, VADCapabilities, VADEvent, VADEventType, VADStream
from ._script import Script, ScriptError, TTSReply, UserSpeech

__all__ = ["FakeLLM", "FakeSTT", "FakeTTS", "FakeVAD"]

VAD_START_DELAY = 0.05
VAD_END_DELAY = 0.5
VAD_PREFIX_PADDING = 0.5


async def _sleep_until_timeline(script: Script, t: float) -> None:
    await trio.sleep_until(script.origin + t)


async def _drain(receive: trio.abc.ReceiveChannel[Any], done: trio.Event) -> None:
    # The fakes follow the script, not the audio; still read it so pushers never block.
    async for _ in receive:
        pass
    done.set()


class FakeVAD(VAD):
    """Reports each scripted user speech: START_OF_SPEECH at ``start + 0.05``, END_OF_SPEECH at
    ``end + 0.5`` with a silence duration of 0.5, and INFERENCE_DONE every ``update_interval``
    while speech lasts. A stream opened mid-timeline reports only what is still to come.

    END_OF_SPEECH carries the audio pushed since START_OF_SPEECH, with up to 0.5 s pushed just
    before it as padding (what a batch STT behind ``stt.StreamAdapter`` transcribes). A stream
    ends once the script has been told and its input has ended."""

    def __init__(self, script: Script, *, update_interval: float = 0.1) -> None:
        super().__init__(capabilities=VADCapabilities(update_interval=update_interval))
        self._script = script

    @property
    def script(self) -> Script:
        """The shared script."""
        return self._script

    def stream(self) -> VADStream:
        return _FakeVADStream(self)


class _FakeVADStream(VADStream):
    def __init__(self, vad: FakeVAD) -> None:
        super().__init__(vad)
        self._script = vad.script
        self._interval = vad.capabilities.update_interval
        self._heard: list[AudioFrame] = []
        self._speaking = False

    async def _run(self) -> None:
        input_ended = trio.Event()
        async with BackgroundTasks() as nursery:
            nursery.start_soon(self._listen, input_ended)
            segments = self._script.vad_segments(
                start_delay=VAD_START_DELAY, end_delay=VAD_END_DELAY
            )
            for start, end in segments:
                await self._report_speech(start, end)
            await input_ended.wait()

    async def _listen(self, input_ended: trio.Event) -> None:
        async for frame in self._input:
            self._heard.append(frame)
            if not self._speaking:
                # Outside speech keep only the padding that will precede the next one.
                while sum(f.duration for f in self._heard[1:]) >= VAD_PREFIX_PADDING:
                    self._heard.pop(0)
        input_ended.set()

    def _now(self) -> float:
        return trio.current_time() - self._script.origin

    async def _report_speech(self, speech_start: float, speech_end: float) -> None:
        start, end = speech_start + VAD_START_DELAY, speech_end + VAD_END_DELAY
        if self._now() > end:
            return
        await _sleep_until_timeline(self._script, start)
        now = self._now()
        self._speaking = True
        await self._emit(
            VADEvent(
                type=VADEventType.START_OF_SPEECH,
                timestamp=trio.current_time(),
                speech_duration=now - speech_start,
                speaking=True,
            )
        )
        t = now + self._interval
        while t < speech_end:
            await _sleep_until_timeline(self._script, t)
            await self._emit(
                VADEvent(
                    type=VADEventType.INFERENCE_DONE,
                    timestamp=trio.current_time(),
                    speech_duration=t - speech_start,
                    speaking=True,
                    probability=1.0,
                )
            )
            t += self._interval
        await _sleep_until_timeline(self._script, end)
        frames, self._heard, self._speaking = tuple(self._heard), [], False
        await self._emit(
            VADEvent(
                type=VADEventType.END_OF_SPEECH,
                timestamp=trio.current_time(),
                speech_duration=speech_end - speech_start,
                silence_duration=VAD_END_DELAY,
                frames=frames,
            )
        )


class FakeSTT(STT):
    """Streams each scripted transcript: START_OF_SPEECH at ``start + 0.05``, an interim
    transcript at ``end + stt_delay/2``, the final one at ``end + stt_delay``, then
    END_OF_SPEECH. Noise (empty transcript) gives no transcript at all. A stream ends once the
    script has been told and its input has ended."""

    def __init__(self, script: Script) -> None:
        super().__init__(capabilities=STTCapabilities(streaming=True, interim_results=True))
        self._script = script
        # Speeches whose final transcript a stream of this STT has sent (by identity).
        self.finals_sent: set[int] = set()

    @property
    def script(self) -> Script:
        """The shared script."""
        return self._script

    async def _recognize_impl(
        self, frame: AudioFrame, *, language: str | None, conn_options: APIConnectOptions
    ) -> SpeechEvent:
        # Batch recognition answers with the speech that ended last before now.
        now = trio.current_time() - self._script.origin
        ended = [s for s in self._script.speech_sorted() if s.end <= now]
        text = ended[-1].transcript if ended else ""
        return SpeechEvent(
            type=SpeechEventType.FINAL_TRANSCRIPT, alternatives=[SpeechData(text=text)]
        )

    def stream(
        self,
        *,
        language: str | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> RecognizeStream:
        return _FakeRecognizeStream(self, language=language, conn_options=conn_options)


class _FakeRecognizeStream(RecognizeStream):
    def __init__(
        self, stt: FakeSTT, *, language: str | None, conn_options: APIConnectOptions
    ) -> None:
        super().__init__(stt, language=language, conn_options=conn_options)
        self._script = stt.script
        self._finals = stt.finals_sent

    async def _run(self) -> None:
        input_ended = trio.Event()
        async with BackgroundTasks() as nursery:
            nursery.start_soon(_drain, self._input, input_ended)
            for speech in self._script.speech_sorted():
                await self._report_speech(speech)
            await input_ended.wait()

    async def _report_speech(self, speech: UserSpeech) -> None:
        done = speech.end + speech.stt_delay
        if trio.current_time() - self._script.origin > done:
            return
        if not speech.transcript:
            # Noise: the recognizer hears something and finds no words in it.
            await _sleep_until_timeline(self._script, speech.start + VAD_START_DELAY)
            await self._emit(SpeechEvent(type=SpeechEventType.START_OF_SPEECH))
            await _sleep_until_timeline(self._script, done)
            await self._emit(SpeechEvent(type=SpeechEventType.END_OF_SPEECH))
            return
        data = (
            SpeechData(
                text=speech.transcript,
                confidence=1.0,
                language="en",
                start_time=speech.start,
                end_time=speech.end,
            ),
        )
        await _sleep_until_timeline(self._script, speech.start + VAD_START_DELAY)
        await self._emit(SpeechEvent(type=SpeechEventType.START_OF_SPEECH))
        if speech.preflight is None:
            await _sleep_until_timeline(self._script, speech.end + speech.stt_delay / 2)
            await self._emit(
                SpeechEvent(type=SpeechEventType.INTERIM_TRANSCRIPT, alternatives=data)
            )
        else:
            await _sleep_until_timeline(self._script, speech.end + speech.preflight)
            await self._emit(
                SpeechEvent(type=SpeechEventType.PREFLIGHT_TRANSCRIPT, alternatives=data)
            )
        await _sleep_until_timeline(self._script, done)
        if id(speech) in self._finals:
            # A stream opened at this very instant (an STT restarted by a handoff) must not
            # report again what the previous stream already did.
            return
        self._finals.add(id(speech))
        await self._emit(SpeechEvent(type=SpeechEventType.FINAL_TRANSCRIPT, alternatives=data))
        await self._emit(SpeechEvent(type=SpeechEventType.END_OF_SPEECH))


class FakeLLM(LLM):
    """Answers by the text of the last chat item (user text, instructions or tool output).

    ``requests`` records, for each request, that text. A request with no scripted reply fails
    with a non-retryable ``APIStatusError`` that names the text, so a test sees its own gap.
    """

    def __init__(self, script: Script) -> None:
        super().__init__()
        self._script = script
        self.requests: list[str] = []

    @property
    def script(self) -> Script:
        """The shared script."""
        return self._script

    @property
    def model(self) -> str:
        return "fake-llm"

    def chat(
        self,
        *,
        chat_ctx: ChatContext,
        tools: Sequence[Tool] = (),
        tool_choice: ToolChoice = "auto",
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        extra: dict[str, Any] | None = None,
    ) -> LLMStream:
        text = last_item_text(chat_ctx)
        self.requests.append(text)
        return _FakeLLMStream(
            self,
            text,
            chat_ctx=chat_ctx,
            tools=tools,
            tool_choice=tool_choice,
            conn_options=conn_options,
        )


def last_item_text(chat_ctx: ChatContext) -> str:
    """What FakeLLM answers to: the text of the last message or tool output."""
    for item in reversed(chat_ctx.items):
        if item.type == "message":
            return item.text_content or ""
        if item.type == "function_call_output":
            return item.output
    return ""


class _FakeLLMStream(LLMStream):
    def __init__(self, llm: FakeLLM, text: str, **kwargs: Any) -> None:
        super().__init__(llm, **kwargs)
        self._script = llm.script
        self._text = text

    async def _run(self) -> None:
        try:
            reply = self._script.llm_reply(self._text)
        except ScriptError as e:
            raise APIStatusError(str(e), status_code=400) from None
        start = trio.current_time()
        words = _pieces(reply.content)
        for i, piece in enumerate(words):
            at = reply.ttft + (reply.duration - reply.ttft) * (i / max(len(words) - 1, 1))
            await trio.sleep_until(start + at)
            await self._emit_chunk(ChatChunk(id=self.request_id, delta=ChoiceDelta(content=piece)))
        await trio.sleep_until(start + reply.duration)
        if reply.tool_calls:
            await self._emit_chunk(
                ChatChunk(id=self.request_id, delta=ChoiceDelta(tool_calls=reply.tool_calls))
            )
        tokens = len(self._text.split())
        completion = len(words) + sum(len(json.dumps(c.arguments)) // 4 for c in reply.tool_calls)
        await self._emit_chunk(
            ChatChunk(
                id=self.request_id,
                usage=CompletionUsage(
                    prompt_tokens=tokens,
                    completion_tokens=completion,
                    total_tokens=tokens + completion,
                ),
            )
        )


def _pieces(content: str) -> list[str]:
    # Word by word, spaces kept, so the pieces join back to exactly the content.
    return [p for p in re.split(r"(?<=\s)(?=\S)", content) if p]


class FakeTTS(TTS):
    """Speaks scripted text: once a segment's text is complete (flush or end of input), the
    first frame comes ``ttfb`` seconds later and all ``audio_duration`` seconds of it by
    ``duration``, in frames of ``frame_duration``. Keyed by the segment's full text."""

    def __init__(
        self, script: Script, *, sample_rate: int = 24000, frame_duration: float = 0.1
    ) -> None:
        super().__init__(
            sample_rate=sample_rate, num_channels=1, capabilities=TTSCapabilities(streaming=True)
        )
        self._script = script
        self.frame_duration = frame_duration
        self.requests: list[str] = []

    @property
    def script(self) -> Script:
        """The shared script."""
        return self._script

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> ChunkedStream:
        return _FakeChunkedStream(self, text, conn_options=conn_options)

    def stream(
        self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> SynthesizeStream:
        return _FakeSynthesizeStream(self, conn_options=conn_options)

    def reply_for(self, text: str) -> TTSReply:
        """The scripted audio for ``text`` (recorded in ``requests``)."""
        self.requests.append(text.strip())
        try:
            return self._script.tts_reply(text)
        except ScriptError as e:
            raise APIStatusError(str(e), status_code=400) from None

    def frames_for(self, reply: TTSReply) -> list[tuple[float, AudioFrame]]:
        """(offset from text complete, frame) pairs for a scripted reply."""
        n = max(1, round(reply.audio_duration / self.frame_duration))
        total = round(reply.audio_duration * self.sample_rate)
        bounds = np.linspace(0, total, n + 1).round().astype(int)
        t = np.arange(total, dtype=np.float64) / self.sample_rate
        # A quiet 220 Hz tone: audible, distinguishable from silence in recordings.
        samples = (np.sin(2 * np.pi * 220 * t) * 3000).astype(np.int16)
        out = []
        for i in range(n):
            at = reply.ttfb + (reply.duration - reply.ttfb) * (i / max(n - 1, 1))
            out.append((at, AudioFrame(samples[bounds[i] : bounds[i + 1]], self.sample_rate)))
        return out


class _FakeChunkedStream(ChunkedStream):
    def __init__(self, tts: FakeTTS, text: str, *, conn_options: APIConnectOptions) -> None:
        super().__init__(tts, text, conn_options=conn_options)
        self._fake = tts

    async def _run(self) -> None:
        start = trio.current_time()
        for at, frame in self._fake.frames_for(self._fake.reply_for(self.input_text)):
            await trio.sleep_until(start + at)
            await self._emit_frame(frame)


class _FakeSynthesizeStream(SynthesizeStream):
    def __init__(self, tts: FakeTTS, *, conn_options: APIConnectOptions) -> None:
        super().__init__(tts, conn_options=conn_options)
        self._fake = tts

    async def _run(self) -> None:
        text: list[str] = []
        segment = 0
        async for item in self._input:
            if isinstance(item, str):
                text.append(item)
                continue
            if "".join(text).strip():
                await self._speak("".join(text), f"seg_{segment}")
            text.clear()
            segment += 1
        if "".join(text).strip():
            await self._speak("".join(text), f"seg_{segment}")

    async def _speak(self, text: str, segment_id: str) -> None:
        start = trio.current_time()
        for at, frame in self._fake.frames_for(self._fake.reply_for(text)):
            await trio.sleep_until(start + at)
            await self._emit_frame(frame, segment_id=segment_id)
        await self._end_segment(segment_id)
