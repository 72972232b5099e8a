"""Voice activity detection: the ABC, its stream and events."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from typing import Literal

import attrs

from .._utils import EventEmitter, InputStream
from ..audio import AudioFrame

__all__ = ["VAD", "VADCapabilities", "VADDetector", "VADEvent", "VADEventType", "VADStream"]


class VADEventType(enum.Enum):
    """What a VAD stream reports."""

    START_OF_SPEECH = "start_of_speech"
    INFERENCE_DONE = "inference_done"
    END_OF_SPEECH = "end_of_speech"


@attrs.frozen(kw_only=True)
class VADEvent:
    """One VAD event.

    ``timestamp`` is trio's clock when the event was produced. ``speech_duration`` and
    ``silence_duration`` are the lengths of the current speech and of the silence after it.
    END_OF_SPEECH carries the speech audio in ``frames`` (prefix padding included), which
    batch speech-to-text transcribes.
    """

    type: VADEventType
    timestamp: float
    samples_index: int = 0
    speech_duration: float = 0.0
    silence_duration: float = 0.0
    probability: float = 0.0
    inference_duration: float = 0.0
    speaking: bool = False
    frames: tuple[AudioFrame, ...] = ()


@attrs.frozen(kw_only=True)
class VADCapabilities:
    """``update_interval``: seconds of audio between two INFERENCE_DONE events."""

    update_interval: float


class VAD(ABC, EventEmitter[Literal["metrics_collected"]]):
    """A voice activity detector. ``stream()`` gives one independent stream per audio source."""

    def __init__(self, *, capabilities: VADCapabilities) -> None:
        super().__init__()
        self._capabilities = capabilities

    @property
    def capabilities(self) -> VADCapabilities:
        """What this VAD can do."""
        return self._capabilities

    @property
    def label(self) -> str:
        """Name used in metrics and logs."""
        return f"{type(self).__module__}.{type(self).__name__}"

    @abstractmethod
    def stream(self) -> VADStream:
        """A new stream: ``async with vad.stream() as s``, push frames, iterate events."""

    async def detector(self) -> VADDetector | None:
        """A new detector that runs in the task pushing the audio, or None (the default).

        A VAD whose work per frame is a little CPU (Silero scores a 32 ms window in about
        0.1 ms) offers one: a listener that has its own task reading the audio anyway runs it
        there, and the detection needs no task or channel of its own. Its events are those
        :meth:`stream` would give for the same frames. Raises what opening the VAD raises (a
        model that cannot be loaded, say).
        """
        return None


class VADDetector(ABC):
    """One audio source's detection, run by the caller: frames in, the events they complete
    out (see :meth:`VAD.detector`). Not for use from two tasks at once."""

    __slots__ = ()

    @abstractmethod
    def push_frame(self, frame: AudioFrame) -> list[VADEvent]:
        """Detect on one more frame; the events it completes, in order. Raises ``TypeError``
        for what is not an :class:`~tvoice.audio.AudioFrame`, ``ValueError`` for a frame
        this detector cannot take, ``APIError`` when the detection fails."""

    @abstractmethod
    def flush(self) -> list[VADEvent]:
        """The audio ended: the events still due (an ongoing speech ends)."""


class VADStream(InputStream[AudioFrame, VADEvent]):
    """Audio in, :class:`VADEvent` out. Push frames with :meth:`push_frame`, iterate the events."""

    _output_capacity = 64
    # As deep as a recognition stream's: the session pushes its frames straight in.
    _input_capacity = 256

    def __init__(self, vad: VAD) -> None:
        super().__init__()
        self._vad = vad

    async def push_frame(self, frame: AudioFrame) -> None:
        """Feed one frame of audio (waits if the detector is behind)."""
        if not isinstance(frame, AudioFrame):
            raise TypeError(f"push_frame expects an AudioFrame, got {type(frame).__name__}")
        await self._push(frame)
