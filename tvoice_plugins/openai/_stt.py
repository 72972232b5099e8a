"""``openai.STT``: ``/audio/transcriptions``, one utterance per request."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import httpx

from tvoice import APIConnectOptions
from tvoice import stt as stt_
from tvoice.audio import AudioFrame, wav_bytes

from .._http import SseDecoder, bad_event, cut_stream
from ._client import DEFAULT_TIMEOUT, OwnsClient, client_for
from ._presets import OPENAI, Preset, preset_named
from ._wire import parse_transcription, parse_transcription_event, transcription_form

__all__ = ["STT"]


class STT(OwnsClient, stt_.STT):
    """Speech-to-text behind the OpenAI ``/audio/transcriptions`` API: a batch STT, streamed
    with ``stt.StreamAdapter(stt=..., vad=...)`` (each utterance the VAD finds is one request).

    ``model``; ``language`` (ISO-639-1, e.g. "en"; None lets the model detect it) and
    ``prompt`` (words to expect, the style to follow) are sent when set. ``stream``: ask for
    the transcript as server-sent events (``transcript.text.delta`` then
    ``transcript.text.done``), which the ``gpt-4o-*-transcribe`` models offer and
    ``whisper-1`` does not; by default on for models whose name starts with ``gpt-``. A server
    that answers plain JSON anyway is read as such. ``api_key``, ``base_url``, ``timeout``,
    ``headers``, ``http_client``: as for :class:`openai.LLM`.

    The audio is sent as a 16-bit WAV file in the multipart field ``file``.
    """

    _kind = "STT"

    def __init__(
        self,
        *,
        model: str = "gpt-4o-mini-transcribe",
        language: str | None = "en",
        prompt: str | None = None,
        stream: bool | None = None,
        temperature: float | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        _preset: Preset = OPENAI,
    ) -> None:
        super().__init__(capabilities=stt_.STTCapabilities(streaming=False))
        self._model = model
        self._language = language
        self._prompt = prompt
        self._stream = model.startswith("gpt-") if stream is None else stream
        self._options: dict[str, Any] = {"temperature": temperature}
        self._client = client_for(
            _preset,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            headers=headers,
            http_client=http_client,
        )

    @classmethod
    def with_preset(cls, name: str, *, model: str, **options: Any) -> STT:
        """An STT on the provider ``name`` of ``PRESETS`` that serves transcriptions."""
        return cls(model=model, _preset=preset_named(name), **options)

    @classmethod
    def with_groq(cls, *, model: str = "whisper-large-v3-turbo", **options: Any) -> STT:
        """Groq's Whisper (``GROQ_API_KEY``)."""
        return cls.with_preset("groq", model=model, **options)

    async def _recognize_impl(
        self, frame: AudioFrame, *, language: str | None, conn_options: APIConnectOptions
    ) -> stt_.SpeechEvent:
        # STT.recognize bounds each attempt by conn_options.timeout and makes the retries.
        request_id = f"openai_{secrets.token_hex(6)}"
        language = language if language is not None else self._language
        if frame.samples_per_channel == 0:
            return _final(request_id, "", language)
        form = transcription_form(
            model=self._model,
            language=language,
            prompt=self._prompt,
            stream=self._stream,
            options=self._options,
        )
        files = {"file": ("audio.wav", wav_bytes(frame), "audio/wav")}
        async with self._client.post(
            "/audio/transcriptions",
            data=form,
            files=files,
            max_wait=min(conn_options.max_retry_interval, conn_options.timeout / 2),
        ) as response:
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                text = await self._read_events(response)
            else:
                body = await response.aread()
                try:
                    text = parse_transcription(body)
                except ValueError as e:
                    raise bad_event(self._client.provider, str(e)) from None
        return _final(request_id, text.strip(), language)

    async def _read_events(self, response: httpx.Response) -> str:
        """The text of a streamed transcription: the ``done`` event's, which must come (the
        ``delta`` events before it say the same text in pieces)."""
        provider = self._client.provider
        sse = SseDecoder()
        async for line in response.aiter_lines():
            event = sse.push(line)
            if event is None or event.data == "[DONE]":
                continue
            try:
                kind, text = parse_transcription_event(event.data)
            except ValueError as e:
                raise bad_event(provider, str(e)) from None
            if kind == "error":
                raise self._client.stream_error({"message": text})
            if kind == "done":
                return text
        raise cut_stream(provider)


def _final(request_id: str, text: str, language: str | None) -> stt_.SpeechEvent:
    return stt_.SpeechEvent(
        type=stt_.SpeechEventType.FINAL_TRANSCRIPT,
        alternatives=[stt_.SpeechData(text=text, language=language or "")],
        request_id=request_id,
    )
