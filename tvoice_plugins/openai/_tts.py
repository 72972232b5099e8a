"""``openai.TTS``: ``/audio/speech`` as raw 24 kHz PCM, played as it arrives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from tvoice import APIConnectOptions
from tvoice import tts as tts_
from tvoice.audio import AudioFrame
from tvoice.tokenize import SentenceTokenizer

from ._client import DEFAULT_TIMEOUT, OwnsClient, client_for
from ._presets import OPENAI, Preset, preset_named
from ._wire import PCM_SAMPLE_RATE, PcmDecoder, speech_request

__all__ = ["TTS", "ChunkedStream"]

_DEFAULT_OPTIONS = APIConnectOptions()
# Audio is handed on in frames of at most this much, however the network cuts it.
_MAX_FRAME = 0.1


class TTS(OwnsClient, tts_.TTS):
    """Text-to-speech behind the OpenAI ``/audio/speech`` API: 24 kHz, 16-bit mono.

    ``model``, ``voice``; ``instructions`` (how to speak; ``gpt-4o-mini-tts`` and later) and
    ``speed`` (0.25 to 4.0) are sent when set. ``api_key``, ``base_url``, ``timeout``,
    ``headers``, ``http_client``: as for :class:`openai.LLM`.

    The audio is requested as ``response_format="pcm"`` and emitted while it downloads, so the
    first words play before the sentence is synthesized. ``stream()`` speaks each sentence as
    soon as it is complete (a :class:`tvoice.tts.StreamAdapter` over this TTS, with
    ``sentence_tokenizer``).
    """

    _kind = "TTS"

    def __init__(
        self,
        *,
        model: str = "gpt-4o-mini-tts",
        voice: str = "alloy",
        instructions: str | None = None,
        speed: float | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        sentence_tokenizer: SentenceTokenizer | None = None,
        _preset: Preset = OPENAI,
    ) -> None:
        if not voice:
            raise ValueError("voice must not be empty")
        if speed is not None and not 0.25 <= speed <= 4.0:
            raise ValueError(f"speed must be in [0.25, 4.0], got {speed}")
        super().__init__(
            sample_rate=PCM_SAMPLE_RATE,
            num_channels=1,
            capabilities=tts_.TTSCapabilities(streaming=True),
        )
        self._model = model
        self._voice = voice
        self._instructions = instructions
        self._speed = speed
        self._client = client_for(
            _preset,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            headers=headers,
            http_client=http_client,
        )
        self._adapter = tts_.StreamAdapter(tts=self, sentence_tokenizer=sentence_tokenizer)

    @classmethod
    def with_preset(cls, name: str, *, model: str, voice: str, **options: Any) -> TTS:
        """A TTS on the provider ``name`` of ``PRESETS`` that serves ``/audio/speech``."""
        return cls(model=model, voice=voice, _preset=preset_named(name), **options)

    def __repr__(self) -> str:
        return (
            f"openai.TTS(model={self._model!r}, voice={self._voice!r}, "
            f"base_url={self._client.base_url!r})"
        )

    @property
    def voice(self) -> str:
        """The voice spoken in."""
        return self._voice

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = _DEFAULT_OPTIONS
    ) -> ChunkedStream:
        body = speech_request(
            model=self._model,
            text=text,
            voice=self._voice,
            instructions=self._instructions,
            speed=self._speed,
        )
        return ChunkedStream(self, text, body, conn_options=conn_options)

    def stream(
        self, *, conn_options: APIConnectOptions = _DEFAULT_OPTIONS
    ) -> tts_.SynthesizeStream:
        return self._adapter.stream(conn_options=conn_options)


class ChunkedStream(tts_.ChunkedStream):
    """The audio of one ``synthesize`` call, emitted as it downloads; leaving the stream
    closes the HTTP response at once."""

    def __init__(
        self, tts: TTS, text: str, body: dict[str, Any], *, conn_options: APIConnectOptions
    ) -> None:
        super().__init__(tts, text, conn_options=conn_options)
        self._client = tts.client
        self._body = body

    @property
    def request_body(self) -> dict[str, Any]:
        """The JSON sent to ``/audio/speech``."""
        return self._body

    async def _run(self) -> None:
        if not self.input_text.strip():
            return  # nothing to say: spare the request
        options = self.conn_options
        max_samples = round(_MAX_FRAME * PCM_SAMPLE_RATE)
        async with self._client.post(
            "/audio/speech",
            json=self._body,
            max_wait=min(options.max_retry_interval, options.timeout / 2),
        ) as response:
            decoder = PcmDecoder()
            async for data in response.aiter_bytes():
                frame = decoder.push(data)
                if frame is None:
                    continue
                for start in range(0, frame.samples_per_channel, max_samples):
                    await self._emit_frame(
                        AudioFrame(frame.data[start : start + max_samples], frame.sample_rate)
                    )
