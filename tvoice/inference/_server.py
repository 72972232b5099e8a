"""`InferenceServer`: tvoice models behind the OpenAI HTTP API, on loopback.

The offline models are loaded once per machine, in the process that runs this server, and every
job process reaches them with the same ``tvoice_plugins.openai`` plugin as the hosted API:

::

    server = InferenceServer(llm=llamacpp.LLM.load(), stt=whisper.STT.load(), tts=piper.TTS.load())
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.run)   # http://127.0.0.1:{port}/v1

Any tvoice LLM, STT and TTS can be served; a model left out answers 404 at its route.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from tvoice._errors import APIError
from tvoice._utils import short_id
from tvoice.audio import AudioFrame, AudioResampler, read_wav, wav_bytes
from tvoice.llm import LLM, ChatContext
from tvoice.stt import STT
from tvoice.tts import TTS

from ._http import HTTPError, Limits, Request, Response, Send, Writer, serve_http
from ._openai import (
    BadRequest,
    ChatRequest,
    SpeechRequest,
    chat_completion,
    chat_events,
    error_body,
    parse_chat_request,
    parse_speech_request,
    parse_transcription_request,
    sse,
)

__all__ = ["SPEECH_SAMPLE_RATE", "InferenceServer"]

logger = logging.getLogger("tvoice.inference")

SPEECH_SAMPLE_RATE = 24_000
"""The rate of ``response_format="pcm"`` speech, as OpenAI sends it: 24 kHz 16-bit mono."""


class InferenceServer:
    """Serves ``llm``, ``stt`` and ``tts`` at ``/v1/chat/completions``,
    ``/v1/audio/transcriptions`` and ``/v1/audio/speech``; ``GET /health`` says it is up and
    ``GET /v1/models`` lists the models by name."""

    def __init__(
        self,
        *,
        llm: LLM | None = None,
        stt: STT | None = None,
        tts: TTS | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.llm = llm
        self.stt = stt
        self.tts = tts
        self.limits = limits if limits is not None else Limits()

    async def warm_up(self) -> None:
        """Run each model once on a tiny input before serving, so that the first call does not
        pay for a first inference (onnxruntime's and CTranslate2's first run, llama.cpp's first
        decode: over a second on a small CPU). A model that fails here is logged and served
        anyway: its own calls will say what is wrong."""
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        if self.stt is not None:
            steps.append(("STT", self._warm_stt))
        if self.tts is not None:
            steps.append(("TTS", self._warm_tts))
        if self.llm is not None:
            steps.append(("LLM", self._warm_llm))
        for kind, step in steps:
            started = trio.current_time()
            try:
                await step()
            except APIError as e:
                logger.warning("warming up the %s failed: %s", kind, e)
            else:
                logger.debug("%s warmed up in %.2f s", kind, trio.current_time() - started)

    async def _warm_stt(self) -> None:
        assert self.stt is not None
        await self.stt.recognize(AudioFrame.silence(0.5, 16000))

    async def _warm_tts(self) -> None:
        assert self.tts is not None
        async with self.tts.synthesize("Hello.") as stream:
            async for _ in stream:
                pass

    async def _warm_llm(self) -> None:
        assert self.llm is not None
        chat = ChatContext()
        chat.add_message(role="user", content="Hello.")
        async with self.llm.chat(chat_ctx=chat) as stream:
            async for _ in stream:
                break  # one token is the warm-up; closing the stream stops the rest

    async def run(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve on ``host:port`` until cancelled; started with the bound port."""
        await serve_http(
            self.handle, host=host, port=port, limits=self.limits, task_status=task_status
        )

    async def handle(self, request: Request) -> Response:
        """Answer one request."""
        route = (request.method, request.path.rstrip("/"))
        try:
            if route == ("GET", "/health"):
                return Response(200, b'{"status":"ok"}')
            if route == ("GET", "/v1/models"):
                return self._models()
            if route == ("POST", "/v1/chat/completions"):
                return await self._chat(request)
            if route == ("POST", "/v1/audio/transcriptions"):
                return await self._transcribe(request)
            if route == ("POST", "/v1/audio/speech"):
                return await self._speak(request)
        except BadRequest as e:
            return Response(400, error_body(e.message, param=e.param))
        except APIError as e:
            # The model failed: a 5xx the client may retry, with the model's own message.
            status = 503 if e.retryable else 500
            logger.warning("inference server: %s failed: %s", request.path, e.message)
            return Response(status, error_body(e.message, kind="server_error"))
        known = {"/health", "/v1/models", "/v1/chat/completions", "/v1/audio/transcriptions"}
        if route[1] in known | {"/v1/audio/speech"}:
            return Response(405, error_body(f"{request.method} is not allowed here"))
        return Response(404, error_body(f"no route {request.path}"))

    def _models(self) -> Response:
        names = [self.llm.model] if self.llm is not None else []
        names += [m.label for m in (self.stt, self.tts) if m is not None]
        data = [{"id": name, "object": "model", "owned_by": "tvoice"} for name in names]
        return Response(200, json.dumps({"object": "list", "data": data}).encode())

    def _need(self, model: Any, kind: str) -> Any:
        if model is None:
            raise HTTPError(404, error_body(f"this server has no {kind} model"))
        return model

    async def _chat(self, request: Request) -> Response:
        llm: LLM = self._need(self.llm, "chat")
        chat = parse_chat_request(request.body)
        extra = _sampling(chat)
        request_id = short_id("chatcmpl")
        if not chat.stream:
            async with llm.chat(
                chat_ctx=chat.chat_ctx, tools=chat.tools, tool_choice=chat.tool_choice, extra=extra
            ) as stream:
                chunks = await stream.collect()
                return Response(200, json.dumps(chat_completion(chat, chunks, request_id)).encode())
        return Response(
            200, self._chat_stream(llm, chat, extra, request_id), content_type="text/event-stream"
        )

    def _chat_stream(
        self, llm: LLM, chat: ChatRequest, extra: dict[str, Any], request_id: str
    ) -> Writer:
        async def write(send: Send) -> None:
            try:
                async with llm.chat(
                    chat_ctx=chat.chat_ctx,
                    tools=chat.tools,
                    tool_choice=chat.tool_choice,
                    extra=extra,
                ) as stream:
                    await chat_events(chat, stream, request_id, send)
            except APIError as e:
                # The status is sent already: the failure goes out as an error event.
                logger.warning("inference server: a streamed reply failed: %s", e.message)
                await send(sse({"error": {"message": e.message, "type": "server_error"}}))

        return write

    async def _transcribe(self, request: Request) -> Response:
        stt: STT = self._need(self.stt, "transcription")
        form = parse_transcription_request(request.header("content-type"), request.body)
        try:
            frame = read_wav(form.audio)
        except ValueError as e:
            raise BadRequest(f"the audio file: {e}", "file") from None
        event = await stt.recognize(frame, language=form.language)
        text = event.alternatives[0].text if event.alternatives else ""
        if form.stream:

            async def events(send: Send) -> None:
                if text:
                    await send(sse({"type": "transcript.text.delta", "delta": text}))
                await send(sse({"type": "transcript.text.done", "text": text}))

            return Response(200, events, content_type="text/event-stream")
        if form.response_format == "text":
            return Response(200, text.encode(), content_type="text/plain; charset=utf-8")
        return Response(200, json.dumps({"text": text}).encode())

    async def _speak(self, request: Request) -> Response:
        tts: TTS = self._need(self.tts, "speech")
        speech = parse_speech_request(request.body)
        if speech.speed != 1.0:
            raise BadRequest("this server's voice speaks at speed 1.0 only", "speed")
        if speech.response_format == "wav":
            frames: list[AudioFrame] = []

            async def keep(frame: AudioFrame) -> None:
                frames.append(frame)

            await _speech_frames(tts, speech, keep)
            return Response(200, wav_bytes(frames) if frames else b"", content_type="audio/wav")

        async def pcm(send: Send) -> None:
            await _speech_frames(tts, speech, lambda frame: send(frame.data.tobytes()))

        return Response(200, pcm, content_type="audio/pcm")


def _sampling(chat: ChatRequest) -> dict[str, Any]:
    """The request's sampling options, for the LLM's ``extra``."""
    options = {
        "max_tokens": chat.max_tokens,
        "temperature": chat.temperature,
        "top_p": chat.top_p,
        "seed": chat.seed,
    }
    return {key: value for key, value in options.items() if value is not None}


async def _speech_frames(
    tts: TTS, speech: SpeechRequest, deliver: Callable[[AudioFrame], Awaitable[None]]
) -> None:
    """Deliver the speech at 24 kHz mono, as the voice makes it."""
    resampler: AudioResampler | None = None
    async with tts.synthesize(speech.input) as stream:
        async for audio in stream:
            frame = audio.frame
            if frame.samples_per_channel == 0:
                continue  # the end of the segment
            if frame.num_channels != 1:
                frame = AudioFrame(
                    frame.data.mean(axis=1, keepdims=True).astype("int16"), frame.sample_rate, 1
                )
            if frame.sample_rate == SPEECH_SAMPLE_RATE:
                await deliver(frame)
                continue
            if resampler is None:
                resampler = AudioResampler(frame.sample_rate, SPEECH_SAMPLE_RATE)
            for out in resampler.push(frame):
                await deliver(out)
    if resampler is not None:
        for out in resampler.flush():
            await deliver(out)
