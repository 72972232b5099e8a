"""elevenlabs.TTS against a loopback server that speaks ElevenLabs' multi-context WebSocket.

The server follows elevenlabs.io/docs (the ``multi-stream-input`` reference and its AsyncAPI
specification, the multi-context WebSocket guide): the key in ``xi-api-key``, ``model_id``,
``output_format=pcm_<rate>`` and ``sync_alignment`` in the query; contexts opened with
``{"text": " ", "context_id"}``, text buffered until ``flush``, ``close_context``; audio as
``{"audio", "alignment": {"chars", "charStartTimesMs", "charDurationsMs"}, "contextId"}`` and
a context's end as ``{"isFinal": true, "contextId"}``. How a bad key is refused is not in the
reference: a 1008 close is assumed. ``wire/elevenlabs.jsonl`` is one reply as this server saw
it.
"""

import base64
import contextlib
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import trio
import trio_websocket

from tvoice import (
    APIConnectionError,
    APIConnectOptions,
    APIError,
    APIStatusError,
    APITimeoutError,
)
from tvoice.audio import TimedText
from tvoice.testing import check_tts
from tvoice_plugins import elevenlabs
from tvoice_plugins.elevenlabs._wire import alignment_words

API_KEY = "xi-test-key-0123456789"
RATE = 24000
WORD_SECONDS = 0.2
LIMIT = 20.0
ONCE = APIConnectOptions(max_retry=0, timeout=5.0)
WIRE = Path(__file__).parent / "wire" / "elevenlabs.jsonl"
VOICE = "voice-xyz"


class FakeElevenLabs:
    """The multi-context API, simplified: a context's text is buffered until ``flush`` (or
    until 50 characters wait); each word is then 0.2 s of a tone whose level tells the context
    (the n-th context of the server speaks at 1000 * n), ``pace`` seconds apart, with its
    characters' alignment. ``close_context`` drops what was not flushed and, once the flushed
    audio is out, sends ``isFinal``. ``log`` records the frames."""

    def __init__(self) -> None:
        self.port = 0
        self.handshakes: list[dict] = []
        self.log: list[dict] = []
        self.pace = 0.0
        self.mode = "normal"  # or "drop", "malformed", "hang", "reject", "error"
        self.contexts: list[str] = []
        self.t0 = 0.0
        self.closed = trio.Event()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                trio_websocket.serve_websocket, self.handle, "127.0.0.1", 0, None
            )
            self.port = server.port
            task_status.started(self)

    def note(self, direction: str, frame: dict) -> None:
        self.log.append({"at": round(trio.current_time() - self.t0, 3), direction: frame})

    async def handle(self, request: trio_websocket.WebSocketRequest) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        parts = urlsplit(request.path)
        self.handshakes.append({"path": parts.path, "query": parse_qs(parts.query), **headers})
        if self.mode == "reject":
            body = {"detail": {"status": "quota_exceeded", "message": "Quota exceeded."}}
            await request.reject(
                403,
                extra_headers=[(b"content-type", b"application/json")],
                body=json.dumps(body).encode(),
            )
            return
        ws = await request.accept()
        self.t0 = trio.current_time()
        self.note("client", {"connect": request.path})
        if headers.get("xi-api-key") != API_KEY:
            await ws.aclose(1008, "Invalid API key")
            return
        work_send, work_recv = trio.open_memory_channel(100)
        buffers: dict[str, str] = {}
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.speak, ws, work_recv)
            while True:
                try:
                    message = json.loads(await ws.get_message())
                except trio_websocket.ConnectionClosed as e:
                    self.note("client", {"close": e.reason.code})
                    self.closed.set()
                    break
                self.note("client", message)
                if self.mode == "hang":
                    continue
                context = message.get("context_id", "")
                if context and context not in self.contexts:
                    self.contexts.append(context)
                if message.get("close_context"):
                    buffers.pop(context, None)
                    await work_send.send((context, None))
                    continue
                if ("text" in message and context in buffers) or message.get("text") == " ":
                    buffers[context] = buffers.get(context, "") + message["text"].lstrip(" ")
                if message.get("flush") or len(buffers.get(context, "")) >= 50:
                    text, buffers[context] = buffers.get(context, ""), ""
                    if text.split():
                        await work_send.send((context, text.split()))
            nursery.cancel_scope.cancel()

    async def send(self, ws, message: dict, shown: dict) -> None:
        self.note("server", shown)
        await ws.send_message(json.dumps(message))

    async def speak(self, ws, *args) -> None:
        # The client may leave mid-reply (an error it found, or its close).
        with contextlib.suppress(trio_websocket.ConnectionClosed):
            await self.generate(ws, *args)

    async def generate(self, ws, work) -> None:
        sent = 0
        async for context, words in work:
            level = 1000 * (self.contexts.index(context) + 1)
            if words is None:
                await self.send(
                    ws,
                    {"isFinal": True, "contextId": context},
                    {"isFinal": True, "contextId": context[:8]},
                )
                continue
            for word in words:
                if self.pace:
                    await trio.sleep(self.pace)
                if self.mode == "drop" and sent == 2:
                    await ws._stream.aclose()  # trio-websocket has no public abort
                    return
                if self.mode == "malformed" and sent == 1:
                    await ws.send_message('{"audio": "not base64!"}')
                if self.mode == "error":
                    await self.send(
                        ws,
                        {"message": "Internal error.", "error": "internal", "code": 1011},
                        {"error": "internal"},
                    )
                    return
                pcm = np.full(round(WORD_SECONDS * RATE), level, "<i2").tobytes()
                chars = list(word + " ")
                step = round(WORD_SECONDS * 1000 / len(chars))
                alignment = {
                    "chars": chars,
                    "charStartTimesMs": [i * step for i in range(len(chars))],
                    "charDurationsMs": [step] * len(chars),
                }
                await self.send(
                    ws,
                    {
                        "audio": base64.b64encode(pcm).decode(),
                        "alignment": alignment,
                        "normalizedAlignment": alignment,
                        "contextId": context,
                    },
                    {
                        "audio_bytes": len(pcm),
                        "level": level,
                        "chars": word + " ",
                        "contextId": context[:8],
                    },
                )
                sent += 1


@pytest.fixture
async def server(nursery) -> FakeElevenLabs:
    return await nursery.start(FakeElevenLabs().run)


def make_tts(server, **options) -> elevenlabs.TTS:
    options.setdefault("api_key", API_KEY)
    return elevenlabs.TTS(base_url=server.url, voice=VOICE, sample_rate=RATE, **options)


async def synthesize(tts, text, *, conn_options=ONCE):
    with trio.fail_after(LIMIT):
        async with tts.synthesize(text, conn_options=conn_options) as stream:
            return await stream.collect()


def sent(server, key):
    return [e["client"] for e in server.log if key in e.get("client", {})]


async def test_conformance(server):
    tts = make_tts(server)
    broken = make_tts(server, api_key="xi-wrong")
    await check_tts(tts, broken=broken, time_limit=LIMIT)
    await tts.aclose()
    await broken.aclose()


async def test_the_connection_and_messages_follow_the_api(server):
    tts = make_tts(
        server,
        model="eleven_turbo_v2_5",
        language="de",
        voice_settings={"stability": 0.4, "similarity_boost": 0.8},
    )
    items = await synthesize(tts, "Guten Tag.")
    handshake = server.handshakes[0]
    assert handshake["path"] == f"/v1/text-to-speech/{VOICE}/multi-stream-input"
    assert handshake["query"] == {
        "model_id": ["eleven_turbo_v2_5"],
        "output_format": ["pcm_24000"],
        "language_code": ["de"],
        "sync_alignment": ["true"],
    }
    assert handshake["xi-api-key"] == API_KEY
    context = server.contexts[0]
    assert [e["client"] for e in server.log if "client" in e][1:5] == [
        {
            "text": " ",
            "context_id": context,
            "voice_settings": {"stability": 0.4, "similarity_boost": 0.8},
        },
        {"text": "Guten Tag.", "context_id": context},
        {"context_id": context, "flush": True},
        {"context_id": context, "close_context": True},
    ]
    assert "".join(i.delta_text for i in items) == "Guten Tag. "
    assert API_KEY not in tts.url
    assert API_KEY not in repr(tts)
    await tts.aclose()


async def test_one_connection_serves_every_reply(server):
    tts = make_tts(server)
    await tts.prewarm()
    for text in ("One reply.", "Another reply.", "A third."):
        items = await synthesize(tts, text)
        assert items[-1].is_final
    assert len(server.handshakes) == 1
    assert len(server.contexts) == 3
    await tts.aclose()


async def test_streamed_segments_are_contexts_with_their_text(server):
    tts = make_tts(server)
    with trio.fail_after(LIMIT):
        async with tts.stream(conn_options=ONCE) as stream:
            for piece in ("Hello ", "there, ", "friend."):
                await stream.push_text(piece)
            await stream.flush()
            await stream.push_text("Bye now.")
            stream.end_input()
            items = await stream.collect()
    first, second = server.contexts
    finals = [i for i in items if i.is_final]
    assert [f.segment_id for f in finals] == [first, second]
    assert "".join(i.delta_text for i in items).split() == [
        "Hello",
        "there,",
        "friend.",
        "Bye",
        "now.",
    ]
    assert sum(i.frame.duration for i in items) == pytest.approx(5 * WORD_SECONDS)
    await tts.aclose()


async def test_each_frame_carries_its_words_with_their_alignment(server):
    tts = make_tts(server)
    items = await synthesize(tts, "Hello there, friend.")
    at, words = 0.0, []
    for item in items:
        words += [(t.text, round(at + t.start, 6), round(at + t.end, 6)) for t in item.timed_text]
        at += item.frame.duration
    # Each word is 0.2 s of audio, its characters (and the space after it) in equal steps.
    expected = []
    for k, word in enumerate(["Hello", "there,", "friend."]):
        step = round(WORD_SECONDS * 1000 / (len(word) + 1)) / 1000
        expected.append(
            (word, round(k * WORD_SECONDS, 6), round(k * WORD_SECONDS + len(word) * step, 6))
        )
    assert words == expected
    await tts.aclose()


def test_alignment_words_are_the_runs_between_spaces():
    alignment = {
        "chars": list(" Hi, you"),
        "charStartTimesMs": [0, 10, 20, 30, 40, 50, 60, 70],
        "charDurationsMs": [10] * 8,
    }
    assert alignment_words(alignment) == (
        TimedText("Hi,", 0.01, 0.04),
        TimedText("you", 0.05, 0.08),
    )
    assert alignment_words({}) == ()
    with pytest.raises(ValueError, match="differ in length"):
        alignment_words({"chars": ["a"], "charStartTimesMs": [], "charDurationsMs": []})


async def test_interruption_closes_the_context_on_the_wire(server, autojump_clock):
    server.pace = 0.2
    tts = make_tts(server)
    long = "This reply is long enough to be spoken before any flush, and it is cut."
    async with tts.stream(conn_options=ONCE) as stream:
        await stream.push_text(long)
        heard = [await stream.__anext__(), await stream.__anext__()]
    assert all(i.frame.data.max() == 1000 for i in heard)
    # The server still sends what it had started; the next reply hears none of it.
    items = await synthesize(tts, "Sure, go on.")
    old = server.contexts[0]
    assert sent(server, "close_context")[0] == {"context_id": old, "close_context": True}
    assert not [m for m in sent(server, "flush") if m["context_id"] == old]
    levels = {int(i.frame.data.max()) for i in items if i.frame.samples_per_channel}
    assert levels == {2000}
    late = [
        e
        for e in server.log
        if e.get("server", {}).get("contextId") == old[:8] and "level" in e["server"]
    ]
    assert len(late) > 2  # audio of the old reply did arrive after it was left
    assert len(server.handshakes) == 1
    await tts.aclose()


async def test_a_server_that_never_answers_a_streamed_reply_times_out(server, autojump_clock):
    server.mode = "hang"
    tts = make_tts(server)
    async with tts.stream(conn_options=ONCE) as stream:
        await stream.push_text("Anyone there?")
        await trio.sleep(30.0)  # text may take its time: no timeout while it is written
        stream.end_input()
        ended = trio.current_time()
        with pytest.raises(APITimeoutError):
            await stream.collect()
        assert trio.current_time() - ended == ONCE.timeout
    await tts.aclose()


async def test_a_dropped_connection_is_a_connection_error(server):
    server.mode = "drop"
    tts = make_tts(server)
    with trio.fail_after(LIMIT), pytest.raises(APIConnectionError) as info:
        await synthesize(tts, "one two three four five")
    assert info.value.retryable
    server.mode = "normal"
    assert (await synthesize(tts, "Back again."))[-1].is_final
    assert len(server.handshakes) == 2
    await tts.aclose()


async def test_a_dropped_stream_is_a_connection_error(server):
    server.mode = "drop"
    tts = make_tts(server)
    with trio.fail_after(LIMIT), pytest.raises(APIConnectionError):
        async with tts.stream(conn_options=ONCE) as stream:
            await stream.push_text("one two three four five")
            stream.end_input()
            await stream.collect()
    await tts.aclose()


async def test_bad_key_is_a_clear_non_retryable_error(server):
    tts = make_tts(server, api_key="xi-wrong")
    with trio.fail_after(LIMIT), pytest.raises(APIError, match="Invalid API key") as info:
        await synthesize(tts, "Hello.", conn_options=APIConnectOptions())
    assert not info.value.retryable
    assert "xi-wrong" not in str(info.value)
    assert len(server.handshakes) == 1
    await tts.aclose()


async def test_a_malformed_frame_is_a_connection_error(server):
    server.mode = "malformed"
    tts = make_tts(server)
    with trio.fail_after(LIMIT), pytest.raises(APIConnectionError, match="malformed"):
        await synthesize(tts, "one two three")
    server.mode = "normal"
    await synthesize(tts, "Fine now.")
    assert len(server.handshakes) == 2  # the connection that carried it was not kept
    await tts.aclose()


async def test_a_refused_handshake_is_a_status_error(server):
    server.mode = "reject"
    tts = make_tts(server)
    with trio.fail_after(LIMIT), pytest.raises(APIStatusError, match="Quota exceeded") as info:
        await synthesize(tts, "Hello.", conn_options=APIConnectOptions())
    assert info.value.status_code == 403
    assert not info.value.retryable
    assert len(server.handshakes) == 1


async def test_an_error_message_is_an_api_error(server):
    server.mode = "error"
    tts = make_tts(server)
    with trio.fail_after(LIMIT), pytest.raises(APIError, match="Internal error"):
        await synthesize(tts, "Hello there.")
    await tts.aclose()


def test_the_key_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    monkeypatch.setenv("ELEVEN_API_KEY", "from-env")
    assert elevenlabs.TTS()._api_key == "from-env"
    monkeypatch.delenv("ELEVEN_API_KEY")
    with pytest.raises(ValueError, match="ELEVEN_API_KEY"):
        elevenlabs.TTS()
    with pytest.raises(ValueError, match="sample_rate"):
        elevenlabs.TTS(api_key="k", sample_rate=48000)


async def test_the_wire_transcript(server, autojump_clock, monkeypatch):
    """A streamed reply, then one interrupted, frame by frame, as ``wire/elevenlabs.jsonl``
    shows them."""
    ids = iter(["ctx-aaaaaaaa-1", "ctx-bbbbbbbb-2"])
    monkeypatch.setattr(elevenlabs._tts.uuid, "uuid4", lambda: type("U", (), {"hex": next(ids)}))
    # Nothing happens at the same instant on both sides, so the order of the lines is fixed.
    server.pace = 0.05
    tts = make_tts(server)
    await tts.prewarm()
    async with tts.stream(conn_options=ONCE) as stream:
        for piece in ("Hello ", "there."):
            await stream.push_text(piece)
            await trio.sleep(0.1)
        stream.end_input()
        await stream.collect()
    async with tts.stream(conn_options=ONCE) as stream:  # interrupted after its first audio
        await stream.push_text("Wait, there is more to say, a lot more than you think.")
        await stream.__anext__()
    await tts.aclose()
    with trio.fail_after(1.0):
        await server.closed.wait()
    lines = [json.loads(line) for line in WIRE.read_text().splitlines() if line.strip()]
    expected = [line for line in lines if "note" not in line]
    assert server.log == expected, "\n".join(json.dumps(e) for e in server.log)
