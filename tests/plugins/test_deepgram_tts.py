"""deepgram.TTS against a loopback server that speaks Deepgram's ``/v1/speak`` WebSocket.

The server follows developers.deepgram.com (docs/streaming-text-to-speech, docs/tts-ws-flush,
docs/tts-ws-clear, the speak streaming reference): ``Authorization: Token``, ``model``,
``encoding=linear16`` and ``sample_rate`` in the query, ``Metadata`` first, ``Speak`` text
buffered until ``Flush`` (answered by ``Flushed`` after the audio, sent as binary frames),
``Clear`` answered by ``Cleared``, a 401 handshake for a bad key. ``wire/deepgram_tts.jsonl``
is a reply and an interrupted one as this server saw them.
"""

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
from tvoice.testing import check_tts
from tvoice_plugins import deepgram

API_KEY = "dg-test-key-0123456789"
RATE = 24000
WORD_SECONDS = 0.2
LIMIT = 20.0
ONCE = APIConnectOptions(max_retry=0, timeout=5.0)
WIRE = Path(__file__).parent / "wire" / "deepgram_tts.jsonl"


class FakeAura:
    """Aura, simplified: ``Speak`` text waits for ``Flush``; then each word is 0.2 s of a tone
    whose level tells which flush it answers (the n-th speaks at 1000 * n), ``pace`` seconds
    apart, then ``Flushed``. ``Clear`` stops the words still to come (one already in flight
    still goes out with ``late_chunk``) and is answered by ``Cleared``."""

    def __init__(self) -> None:
        self.port = 0
        self.handshakes: list[dict] = []
        self.log: list[dict] = []
        self.pace = 0.0
        self.mode = "normal"  # or "drop", "malformed", "error", "hang"
        self.late_chunk = False
        self.spoken: list[str] = []  # every word turned into audio
        self.t0 = 0.0
        self.closed = trio.Event()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1"

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
        if headers.get("authorization") != f"Token {API_KEY}":
            body = {
                "err_code": "INVALID_AUTH",
                "err_msg": "Invalid credentials.",
                "request_id": "req-401",
            }
            await request.reject(
                401,
                extra_headers=[(b"dg-error", b"Invalid credentials.")],
                body=json.dumps(body).encode(),
            )
            return
        ws = await request.accept()
        self.t0 = trio.current_time()
        self.note("client", {"connect": request.path})
        await self.send(
            ws,
            {
                "type": "Metadata",
                "request_id": "req-tts",
                "model_name": "aura-2-thalia-en",
                "model_version": "2025-04-07",
            },
        )
        work_send, work_recv = trio.open_memory_channel(100)
        state = {"epoch": 0, "flushes": 0}
        buffer = ""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.speak, ws, work_recv, state)
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
                if message["type"] == "Speak":
                    buffer += message["text"]
                elif message["type"] == "Flush":
                    await work_send.send(("flush", buffer.split(), state["epoch"]))
                    buffer = ""
                elif message["type"] == "Clear":
                    buffer = ""
                    state["epoch"] += 1
                    await work_send.send(("clear", [], state["epoch"]))
                elif message["type"] == "Close":
                    await ws.aclose(1000)
            nursery.cancel_scope.cancel()

    async def send(self, ws, message) -> None:
        self.note("server", message if isinstance(message, dict) else {"audio": message})
        await ws.send_message(json.dumps(message) if isinstance(message, dict) else message)

    async def speak(self, ws, work, state) -> None:
        with contextlib.suppress(trio_websocket.ConnectionClosed):
            await self.generate(ws, work, state)

    async def generate(self, ws, work, state) -> None:
        sent = 0
        async for kind, words, epoch in work:
            if kind == "clear":
                await self.send(ws, {"type": "Cleared", "sequence_id": state["flushes"]})
                continue
            if epoch != state["epoch"]:
                continue  # cleared before it was spoken
            level = 1000 * (state["flushes"] + 1)
            for word in words:
                if self.pace:
                    await trio.sleep(self.pace)
                if epoch != state["epoch"] and not self.late_chunk:
                    break
                if self.mode == "drop" and sent == 2:
                    await ws._stream.aclose()  # trio-websocket has no public abort
                    return
                if self.mode == "malformed" and sent == 1:
                    await ws.send_message("{not json")
                if self.mode == "error":
                    await self.send(
                        ws,
                        {
                            "type": "Error",
                            "err_code": "RATE_LIMIT",
                            "description": "Too many requests.",
                        },
                    )
                    break
                self.spoken.append(word)
                pcm = np.full(round(WORD_SECONDS * RATE), level, "<i2").tobytes()
                self.note("server", {"audio_bytes": len(pcm), "level": level})
                await ws.send_message(pcm)
                sent += 1
                if epoch != state["epoch"]:
                    self.late_chunk = False
                    break
            if epoch == state["epoch"] and self.mode != "error":
                await self.send(ws, {"type": "Flushed", "sequence_id": state["flushes"]})
            state["flushes"] += 1


@pytest.fixture
async def server(nursery) -> FakeAura:
    return await nursery.start(FakeAura().run)


def make_tts(server, **options) -> deepgram.TTS:
    options.setdefault("api_key", API_KEY)
    return deepgram.TTS(base_url=server.url, sample_rate=RATE, **options)


async def synthesize(tts, text, *, conn_options=ONCE):
    with trio.fail_after(LIMIT):
        async with tts.synthesize(text, conn_options=conn_options) as stream:
            return await stream.collect()


def sent(server, kind):
    return [e["client"] for e in server.log if e.get("client", {}).get("type") == kind]


async def test_conformance(server):
    tts = make_tts(server)
    broken = make_tts(server, api_key="wrong-key")
    await check_tts(tts, broken=broken, time_limit=LIMIT)
    await tts.aclose()
    await broken.aclose()


async def test_the_connection_and_messages_follow_the_api(server):
    tts = make_tts(server, model="aura-2-andromeda-en")
    items = await synthesize(tts, "Good morning.")
    handshake = server.handshakes[0]
    assert handshake["path"] == "/v1/speak"
    assert handshake["query"] == {
        "model": ["aura-2-andromeda-en"],
        "encoding": ["linear16"],
        "sample_rate": ["24000"],
    }
    assert handshake["authorization"] == f"Token {API_KEY}"
    assert [e["client"] for e in server.log if "type" in e.get("client", {})] == [
        {"type": "Speak", "text": "Good morning."},
        {"type": "Flush"},
    ]
    assert sum(i.frame.duration for i in items) == pytest.approx(2 * WORD_SECONDS)
    assert API_KEY not in tts.url
    assert API_KEY not in repr(tts)
    await tts.aclose()


async def test_one_connection_serves_every_reply(server):
    tts = make_tts(server)
    await tts.prewarm()
    for text in ("One reply.", "Another reply.", "A third."):
        assert (await synthesize(tts, text))[-1].is_final
    assert len(server.handshakes) == 1
    await tts.aclose()


async def test_streamed_segments_each_end_with_a_flush(server):
    tts = make_tts(server)
    with trio.fail_after(LIMIT):
        async with tts.stream(conn_options=ONCE) as stream:
            for piece in ("Hello ", "there, ", "friend."):
                await stream.push_text(piece)
            await stream.flush()
            await stream.push_text("Bye now.")
            stream.end_input()
            items = await stream.collect()
    kinds = [e["client"]["type"] for e in server.log if "type" in e.get("client", {})]
    assert kinds == ["Speak", "Speak", "Speak", "Flush", "Speak", "Flush"]
    assert [i.is_final for i in items].count(True) == 2
    levels = [int(i.frame.data.max()) for i in items if i.frame.samples_per_channel]
    assert levels == [1000, 1000, 1000, 2000, 2000]
    await tts.aclose()


async def test_interruption_clears_the_stream_on_the_wire(server, autojump_clock):
    server.pace = 0.2
    server.late_chunk = True
    tts = make_tts(server)
    async with tts.stream(conn_options=ONCE) as stream:
        await stream.push_text("This reply is long and will be cut short.")
        await stream.flush()
        heard = [await stream.__anext__(), await stream.__anext__()]
    assert all(i.frame.data.max() == 1000 for i in heard)
    items = await synthesize(tts, "Sure, go on.")
    assert len(sent(server, "Clear")) == 1
    assert [e for e in server.log if e.get("server", {}).get("type") == "Cleared"]
    levels = {int(i.frame.data.max()) for i in items if i.frame.samples_per_channel}
    assert levels == {2000}  # none of the interrupted reply's audio, even the late chunk
    assert len(server.handshakes) == 1
    await tts.aclose()


async def test_text_not_yet_flushed_is_cleared_too(server):
    tts = make_tts(server)
    async with tts.stream(conn_options=ONCE) as stream:
        await stream.push_text("Never said ")
        with trio.move_on_after(0.05):  # the reply is left before its text was flushed
            await stream.__anext__()
    await synthesize(tts, "Said instead.")
    assert len(sent(server, "Clear")) == 1
    assert server.spoken == ["Said", "instead."]
    await tts.aclose()


async def test_a_server_that_never_answers_a_flush_times_out(server, autojump_clock):
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


async def test_bad_key_is_a_clear_non_retryable_error(server):
    tts = make_tts(server, api_key="wrong-key")
    with trio.fail_after(LIMIT), pytest.raises(APIStatusError) as info:
        await synthesize(tts, "Hello.", conn_options=APIConnectOptions())
    assert info.value.status_code == 401
    assert not info.value.retryable
    assert "Invalid credentials" in str(info.value)
    assert "wrong-key" not in str(info.value)
    assert len(server.handshakes) == 1


async def test_a_malformed_frame_is_a_connection_error(server):
    server.mode = "malformed"
    tts = make_tts(server)
    with trio.fail_after(LIMIT), pytest.raises(APIConnectionError, match="malformed"):
        await synthesize(tts, "one two three")
    await tts.aclose()


async def test_an_error_message_is_an_api_error(server):
    server.mode = "error"
    tts = make_tts(server)
    with trio.fail_after(LIMIT), pytest.raises(APIError, match="Too many requests"):
        await synthesize(tts, "Hello there.")
    await tts.aclose()


async def test_the_wire_transcript(server, autojump_clock):
    """A streamed reply, then one interrupted, frame by frame, as ``wire/deepgram_tts.jsonl``
    shows them."""
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
