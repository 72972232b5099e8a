"""cartesia.TTS against a loopback server that speaks Cartesia's ``/tts/websocket`` protocol.

The server follows docs.cartesia.ai (api-reference/tts/websocket, use-the-api/api-conventions,
the continuations and contexts guides): ``X-API-Key`` and ``Cartesia-Version`` headers,
generation requests with ``context_id``, ``continue`` and a raw ``pcm_s16le`` output format,
``{"context_id", "cancel": true}``, and ``chunk`` (base64 audio), ``timestamps``
(``word_timestamps``), ``done`` and ``error`` messages. How a bad key is refused is not in the
reference: a 401 handshake with a JSON ``message`` is assumed. ``wire/cartesia.jsonl`` is one
streamed reply as this server saw it.
"""

import base64
import contextlib
import json
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import trio
import trio_websocket

from tvoice import APIConnectionError, APIConnectOptions, APIStatusError, APITimeoutError
from tvoice.testing import check_tts
from tvoice_plugins import cartesia

API_KEY = "sk_car_test_0123456789"
RATE = 24000
WORD_SECONDS = 0.2
LIMIT = 20.0
ONCE = APIConnectOptions(max_retry=0, timeout=5.0)
WIRE = Path(__file__).parent / "wire" / "cartesia.jsonl"


class FakeCartesia:
    """Sonic, simplified: every word is 0.2 s (``word_seconds``) of a tone whose level tells
    its context (the n-th context of the server speaks at 1000 * n), sent as its
    ``timestamps`` (said until 0.05 s before its audio ends) then one ``chunk``, ``pace``
    seconds after the last (the time it takes to generate). ``log`` records the frames."""

    def __init__(self) -> None:
        self.port = 0
        self.handshakes: list[dict] = []
        self.log: list[dict] = []
        self.pace = 0.0
        self.mode = "normal"  # or "drop", "malformed", "error", "ping", "hang"
        self.late_chunk = False  # one chunk already in flight when a context is cancelled
        self.close_when_done = False  # close the connection (1000) after the next ``done``
        self.drop_after = 2  # words sent before a "drop"
        self.word_seconds = lambda word: WORD_SECONDS  # how long each word is said for
        self.contexts: list[str] = []
        self.t0 = 0.0
        self.closed = trio.Event()  # a client closed its connection
        self.connected = trio.Event()  # a client connected

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
        self.handshakes.append({"path": urlsplit(request.path).path, **headers})
        self.connected.set()
        if headers.get("x-api-key") != API_KEY:
            body = {"message": "Invalid API key", "title": "Unauthorized"}
            await request.reject(
                401,
                extra_headers=[(b"content-type", b"application/json")],
                body=json.dumps(body).encode(),
            )
            return
        ws = await request.accept()
        self.t0 = trio.current_time()
        self.note("client", {"connect": request.path})
        work_send, work_recv = trio.open_memory_channel(100)
        cancelled: set[str] = set()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.speak, ws, work_recv, cancelled)
            while True:
                try:
                    message = json.loads(await ws.get_message())
                except trio_websocket.ConnectionClosed as e:
                    self.note("client", {"close": e.reason.code})
                    self.closed.set()
                    break
                self.note("client", message)
                context = message["context_id"]
                if message.get("cancel"):
                    cancelled.add(context)
                    continue
                assert message["output_format"] == {
                    "container": "raw",
                    "encoding": "pcm_s16le",
                    "sample_rate": RATE,
                }
                if context not in self.contexts:
                    self.contexts.append(context)
                if self.mode == "hang":
                    continue
                await work_send.send((context, message["transcript"].split(), message["continue"]))
            nursery.cancel_scope.cancel()

    async def send(self, ws, message: dict, shown: dict | None = None) -> None:
        self.note("server", shown or message)
        await ws.send_message(json.dumps(message))

    async def speak(self, ws, *args) -> None:
        # The client may leave mid-reply (an error it found, or its close).
        with contextlib.suppress(trio_websocket.ConnectionClosed):
            await self.generate(ws, *args)

    async def generate(self, ws, work, cancelled) -> None:
        spoken: dict[str, float] = {}
        sent = 0
        async for context, words, more in work:
            level = 1000 * (self.contexts.index(context) + 1)
            for word in words:
                if self.pace:
                    await trio.sleep(self.pace)
                if context in cancelled:
                    break
                if self.mode == "drop" and sent == self.drop_after:
                    await ws._stream.aclose()  # trio-websocket has no public abort
                    return
                if self.mode == "malformed" and sent == 1:
                    await ws.send_message("{not json")
                if self.mode == "ping":
                    await ws.ping()  # returns once the client answered
                    self.note("server", {"ping": "answered"})
                if self.mode == "error":
                    await self.send(
                        ws,
                        {
                            "type": "error",
                            "context_id": context,
                            "status_code": 400,
                            "done": True,
                            "title": "Invalid model",
                            "error_code": "model_not_found",
                            "message": "The model is not valid, make sure it is a valid model ID.",
                        },
                    )
                    break
                seconds = self.word_seconds(word)
                pcm = np.full(round(seconds * RATE), level, "<i2").tobytes()
                start = spoken.get(context, 0.0)
                spoken[context] = start + seconds
                await self.send(
                    ws,
                    {
                        "type": "timestamps",
                        "done": False,
                        "status_code": 206,
                        "context_id": context,
                        "word_timestamps": {
                            "words": [word],
                            "start": [round(start, 3)],
                            "end": [round(start + seconds - 0.05, 3)],
                        },
                    },
                    {
                        "type": "timestamps",
                        "words": [word],
                        "start": [round(start, 3)],
                        "context_id": context[:8],
                    },
                )
                await self.send(
                    ws,
                    {
                        "type": "chunk",
                        "data": base64.b64encode(pcm).decode(),
                        "done": False,
                        "status_code": 206,
                        "step_time": 12.5,
                        "context_id": context,
                    },
                    {
                        "type": "chunk",
                        "audio_bytes": len(pcm),
                        "level": level,
                        "context_id": context[:8],
                    },
                )
                sent += 1
            if context in cancelled and self.late_chunk:
                self.late_chunk = False
                pcm = np.full(round(WORD_SECONDS * RATE), level, "<i2").tobytes()
                await self.send(
                    ws,
                    {
                        "type": "chunk",
                        "data": base64.b64encode(pcm).decode(),
                        "done": False,
                        "status_code": 206,
                        "context_id": context,
                    },
                    {"type": "chunk", "late": True, "context_id": context[:8]},
                )
            if not more and context not in cancelled and self.mode != "error":
                await self.send(
                    ws,
                    {"type": "done", "done": True, "status_code": 206, "context_id": context},
                    {"type": "done", "context_id": context[:8]},
                )
                if self.close_when_done:
                    self.close_when_done = False
                    await ws.aclose(1000)
                    return


@pytest.fixture
async def server(nursery) -> FakeCartesia:
    return await nursery.start(FakeCartesia().run)


def make_tts(server, **options) -> cartesia.TTS:
    options.setdefault("api_key", API_KEY)
    return cartesia.TTS(base_url=server.url, sample_rate=RATE, **options)


async def synthesize(tts, text, *, conn_options=ONCE):
    with trio.fail_after(LIMIT):
        async with tts.synthesize(text, conn_options=conn_options) as stream:
            return await stream.collect()


def sent(server, key="cancel"):
    return [e["client"] for e in server.log if key in e.get("client", {})]


async def test_conformance(server):
    tts = make_tts(server)
    broken = make_tts(server, api_key="sk_car_wrong")
    await check_tts(tts, broken=broken, time_limit=LIMIT)
    await tts.aclose()
    await broken.aclose()


async def test_the_connection_and_request_follow_the_api(server):
    tts = make_tts(server, model="sonic-2", voice="voice-1", language="fr", extra={"speed": "fast"})
    await synthesize(tts, "Bonjour tout le monde.")
    handshake = server.handshakes[0]
    assert handshake["path"] == "/tts/websocket"
    assert handshake["x-api-key"] == API_KEY
    assert handshake["cartesia-version"] == "2025-04-16"
    [request] = sent(server, "transcript")
    assert request == {
        "model_id": "sonic-2",
        "transcript": "Bonjour tout le monde.",
        "voice": {"mode": "id", "id": "voice-1"},
        "language": "fr",
        "context_id": server.contexts[0],
        "output_format": {"container": "raw", "encoding": "pcm_s16le", "sample_rate": RATE},
        "add_timestamps": True,
        "continue": False,
        "speed": "fast",
    }
    assert API_KEY not in tts.url
    assert API_KEY not in repr(tts)
    await tts.aclose()


async def test_one_connection_serves_every_reply(server):
    tts = make_tts(server)
    await tts.prewarm()
    assert len(server.handshakes) == 1
    for text in ("One reply.", "Another reply.", "A third."):
        items = await synthesize(tts, text)
        assert items[-1].is_final
    assert len(server.handshakes) == 1
    assert len(set(server.contexts)) == 3  # a context per reply
    await tts.aclose()


async def test_streamed_text_continues_one_context_with_word_timings(server):
    tts = make_tts(server)
    with trio.fail_after(LIMIT):
        async with tts.stream(conn_options=ONCE) as stream:
            for piece in ("Hello ", "there, ", "friend."):
                await stream.push_text(piece)
            await stream.flush()
            await stream.push_text("Bye now.")
            stream.end_input()
            items = await stream.collect()
    requests = sent(server, "transcript")
    assert [(r["transcript"], r["continue"]) for r in requests] == [
        ("Hello ", True),
        ("there, ", True),
        ("friend.", True),
        ("", False),
        ("Bye now.", True),
        ("", False),
    ]
    first, second = server.contexts
    assert [r["context_id"] for r in requests] == [first] * 4 + [second] * 2
    finals = [i for i in items if i.is_final]
    assert [f.segment_id for f in finals] == [first, second]
    said = "".join(i.delta_text for i in items)
    assert said.split() == ["Hello", "there,", "friend.", "Bye", "now."]
    audio = sum(i.frame.duration for i in items)
    assert audio == pytest.approx(5 * WORD_SECONDS)
    await tts.aclose()


async def test_each_frame_carries_the_word_timestamps_that_start_in_it(server):
    tts = make_tts(server)
    items = await synthesize(tts, "Hello there, friend.")
    at, words = 0.0, []
    for item in items:
        assert [t.text for t in item.timed_text] == item.delta_text.split()
        words += [(t.text, round(at + t.start, 6), round(at + t.end, 6)) for t in item.timed_text]
        at += item.frame.duration
    # The server's timestamps, in seconds from the start of the context's audio.
    assert words == [("Hello", 0.0, 0.15), ("there,", 0.2, 0.35), ("friend.", 0.4, 0.55)]
    await tts.aclose()


async def test_interruption_cancels_the_context_on_the_wire(server, autojump_clock):
    server.pace = 0.2
    server.late_chunk = True
    tts = make_tts(server)
    async with tts.stream(conn_options=ONCE) as stream:
        await stream.push_text("This reply is long and will be cut short by the user.")
        await stream.flush()
        heard = [await stream.__anext__(), await stream.__anext__()]
    interrupted_at = trio.current_time() - server.t0
    assert all(i.frame.data.max() == 1000 for i in heard)
    # The next reply, on the same connection, hears none of the old one's audio.
    items = await synthesize(tts, "Sure, go on.")
    old = server.contexts[0]
    assert sent(server) == [{"context_id": old, "cancel": True}]  # before the next request
    assert len(server.handshakes) == 1
    late = [e for e in server.log if e.get("server", {}).get("late")]
    assert late  # the server did send one more chunk of the cancelled context
    levels = {int(i.frame.data.max()) for i in items if i.frame.samples_per_channel}
    assert levels == {2000}
    old_chunks = [
        e["at"]
        for e in server.log
        if e.get("server", {}).get("context_id") == old[:8] and "level" in e["server"]
    ]
    assert max(old_chunks) <= interrupted_at
    await tts.aclose()


async def test_a_kept_connection_closed_by_the_server_is_replaced(server):
    server.close_when_done = True  # e.g. Cartesia's idle timeout, between two replies
    tts = make_tts(server)
    await synthesize(tts, "First.")
    options = APIConnectOptions(max_retry=1, retry_interval=0.0, timeout=5.0)
    with trio.fail_after(LIMIT):
        async with tts.stream(conn_options=options) as stream:
            await stream.push_text("Every ")
            await stream.push_text("word counts.")
            stream.end_input()
            items = await stream.collect()
    assert len(server.handshakes) == 2
    said = "".join(i.delta_text for i in items)
    assert said.split() == ["Every", "word", "counts."]  # the retry said it all again
    await tts.aclose()


async def test_pings_are_answered_while_a_reply_is_read(server):
    server.mode = "ping"
    tts = make_tts(server)
    items = await synthesize(tts, "Are you there?")
    assert "".join(i.delta_text for i in items).split() == ["Are", "you", "there?"]
    assert len([e for e in server.log if "ping" in e.get("server", {})]) == 3
    await tts.aclose()


async def test_replies_at_once_have_a_connection_each_then_share_them(server):
    tts = make_tts(server)
    async with trio.open_nursery() as nursery:
        for text in ("First at once.", "Second at once."):
            nursery.start_soon(synthesize, tts, text)
    assert len(server.handshakes) == 2
    for text in ("Then one.", "Then another."):
        await synthesize(tts, text)
    assert len(server.handshakes) == 2  # both were kept and reused
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
    items = await synthesize(tts, "Back again.")  # a new connection
    assert items[-1].is_final
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
    tts = make_tts(server, api_key="sk_car_wrong")
    with trio.fail_after(LIMIT), pytest.raises(APIStatusError) as info:
        await synthesize(tts, "Hello.", conn_options=APIConnectOptions())
    error = info.value
    assert error.status_code == 401
    assert not error.retryable
    assert "Invalid API key" in str(error)
    assert "sk_car_wrong" not in str(error)
    assert len(server.handshakes) == 1


async def test_a_malformed_frame_is_a_connection_error(server):
    server.mode = "malformed"
    tts = make_tts(server)
    with trio.fail_after(LIMIT), pytest.raises(APIConnectionError, match="malformed"):
        await synthesize(tts, "one two three")
    server.mode = "normal"
    await synthesize(tts, "Fine now.")
    assert len(server.handshakes) == 2  # the connection that carried it was not kept
    await tts.aclose()


async def test_an_error_message_is_a_status_error(server):
    server.mode = "error"
    tts = make_tts(server)
    with trio.fail_after(LIMIT), pytest.raises(APIStatusError, match="model is not valid") as info:
        await synthesize(tts, "Hello.", conn_options=APIConnectOptions())
    assert info.value.status_code == 400
    assert not info.value.retryable
    await tts.aclose()


def test_the_key_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("CARTESIA_API_KEY", "from-env")
    assert cartesia.TTS()._api_key == "from-env"
    monkeypatch.delenv("CARTESIA_API_KEY")
    with pytest.raises(ValueError, match="CARTESIA_API_KEY"):
        cartesia.TTS()


async def test_the_wire_transcript(server, autojump_clock, monkeypatch):
    """A streamed reply, then one interrupted, frame by frame, as ``wire/cartesia.jsonl``
    shows them."""
    ids = iter(["ctx-aaaaaaaa-1", "ctx-bbbbbbbb-2"])
    monkeypatch.setattr(cartesia._tts.uuid, "uuid4", lambda: type("U", (), {"hex": next(ids)}))
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
        await stream.push_text("Wait, there is more.")
        await stream.flush()
        await stream.__anext__()
    await tts.aclose()
    with trio.fail_after(1.0):
        await server.closed.wait()
    lines = [json.loads(line) for line in WIRE.read_text().splitlines() if line.strip()]
    expected = [line for line in lines if "note" not in line]
    assert server.log == expected, "\n".join(json.dumps(e) for e in server.log)


async def test_a_session_opens_the_connection_when_it_starts(server):
    from tvoice import Agent, AgentSession
    from tvoice.testing import FakeAudioOutput

    tts = make_tts(server)
    try:
        async with AgentSession(tts=tts) as session:
            await session.start(Agent(instructions="Hi."), audio_output=FakeAudioOutput())
            with trio.fail_after(LIMIT):
                await server.connected.wait()
            assert server.contexts == [], "connected before any reply"
            items = await synthesize(tts, "Hello.")
            assert items[-1].is_final
            session.shutdown()
    finally:
        await tts.aclose()
