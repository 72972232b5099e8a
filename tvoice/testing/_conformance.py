"""Conformance suites every model implementation's tests call, real or fake.

Each ``check_*`` is an async function that raises ``AssertionError`` naming the broken promise.
They check what the runtime relies on: output arrives and ends after end of input, streams
close cleanly, cancelling mid-stream leaves no task running, bad input is refused clearly, and a
failing provider raises an ``APIError`` (never a hang).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import trio

from .._errors import APIError
from ..audio import AudioChunker, AudioFrame
from ..llm import LLM, ChatContext, Tool
from ..stt import STT, SpeechEventType
from ..tts import TTS
from ..vad import VAD, VADEventType

__all__ = ["check_llm", "check_stt", "check_tts", "check_vad"]

# How long a cancelled stream may take to stop: its cleanup must not wait on the provider.
_STOP_LIMIT = 2.0


def _frames(audio: AudioFrame, *, tail_silence: float = 1.0) -> list[AudioFrame]:
    chunker = AudioChunker(audio.sample_rate, audio.num_channels, frame_duration=0.02)
    frames = chunker.push(audio)
    frames += chunker.push(AudioFrame.silence(tail_silence, audio.sample_rate, audio.num_channels))
    return frames + chunker.flush(pad=True)


@contextlib.contextmanager
def _within(time_limit: float, what: str) -> Iterator[None]:
    """``trio.fail_after``, where a hang is reported as a failed check (an AssertionError)."""
    try:
        with trio.fail_after(time_limit):
            yield
    except trio.TooSlowError:
        raise AssertionError(f"{what}: no result within {time_limit} s") from None


async def _check_cancellation(open_and_use: Callable[[], Awaitable[Any]], what: str) -> None:
    """Cancel ``open_and_use`` mid-flight: it must stop promptly and leave no task behind."""
    cancelled_at: list[float] = []
    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as scope:
            nursery.start_soon(_cancel_soon, scope, cancelled_at)
            await open_and_use()
        stopped_at = trio.current_time()
    # Checked outside the nursery, so that a failure is an AssertionError, not a group.
    assert scope.cancelled_caught, f"{what}: finished before it could be cancelled"
    took = stopped_at - cancelled_at[0]
    assert took <= _STOP_LIMIT, f"{what}: took {took:.2f} s to stop after cancellation"
    assert not nursery.child_tasks, f"{what}: tasks still running after cancellation"


async def _cancel_soon(scope: trio.CancelScope, cancelled_at: list[float]) -> None:
    await trio.sleep(0.01)
    cancelled_at.append(trio.current_time())
    scope.cancel()


async def _expect_api_error(
    use: Callable[[], Awaitable[Any]], what: str, time_limit: float
) -> None:
    try:
        with trio.fail_after(time_limit):
            await use()
    except APIError:
        return
    except trio.TooSlowError:
        raise AssertionError(
            f"{what}: a failing provider hung instead of raising APIError"
        ) from None
    raise AssertionError(f"{what}: a failing provider did not raise APIError")


async def check_vad(vad: VAD, speech: AudioFrame, *, time_limit: float = 60.0) -> None:
    """``speech``: audio holding speech (a second of silence is appended). A VAD that offers
    a detector must hear in it what its stream hears."""
    with _within(time_limit, "VAD stream"):
        async with vad.stream() as stream:
            for frame in _frames(speech):
                await stream.push_frame(frame)
            stream.end_input()
            events = await stream.collect()
    types = [e.type for e in events]
    assert VADEventType.START_OF_SPEECH in types, f"no START_OF_SPEECH in {types}"
    assert VADEventType.END_OF_SPEECH in types, f"no END_OF_SPEECH after the speech: {types}"
    assert types.index(VADEventType.START_OF_SPEECH) < types.index(VADEventType.END_OF_SPEECH), (
        f"END_OF_SPEECH before START_OF_SPEECH: {types}"
    )
    times = [e.timestamp for e in events]
    assert times == sorted(times), "event timestamps go backwards"
    end = next(e for e in events if e.type == VADEventType.END_OF_SPEECH)
    assert end.speech_duration > 0, "END_OF_SPEECH without a speech duration"

    detector = await vad.detector()
    if detector is not None:
        inline = [e for f in _frames(speech) for e in detector.push_frame(f)] + detector.flush()
        boundaries = [t for t in types if t != VADEventType.INFERENCE_DONE]
        heard = [e.type for e in inline if e.type != VADEventType.INFERENCE_DONE]
        assert heard == boundaries, f"the detector hears {heard}, the stream {boundaries}"

    async with vad.stream() as stream:
        try:
            await stream.push_frame(speech.data)  # type: ignore[arg-type]
        except TypeError:
            pass
        else:
            raise AssertionError("VADStream.push_frame accepted something that is not a frame")

    async def push_forever() -> None:
        async with vad.stream() as stream:
            for frame in _frames(speech) * 100:
                await stream.push_frame(frame)
            await trio.sleep_forever()

    await _check_cancellation(push_forever, "VAD stream")


async def check_stt(
    stt: STT,
    speech: AudioFrame,
    *,
    expected_words: Sequence[str] = (),
    broken: STT | None = None,
    time_limit: float = 120.0,
) -> None:
    """``speech``: audio of an utterance whose transcript contains ``expected_words``.

    Streaming is checked when ``stt.capabilities.streaming`` (wrap batch STTs in a
    ``StreamAdapter`` to check their streaming). ``broken``: the same STT set up to fail.
    """
    with _within(time_limit, "STT.recognize"):
        event = await stt.recognize(speech)
    assert event.type == SpeechEventType.FINAL_TRANSCRIPT, f"recognize gave {event.type}"
    _assert_words(event.text, expected_words, "recognize")

    if stt.capabilities.streaming:
        with _within(time_limit, "STT stream"):
            async with stt.stream() as stream:
                for frame in _frames(speech):
                    await stream.push_frame(frame)
                stream.end_input()
                events = await stream.collect()
        finals = [e for e in events if e.type == SpeechEventType.FINAL_TRANSCRIPT]
        assert finals, f"stream ended with no final transcript: {[e.type for e in events]}"
        _assert_words(" ".join(e.text for e in finals), expected_words, "stream")

        async def push_forever() -> None:
            async with stt.stream() as stream:
                for frame in _frames(speech) * 100:
                    await stream.push_frame(frame)
                await trio.sleep_forever()

        await _check_cancellation(push_forever, "STT stream")

    if broken is not None:
        await _expect_api_error(lambda: broken.recognize(speech), "STT.recognize", time_limit)


def _assert_words(text: str, words: Sequence[str], what: str) -> None:
    lowered = text.lower()
    missing = [w for w in words if w.lower() not in lowered]
    assert not missing, f"{what}: transcript {text!r} lacks {missing}"


async def check_tts(
    tts: TTS,
    *,
    text: str = "Hello there. This is a test of speech synthesis.",
    broken: TTS | None = None,
    time_limit: float = 120.0,
) -> None:
    """Synthesize ``text`` (and stream it, when the TTS streams) and check the audio."""
    with _within(time_limit, "TTS.synthesize"):
        async with tts.synthesize(text) as chunked:
            items = await chunked.collect()
    _check_audio(tts, items, "synthesize")

    if tts.capabilities.streaming:
        with _within(time_limit, "TTS stream"):
            async with tts.stream() as stream:
                for word in text.split(" "):
                    await stream.push_text(word + " ")
                await stream.flush()
                await stream.push_text(text)
                stream.end_input()
                items = await stream.collect()
        finals = [i for i in items if i.is_final]
        assert len(finals) == 2, f"two segments gave {len(finals)} is_final items"
        _check_audio(tts, items, "stream")

    async def synthesize_forever() -> None:
        async with tts.synthesize(text) as chunked:
            await chunked.__anext__()
            await trio.sleep_forever()

    await _check_cancellation(synthesize_forever, "TTS synthesize")

    if broken is not None:

        async def use_broken() -> None:
            async with broken.synthesize(text) as chunked:
                await chunked.collect()

        await _expect_api_error(use_broken, "TTS.synthesize", time_limit)


def _check_audio(tts: TTS, items: Sequence[Any], what: str) -> None:
    assert items, f"{what}: no output"
    assert items[-1].is_final, f"{what}: output does not end with an is_final item"
    frames = [i.frame for i in items if not i.is_final]
    assert frames, f"{what}: no audio"
    for f in frames:
        assert f.sample_rate == tts.sample_rate, f"{what}: {f.sample_rate} Hz != tts.sample_rate"
        assert f.num_channels == tts.num_channels, f"{what}: channels != tts.num_channels"
    assert sum(f.duration for f in frames) > 0.1, f"{what}: less than 0.1 s of audio"
    assert any(abs(f.data).max() > 100 for f in frames if f.samples_per_channel), (
        f"{what}: the audio is silent"
    )


async def check_llm(
    llm: LLM,
    *,
    prompt: str = "Say hello.",
    tools: Sequence[Tool] = (),
    broken: LLM | None = None,
    time_limit: float = 120.0,
) -> None:
    """Ask ``prompt`` and check the streamed reply; with ``tools``, the model must call one."""
    chat_ctx = ChatContext()
    chat_ctx.add_message(role="user", content=prompt)
    with _within(time_limit, "LLM.chat"):
        async with llm.chat(chat_ctx=chat_ctx) as stream:
            chunks = await stream.collect()
    text = "".join(c.delta.content or "" for c in chunks if c.delta)
    assert text.strip(), "the reply has no text"

    if tools:
        with _within(time_limit, "LLM.chat with tools"):
            async with llm.chat(chat_ctx=chat_ctx, tools=tools, tool_choice="required") as s:
                chunks = await s.collect()
        calls = [c for ch in chunks if ch.delta for c in ch.delta.tool_calls]
        names = {t.name for t in tools}
        assert calls, "tool_choice='required' gave no tool call"
        assert all(c.name in names for c in calls), f"calls to unknown tools: {calls}"

    async def read_forever() -> None:
        async with llm.chat(chat_ctx=chat_ctx) as stream:
            await stream.__anext__()
            await trio.sleep_forever()

    await _check_cancellation(read_forever, "LLM stream")

    if broken is not None:

        async def use_broken() -> None:
            async with broken.chat(chat_ctx=chat_ctx) as stream:
                await stream.collect()

        await _expect_api_error(use_broken, "LLM.chat", time_limit)
