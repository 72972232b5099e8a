"""openai.TTS against a loopback server that speaks the documented ``/audio/speech`` format:
raw 24 kHz 16-bit little-endian mono PCM, streamed."""

import numpy as np
import pytest
import trio

from tests.plugins.test_openai_wire import (
    API_KEY,
    CUT,
    Reply,
    WireServer,
    error_reply,
)
from tvoice import APIConnectionError, APIConnectOptions, APIStatusError
from tvoice.testing import check_tts
from tvoice_plugins import openai

LIMIT = 10.0
RATE = 24000
SECONDS_PER_CHAR = 0.02


def speech_pcm(text: str) -> bytes:
    """A 220 Hz tone lasting as long as the text would take to say."""
    n = round(len(text) * SECONDS_PER_CHAR * RATE)
    tone = (8000 * np.sin(2 * np.pi * 220 * np.arange(n) / RATE)).astype("<i2")
    return tone.tobytes()


def odd_pieces(data: bytes, size: int = 4801, pause: float = 0.0) -> list:
    """``data`` in pieces of an odd size, so samples are split between pieces."""
    parts: list = []
    for start in range(0, len(data), size):
        parts.append(data[start : start + size])
        if pause:
            parts.append(pause)
    return parts


async def speaking(request):
    body = request.json()
    assert request.path == "/v1/audio/speech"
    assert body["response_format"] == "pcm"
    return Reply(200, [("content-type", "audio/pcm")], odd_pieces(speech_pcm(body["input"])))


@pytest.fixture
async def server(nursery) -> WireServer:
    server = await nursery.start(WireServer().run)
    server.handler = speaking
    return server


def make_tts(server, **options) -> openai.TTS:
    options.setdefault("api_key", API_KEY)
    return openai.TTS(model="gpt-4o-mini-tts", base_url=server.url, **options)


async def synthesize(tts, text, **options):
    options.setdefault("conn_options", APIConnectOptions(max_retry=0, timeout=5.0))
    with trio.fail_after(LIMIT):
        async with tts.synthesize(text, **options) as stream:
            return await stream.collect()


def audio(items) -> np.ndarray:
    return np.concatenate([i.frame.data[:, 0] for i in items if not i.is_final])


async def test_conformance(server):
    tts = make_tts(server)
    broken = make_tts(server, api_key="sk-wrong")
    await check_tts(tts, broken=broken, time_limit=LIMIT)
    await tts.aclose()
    await broken.aclose()


async def test_the_request_follows_the_api(server):
    tts = make_tts(server, voice="coral", instructions="Speak warmly.", speed=1.25)
    await synthesize(tts, "Hello there.")
    await tts.aclose()
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/audio/speech")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.json() == {
        "model": "gpt-4o-mini-tts",
        "input": "Hello there.",
        "voice": "coral",
        "response_format": "pcm",
        "instructions": "Speak warmly.",
        "speed": 1.25,
    }


async def test_the_audio_is_the_pcm_sent_split_samples_included(server):
    tts = make_tts(server)
    assert (tts.sample_rate, tts.num_channels) == (24000, 1)
    text = "A sentence of some length."
    items = await synthesize(tts, text)
    await tts.aclose()
    sent = np.frombuffer(speech_pcm(text), "<i2")
    assert np.array_equal(audio(items), sent)
    frames = [i.frame for i in items if not i.is_final]
    assert all(f.duration <= 0.1 + 1e-9 for f in frames)
    assert items[-1].is_final


async def test_audio_is_emitted_as_it_arrives(server):
    async def slow(request):
        pcm = speech_pcm(request.json()["input"])
        return Reply(200, [], odd_pieces(pcm, size=9600, pause=0.2))

    server.handler = slow
    tts = make_tts(server)
    with trio.fail_after(LIMIT):
        async with tts.synthesize("A sentence of some length, said slowly.") as stream:
            start = trio.current_time()
            first = await stream.__anext__()
            first_at = trio.current_time() - start
            await stream.collect()
            end_at = trio.current_time() - start
    await tts.aclose()
    assert not first.is_final
    assert first_at < end_at - 0.5


async def test_stream_speaks_sentence_by_sentence(server):
    tts = make_tts(server)
    with trio.fail_after(LIMIT):
        async with tts.stream() as stream:
            await stream.push_text("First sentence here. Second ")
            await stream.push_text("one follows.")
            stream.end_input()
            items = await stream.collect()
    await tts.aclose()
    assert [r.json()["input"] for r in server.requests] == [
        "First sentence here.",
        "Second one follows.",
    ]
    expected = speech_pcm("First sentence here.") + speech_pcm("Second one follows.")
    assert np.array_equal(audio(items), np.frombuffer(expected, "<i2"))
    assert [i.is_final for i in items].count(True) == 1


async def test_empty_text_sends_nothing(server):
    tts = make_tts(server)
    items = await synthesize(tts, "  ")
    await tts.aclose()
    assert [i.is_final for i in items] == [True]
    assert not server.requests


async def test_a_cut_download_is_a_connection_error(server):
    async def cut(request):
        return Reply(200, [], [speech_pcm("Half of it.")[:4000], CUT])

    server.handler = cut
    tts = make_tts(server)
    with pytest.raises(APIConnectionError):
        await synthesize(tts, "Half of it.")
    await tts.aclose()


async def test_errors_map_and_retry_after_is_honoured(server):
    times = []

    async def limited(request):
        times.append(trio.current_time())
        if len(times) == 1:
            return error_reply(429, "Rate limit reached", **{"retry-after": "0.5"})
        return await speaking(request)

    server.handler = limited
    tts = make_tts(server)
    items = await synthesize(tts, "Hi.", conn_options=APIConnectOptions(retry_interval=0))
    assert len(audio(items)) > 0
    assert times[1] - times[0] >= 0.5

    async def refused(request):
        return error_reply(403, "Project does not have access to model")

    server.handler = refused
    with pytest.raises(APIStatusError) as caught:
        await synthesize(tts, "Hi.", conn_options=APIConnectOptions(retry_interval=0))
    await tts.aclose()
    assert (caught.value.status_code, caught.value.retryable) == (403, False)
    assert "Project does not have access" in caught.value.message
    assert len(server.requests) == 3


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="speed"):
        openai.TTS(api_key="k", speed=5.0)
    with pytest.raises(ValueError, match="voice"):
        openai.TTS(api_key="k", voice="")
    assert "sk-XYZSECRET" not in repr(openai.TTS(api_key="sk-XYZSECRET"))
