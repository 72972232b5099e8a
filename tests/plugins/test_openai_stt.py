"""openai.STT against a loopback server that speaks the documented ``/audio/transcriptions``
format: a multipart upload, answered with JSON or with ``transcript.text.*`` events."""

import io
import json
import wave

import pytest
import trio

from tests.plugins.test_openai_wire import (
    API_KEY,
    CUT,
    HANG,
    Reply,
    WireServer,
    error_reply,
    sse,
    sse_reply,
)
from tvoice import APIConnectionError, APIConnectOptions, APIStatusError, APITimeoutError
from tvoice.audio import AudioFrame
from tvoice.stt import SpeechEventType, StreamAdapter
from tvoice.testing import check_stt
from tvoice_plugins import openai

LIMIT = 30.0
TRANSCRIPT = "What is the weather in Paris?"


def wav_duration(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getsampwidth(), w.getnchannels()) == (2, 1)
        return w.getnframes() / w.getframerate()


async def transcribing(request):
    """Checks the upload as the API does, then says what the question audio says."""
    assert request.path == "/v1/audio/transcriptions"
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    form = request.form()
    data = form["file"][2]
    if wav_duration(data) < 0.1:
        return error_reply(400, "Audio file is too short.")
    if form.get("stream") == "true":
        words = TRANSCRIPT.split(" ")
        deltas = [{"type": "transcript.text.delta", "delta": " " + w} for w in words]
        done = {"type": "transcript.text.done", "text": TRANSCRIPT, "usage": {"type": "tokens"}}
        return sse_reply(sse(*deltas, done, done=False))
    body = json.dumps({"text": TRANSCRIPT}).encode()
    return Reply(200, [("content-type", "application/json")], [body])


@pytest.fixture
async def server(nursery) -> WireServer:
    server = await nursery.start(WireServer().run)
    server.handler = transcribing
    return server


def make_stt(server, **options) -> openai.STT:
    options.setdefault("api_key", API_KEY)
    options.setdefault("model", "gpt-4o-mini-transcribe")
    return openai.STT(base_url=server.url, **options)


async def recognize(stt, audio, **options):
    options.setdefault("conn_options", APIConnectOptions(max_retry=0, timeout=5.0))
    with trio.fail_after(LIMIT):
        return await stt.recognize(audio, **options)


@pytest.mark.parametrize("model", ["gpt-4o-mini-transcribe", "whisper-1"])
async def test_conformance_batch_and_through_the_vad_adapter(server, question_audio, model):
    # Imported here so that a broken VAD plugin fails this test only.
    from tvoice_plugins import silero

    stt = make_stt(server, model=model)
    broken = make_stt(server, api_key="sk-wrong")
    await check_stt(
        stt, question_audio, expected_words=["weather", "Paris"], broken=broken, time_limit=LIMIT
    )
    adapter = StreamAdapter(stt=stt, vad=silero.VAD())
    await check_stt(adapter, question_audio, expected_words=["weather", "Paris"])
    await stt.aclose()
    await broken.aclose()


async def test_the_upload_follows_the_api(server, question_audio):
    stt = make_stt(server, model="whisper-1", language="fr", prompt="Météo, Paris")
    event = await recognize(stt, question_audio)
    await stt.aclose()
    assert event.type == SpeechEventType.FINAL_TRANSCRIPT
    assert (event.text, event.alternatives[0].language) == (TRANSCRIPT, "fr")
    (request,) = server.requests
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    form = request.form()
    filename, content_type, data = form.pop("file")
    assert (filename, content_type) == ("audio.wav", "audio/wav")
    assert wav_duration(data) == pytest.approx(question_audio.duration, abs=1e-3)
    assert form == {
        "model": "whisper-1",
        "response_format": "json",
        "language": "fr",
        "prompt": "Météo, Paris",
    }


async def test_streamed_transcripts_are_read_to_the_done_event(server, question_audio):
    stt = make_stt(server)
    event = await recognize(stt, question_audio, language="en")
    await stt.aclose()
    assert event.text == TRANSCRIPT
    form = server.requests[0].form()
    assert (form["stream"], form["language"]) == ("true", "en")


async def test_silence_sends_nothing(server):
    stt = make_stt(server)
    event = await recognize(stt, AudioFrame.silence(0.0, 16000))
    await stt.aclose()
    assert event.text == ""
    assert not server.requests


@pytest.mark.parametrize(
    "reply",
    [
        # The event stream stops before transcript.text.done.
        sse_reply(sse({"type": "transcript.text.delta", "delta": "What"}, done=False)),
        sse_reply([*sse({"type": "transcript.text.delta", "delta": "W"}, done=False), CUT]),
        sse_reply(sse("{oops", done=False)),
        Reply(200, [("content-type", "application/json")], [b'{"txt": 1}']),
    ],
    ids=["no-done", "cut", "not-json", "no-text"],
)
async def test_a_broken_answer_is_a_connection_error(server, question_audio, reply):
    async def broken(request):
        return reply

    server.handler = broken
    stt = make_stt(server)
    with pytest.raises(APIConnectionError):
        await recognize(stt, question_audio)
    await stt.aclose()


async def test_errors_map_and_server_errors_are_retried(server, question_audio):
    async def flaky(request):
        if len(server.requests) == 1:
            return error_reply(503, "The engine is currently overloaded", type_="server_error")
        return await transcribing(request)

    server.handler = flaky
    stt = make_stt(server)
    options = APIConnectOptions(max_retry=1, retry_interval=0)
    assert (await recognize(stt, question_audio, conn_options=options)).text == TRANSCRIPT

    short = AudioFrame.silence(0.05, 16000)
    with pytest.raises(APIStatusError) as caught:
        await recognize(stt, short, conn_options=options)
    await stt.aclose()
    assert (caught.value.status_code, caught.value.retryable) == (400, False)
    assert "too short" in caught.value.message
    assert len(server.requests) == 3


def test_groq_preset(monkeypatch):
    monkeypatch.setenv("GROQ_API_KEY", "gsk-secret")
    stt = openai.STT.with_groq()
    assert (stt.client.base_url, stt.model) == (
        "https://api.groq.com/openai/v1",
        "whisper-large-v3-turbo",
    )
    assert "gsk-secret" not in repr(stt)


async def test_the_timeout_option_bounds_a_silent_server(server, question_audio):
    async def silent(request):
        return Reply(200, [("content-type", "application/json")], [b'{"te', HANG])

    server.handler = silent
    stt = make_stt(server, timeout=0.3)
    start = trio.current_time()
    with pytest.raises(APITimeoutError):
        await recognize(stt, question_audio)
    await stt.aclose()
    assert trio.current_time() - start < 2.0
