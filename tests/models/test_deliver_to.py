"""Streams that hand their output to a callback (``deliver_to``) instead of being iterated."""

from __future__ import annotations

import numpy as np
import pytest
import trio

from tvoice import APIError
from tvoice._utils import StartedOnce
from tvoice.audio import AudioFrame
from tvoice.stt import (
    STT,
    RecognizeStream,
    SpeechData,
    SpeechEvent,
    SpeechEventType,
    STTCapabilities,
)
from tvoice.vad import VAD, VADCapabilities, VADEvent, VADEventType, VADStream


class Ends:
    """Collects what ``on_end`` gets; ``await ends.wait()`` until it was called."""

    def __init__(self) -> None:
        self.errors: list[APIError | None] = []
        self._called = trio.Event()

    def __call__(self, error: APIError | None) -> None:
        self.errors.append(error)
        self._called.set()

    async def wait(self) -> None:
        with trio.fail_after(1):
            await self._called.wait()


def frame(value: int = 0) -> AudioFrame:
    return AudioFrame(np.full(160, value, np.int16), 16000)


class CountingVAD(VAD):
    """One INFERENCE_DONE per frame; a frame of value 7 makes the detector fail."""

    def __init__(self) -> None:
        super().__init__(capabilities=VADCapabilities(update_interval=0.01))

    def stream(self) -> VADStream:
        return _CountingStream(self)


class _CountingStream(VADStream):
    async def _run(self) -> None:
        count = 0
        async for f in self._input:
            if int(f.data[0, 0]) == 7:
                raise APIError("detector broke", retryable=False)
            count += 1
            await self._emit(
                VADEvent(
                    type=VADEventType.INFERENCE_DONE,
                    timestamp=trio.current_time(),
                    samples_index=count,
                )
            )


async def test_vad_events_go_to_the_sink_then_the_end() -> None:
    seen: list[int] = []
    ends = Ends()
    stream = CountingVAD().stream()
    stream.deliver_to(lambda e: seen.append(e.samples_index), on_end=ends)
    async with stream:
        for _ in range(3):
            await stream.push_frame(frame())
        stream.end_input()
        await ends.wait()
        assert [e async for e in stream] == []  # nothing is queued for iteration
    assert seen == [1, 2, 3]
    assert ends.errors == [None]


async def test_a_failing_detector_gives_its_error_to_on_end() -> None:
    seen: list[VADEvent] = []
    ends = Ends()
    stream = CountingVAD().stream()
    stream.deliver_to(seen.append, on_end=ends)
    async with stream:
        await stream.push_frame(frame())
        await stream.push_frame(frame(7))
        await ends.wait()
    assert len(seen) == 1
    (error,) = ends.errors
    assert isinstance(error, APIError)
    assert "detector broke" in str(error)


async def test_a_sink_that_raises_ends_the_stream_with_an_error() -> None:
    def sink(_: VADEvent) -> None:
        raise ValueError("bug in the listener")

    ends = Ends()
    stream = CountingVAD().stream()
    stream.deliver_to(sink, on_end=ends)
    async with stream:
        await stream.push_frame(frame())
        await ends.wait()
    (error,) = ends.errors
    assert isinstance(error, APIError)
    assert isinstance(error.__cause__, ValueError)


async def test_cancelling_a_delivering_stream_ends_it_without_error() -> None:
    ends = Ends()
    stream = CountingVAD().stream()
    stream.deliver_to(lambda e: None, on_end=ends)
    async with stream:
        await stream.push_frame(frame())
    assert ends.errors == [None]


async def test_deliver_to_comes_before_opening() -> None:
    stream = CountingVAD().stream()
    async with stream:
        with pytest.raises(RuntimeError, match="before opening"):
            stream.deliver_to(lambda e: None, on_end=lambda e: None)


class EchoSTT(STT):
    def __init__(self) -> None:
        super().__init__(capabilities=STTCapabilities(streaming=True, interim_results=False))

    async def _recognize_impl(self, frame: AudioFrame, **_: object) -> SpeechEvent:
        raise NotImplementedError

    def stream(self, **_: object) -> RecognizeStream:
        return _EchoStream(self)


class _EchoStream(RecognizeStream):
    async def _run(self) -> None:
        async for f in self._input:
            if isinstance(f, AudioFrame):
                text = str(int(f.data[0, 0]))
                await self._emit(
                    SpeechEvent(
                        type=SpeechEventType.FINAL_TRANSCRIPT,
                        alternatives=[SpeechData(text=text)],
                    )
                )


async def test_recognize_stream_delivers_too() -> None:
    seen: list[str] = []
    ends = Ends()
    stream = EchoSTT().stream()
    stream.deliver_to(lambda e: seen.append(e.text), on_end=ends)
    async with stream:
        await stream.push_frame(frame(1))
        await stream.push_frame(frame(2))
        stream.end_input()
        await ends.wait()
    assert seen == ["1", "2"]
    assert ends.errors == [None]


async def test_started_once_lets_go_of_trio_status() -> None:
    async def child(*, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        status = StartedOnce(task_status)
        del task_status
        assert status.pending
        status.started(5)
        assert not status.pending
        with pytest.raises(RuntimeError, match="twice"):
            status.started(6)

    async with trio.open_nursery() as nursery:
        assert await nursery.start(child) == 5
