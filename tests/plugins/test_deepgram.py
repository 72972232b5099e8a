"""deepgram.STT against a loopback server that speaks Deepgram's live ``/v1/listen`` protocol.

The server follows Deepgram's streaming reference (developers.deepgram.com/reference/streaming,
docs/audio-keep-alive, docs/finalize, docs/close-stream, the DATA & NET errors guide): the key
in ``Authorization: Token``, options as query parameters, binary linear16 audio in, JSON text
messages out (``SpeechStarted``, ``Results``, ``UtteranceEnd``, ``Metadata``), close 1000 after
``CloseStream``, 1011 ``NET-0001`` when nothing arrives for 10 s, a 401 handshake for a bad key.
``wire/deepgram.jsonl`` is one whole conversation as this server saw it.
"""

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
from tvoice.audio import AudioFrame
from tvoice.stt import SpeechEventType
from tvoice.testing import check_stt
from tvoice_plugins import deepgram

API_KEY = "dg-test-key-0123456789"
RATE = 16000
LIMIT = 20.0
WORDS = ["what", "is", "the", "weather", "in", "paris"]
TRANSCRIPT = "What is the weather in Paris?"
WIRE = Path(__file__).parent / "wire" / "deepgram.jsonl"
ONCE = APIConnectOptions(max_retry=0, timeout=5.0)


def tone(seconds: float, rate: int = RATE) -> AudioFrame:
    n = round(seconds * rate)
    data = (6000 * np.sin(2 * np.pi * 200 * np.arange(n) / rate)).astype(np.int16)
    return AudioFrame(data.reshape(-1, 1), rate)


def pieces(frame: AudioFrame, seconds: float = 0.1) -> list[AudioFrame]:
    step = round(seconds * frame.sample_rate)
    return [
        AudioFrame(frame.data[i : i + step], frame.sample_rate)
        for i in range(0, frame.samples_per_channel, step)
    ]


def results(words, *, start, is_final, speech_final=False, from_finalize=False):
    """A ``Results`` message as Deepgram sends it, each word 0.25 s from ``start``."""
    timed = [
        {
            "word": w,
            "start": round(start + 0.25 * i, 3),
            "end": round(start + 0.25 * i + 0.2, 3),
            "confidence": 0.98,
            "punctuated_word": w.capitalize() if i == 0 else w,
        }
        for i, w in enumerate(words)
    ]
    text = " ".join(t["punctuated_word"] for t in timed)
    if len(words) == len(WORDS):
        text = TRANSCRIPT
    return {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": round(0.25 * len(words), 3),
        "start": start,
        "is_final": is_final,
        "speech_final": speech_final,
        "from_finalize": from_finalize,
        "channel": {"alternatives": [{"transcript": text, "confidence": 0.97, "words": timed}]},
        "metadata": {"request_id": "req-1", "model_info": {"name": "general-nova-3"}},
    }


class FakeDeepgram:
    """What Deepgram does with one stream, simplified: speech is heard after 0.1 s of audio;
    an interim result after 0.5 s; ``Finalize`` makes the final result, ``CloseStream`` the
    ``Metadata`` and a 1000 close. ``log`` records every frame with the trio time."""

    def __init__(self) -> None:
        self.port = 0
        self.log: list[dict] = []
        self.requests: list[dict] = []
        self.mode = "normal"  # or "drop", "malformed", "error", "bad_audio", "no_close"
        self.drop_after = 0.3  # seconds of audio heard before a "drop"

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

    def note(self, direction: str, frame) -> None:
        entry = {"at": round(trio.current_time() - self.t0, 3), direction: frame}
        self.log.append(entry)

    async def handle(self, request: trio_websocket.WebSocketRequest) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        parts = urlsplit(request.path)
        self.requests.append({"path": parts.path, "query": parse_qs(parts.query), **headers})
        if headers.get("authorization") != f"Token {API_KEY}":
            body = {
                "err_code": "INVALID_AUTH",
                "err_msg": "Invalid credentials.",
                "request_id": "req-401",
            }
            await request.reject(
                401,
                extra_headers=[
                    (b"dg-error", b"Invalid credentials."),
                    (b"dg-request-id", b"req-401"),
                    (b"content-type", b"application/json"),
                ],
                body=json.dumps(body).encode(),
            )
            return
        vad_events = parse_qs(parts.query).get("vad_events") == ["true"]
        ws = await request.accept()
        self.t0 = trio.current_time()
        self.note("client", {"connect": request.path})
        heard = 0.0
        interim_sent = started = False

        async def send(message) -> None:
            self.note("server", message)
            await ws.send_message(json.dumps(message))

        while True:
            try:
                frame = await ws.get_message()
            except trio_websocket.ConnectionClosed:
                return
            if isinstance(frame, bytes):
                heard += len(frame) / 2 / RATE
                self.note("client", {"audio_bytes": len(frame)})
                if self.mode == "drop" and heard >= self.drop_after:
                    # trio-websocket has no public abort: cut the TCP stream under it.
                    await ws._stream.aclose()
                    return
                if self.mode == "bad_audio":
                    await ws.aclose(1008, "DATA-0000")
                    return
                if self.mode == "malformed" and heard >= 0.3:
                    await ws.send_message("{not json")
                    continue
                if self.mode == "error" and heard >= 0.3:
                    await send(
                        {
                            "type": "Error",
                            "description": "Internal failure.",
                            "message": "",
                            "variant": "unknown",
                        }
                    )
                    continue
                if not started and heard >= 0.1:
                    started = True
                    if vad_events:
                        await send({"type": "SpeechStarted", "channel": [0], "timestamp": 0.1})
                if not interim_sent and heard >= 0.5:
                    interim_sent = True
                    await send(results(WORDS[:3], start=0.1, is_final=False))
                continue
            message = json.loads(frame)
            self.note("client", message)
            if message["type"] == "Finalize" and started:
                await send(
                    results(WORDS, start=0.1, is_final=True, speech_final=True, from_finalize=True)
                )
                await send({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 1.55})
                started = interim_sent = False
            elif message["type"] == "CloseStream" and self.mode == "no_close":
                continue  # a server that never finishes
            elif message["type"] == "CloseStream":
                await send(
                    {
                        "type": "Metadata",
                        "request_id": "req-1",
                        "duration": round(heard, 3),
                        "channels": 1,
                    }
                )
                self.note("server", {"close": 1000})
                await ws.aclose(1000)
                return


@pytest.fixture
async def server(nursery) -> FakeDeepgram:
    return await nursery.start(FakeDeepgram().run)


def make_stt(server, **options) -> deepgram.STT:
    options.setdefault("api_key", API_KEY)
    return deepgram.STT(base_url=server.url, **options)


async def transcribe(stt, frames, *, conn_options=ONCE):
    with trio.fail_after(LIMIT):
        async with stt.stream(conn_options=conn_options) as stream:
            for frame in frames:
                await stream.push_frame(frame)
            stream.end_input()
            return await stream.collect()


async def test_conformance(server):
    stt = make_stt(server)
    broken = make_stt(server, api_key="wrong-key")
    await check_stt(
        stt, tone(1.5), expected_words=["weather", "Paris"], broken=broken, time_limit=LIMIT
    )


async def test_the_connection_follows_the_api(server):
    stt = make_stt(
        server, model="nova-3", language="en-GB", keyterms=["tvoice", "trio"], smart_format=True
    )
    await transcribe(stt, pieces(tone(1.0)))
    request = server.requests[0]
    assert request["path"] == "/v1/listen"
    assert request["authorization"] == f"Token {API_KEY}"
    assert request["query"] == {
        "model": ["nova-3"],
        "encoding": ["linear16"],
        "sample_rate": ["16000"],
        "channels": ["1"],
        "interim_results": ["true"],
        "endpointing": ["25"],
        "utterance_end_ms": ["1000"],
        "vad_events": ["true"],
        "punctuate": ["true"],
        "smart_format": ["true"],
        "keyterm": ["tvoice", "trio"],
        "language": ["en-GB"],
    }
    # The key is in the header only: never in the URL, a repr or a label.
    assert API_KEY not in stt.url()
    assert API_KEY not in repr(stt)
    assert API_KEY not in stt.label


async def test_events_carry_interims_finals_and_word_timings(server):
    events = await transcribe(make_stt(server), pieces(tone(1.0)))
    types = [e.type for e in events]
    assert types == [
        SpeechEventType.START_OF_SPEECH,
        SpeechEventType.INTERIM_TRANSCRIPT,
        SpeechEventType.FINAL_TRANSCRIPT,
        SpeechEventType.END_OF_SPEECH,
    ]
    interim, final = events[1], events[2]
    assert interim.text == "What is the"
    best = final.alternatives[0]
    assert best.text == TRANSCRIPT
    assert (best.start_time, best.end_time) == (0.1, 1.55)
    assert best.confidence == 0.97
    assert best.language == "en-US"
    assert final.request_id == "req-1"


async def test_without_vad_events_speech_starts_with_the_first_words(server):
    events = await transcribe(make_stt(server, vad_events=False), pieces(tone(1.0)))
    assert server.requests[0]["query"]["vad_events"] == ["false"]
    assert not [e for e in server.log if e.get("server", {}).get("type") == "SpeechStarted"]
    assert [e.type for e in events][:2] == [
        SpeechEventType.START_OF_SPEECH,
        SpeechEventType.INTERIM_TRANSCRIPT,
    ]


async def test_each_flush_ends_an_utterance(server):
    stt = make_stt(server)
    with trio.fail_after(LIMIT):
        async with stt.stream(conn_options=ONCE) as stream:
            for _ in range(2):
                for frame in pieces(tone(0.6)):
                    await stream.push_frame(frame)
                await stream.flush()
            stream.end_input()
            events = await stream.collect()
    types = [e.type for e in events]
    assert types.count(SpeechEventType.START_OF_SPEECH) == 2
    assert types.count(SpeechEventType.END_OF_SPEECH) == 2
    finals = [e for e in events if e.type == SpeechEventType.FINAL_TRANSCRIPT]
    assert [f.text for f in finals] == [TRANSCRIPT, TRANSCRIPT]


async def test_frames_at_another_rate_are_resampled(server):
    await transcribe(make_stt(server), pieces(tone(1.0, rate=48000)))
    sent = [e["client"].get("audio_bytes", 0) for e in server.log if "client" in e]
    audio = sum(sent)
    assert abs(audio / 2 / RATE - 1.0) < 0.02  # sent as 16 kHz, whatever came in


async def test_flush_sends_finalize_and_gets_a_final(server):
    stt = make_stt(server)
    with trio.fail_after(LIMIT):
        async with stt.stream(conn_options=ONCE) as stream:
            for frame in pieces(tone(0.6)):
                await stream.push_frame(frame)
            await stream.flush()
            finals = []
            async for event in stream:
                if event.type == SpeechEventType.FINAL_TRANSCRIPT:
                    finals.append(event)
                    break
    assert finals[0].text == TRANSCRIPT
    sent = [e["client"].get("type") for e in server.log if "client" in e]
    assert "Finalize" in sent


async def test_keepalive_while_silent(server, autojump_clock):
    stt = make_stt(server, keepalive_interval=4.0)
    async with stt.stream(conn_options=ONCE) as stream:
        for frame in pieces(tone(0.2)):
            await stream.push_frame(frame)
        await trio.sleep(13.0)  # the user is silent: no audio is pushed
        for frame in pieces(tone(0.2)):
            await stream.push_frame(frame)
        await trio.sleep(2.0)
        stream.end_input()
        await stream.collect()
    keepalives = [e["at"] for e in server.log if e.get("client", {}).get("type") == "KeepAlive"]
    # 4 s after the last audio, then every 4 s while none comes; audio resets the count.
    assert keepalives == [4.0, 8.0, 12.0]
    finalize = [e["at"] for e in server.log if e.get("client", {}).get("type") == "Finalize"]
    assert finalize == [15.0]


async def test_a_server_that_never_ends_the_stream_times_out(server, autojump_clock):
    server.mode = "no_close"
    stt = make_stt(server)
    with pytest.raises(APITimeoutError):
        async with stt.stream(conn_options=ONCE) as stream:
            for frame in pieces(tone(0.5)):
                await stream.push_frame(frame)
            stream.end_input()
            start = trio.current_time()
            try:
                await stream.collect()
            finally:
                assert trio.current_time() - start == ONCE.timeout


async def test_bad_key_is_a_clear_non_retryable_error(server):
    stt = make_stt(server, api_key="wrong-key")
    with pytest.raises(APIStatusError) as info:
        await transcribe(stt, pieces(tone(0.5)), conn_options=APIConnectOptions())
    error = info.value
    assert error.status_code == 401
    assert not error.retryable
    assert "Invalid credentials" in str(error)
    assert error.request_id == "req-401"
    assert len(server.requests) == 1  # not retried
    assert "wrong-key" not in str(error)
    assert "wrong-key" not in repr(error.body)


async def test_a_dropped_connection_is_a_connection_error(server):
    server.mode = "drop"
    with trio.fail_after(LIMIT), pytest.raises(APIConnectionError) as info:
        await transcribe(make_stt(server), pieces(tone(1.0)))
    assert info.value.retryable


async def test_a_connection_dropped_before_any_event_is_retried(server):
    server.mode, server.drop_after = "drop", 0.0
    options = APIConnectOptions(max_retry=2, retry_interval=0.0, timeout=5.0)
    with trio.fail_after(LIMIT), pytest.raises(APIConnectionError):
        await transcribe(make_stt(server), pieces(tone(1.0)), conn_options=options)
    assert len(server.requests) == 3  # the first attempt and two retries


async def test_a_malformed_frame_is_a_connection_error(server):
    server.mode = "malformed"
    with trio.fail_after(LIMIT), pytest.raises(APIConnectionError, match="malformed"):
        await transcribe(make_stt(server), pieces(tone(1.0)))


async def test_an_error_message_is_an_api_error(server):
    server.mode = "error"
    with trio.fail_after(LIMIT), pytest.raises(APIError, match="Internal failure"):
        await transcribe(make_stt(server), pieces(tone(1.0)))


async def test_refused_audio_is_not_retried(server):
    server.mode = "bad_audio"
    with trio.fail_after(LIMIT), pytest.raises(APIError, match="DATA-0000") as info:
        await transcribe(make_stt(server), pieces(tone(0.5)), conn_options=APIConnectOptions())
    assert not info.value.retryable
    assert len(server.requests) == 1


async def test_no_server_is_a_connection_error():
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stt = deepgram.STT(api_key=API_KEY, base_url=f"ws://127.0.0.1:{port}/v1")
    with trio.fail_after(LIMIT), pytest.raises(APIConnectionError):
        await transcribe(stt, pieces(tone(0.2)))


def test_the_key_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DEEPGRAM_API_KEY", "from-env")
    assert deepgram.STT()._api_key == "from-env"
    monkeypatch.delenv("DEEPGRAM_API_KEY")
    with pytest.raises(ValueError, match="DEEPGRAM_API_KEY"):
        deepgram.STT()


async def test_the_wire_transcript(server, autojump_clock):
    """One conversation, frame by frame, as ``wire/deepgram.jsonl`` shows it."""
    stt = make_stt(server)
    async with stt.stream(conn_options=ONCE) as stream:
        for frame in pieces(tone(0.6), 0.2):
            await stream.push_frame(frame)
            await trio.sleep(0.2)
        await trio.sleep(5.0)
        stream.end_input()
        await stream.collect()
    lines = [json.loads(line) for line in WIRE.read_text().splitlines() if line.strip()]
    expected = [line for line in lines if "note" not in line]
    assert server.log == expected, "\n".join(json.dumps(e) for e in server.log)
