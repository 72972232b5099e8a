"""Whole conversations through the providers' wire protocols: an AgentSession with Deepgram STT,
Anthropic LLM and Cartesia TTS, each talking to its test server, on the autojump clock.

How the network and the clock fit: the Anthropic, Cartesia and ElevenLabs servers are the
plugin tests' own (the same message shapes, checks and logs; Deepgram's is one that listens to
the audio, below), and they are reached over :mod:`tests.plugins.memory_net`, a loopback
network held in memory (trio's custom socket factory), not over real sockets. Every
wait in the conversation is then a trio wait, so ``MockClock(autojump_threshold=0)`` jumps only
when everything waits for time: the user's audio, the playout, the servers' pacing and the
plugins' timeouts all run on one virtual clock, and the times asserted here are exact. With
real sockets a task that waits on the kernel counts as blocked, the clock could jump while a
reply is on its way, and a timeout could fire that never would in real time.
"""

import json

import numpy as np
import pytest
import trio
import trio_websocket

from tests.plugins.memory_net import MemoryNetwork
from tests.plugins.test_anthropic import API_KEY as ANTHROPIC_KEY
from tests.plugins.test_anthropic import AnthropicServer, sse_reply, text_reply
from tests.plugins.test_cartesia import API_KEY as CARTESIA_KEY
from tests.plugins.test_cartesia import FakeCartesia
from tests.plugins.test_deepgram import API_KEY as DEEPGRAM_KEY
from tests.plugins.test_elevenlabs import API_KEY as ELEVEN_KEY
from tests.plugins.test_elevenlabs import VOICE, FakeElevenLabs
from tests.voice.conftest import Assistant
from tvoice.testing import FakeAudioOutput, Timeline
from tvoice.tts import FallbackAdapter, heard_text
from tvoice_plugins import anthropic, cartesia, deepgram, elevenlabs

QUESTION = "What is the weather in Paris?"
BARGE_IN = "Stop, what about Rome?"
REPLY = "It is sunny in Paris today, with a light breeze from the west and no rain at all."
SECOND_REPLY = "Rome is warm."
RATE = 24000


class ListeningDeepgram:
    """Deepgram's live ``/v1/listen`` as a conversation needs it: it hears speech by its level
    (``SpeechStarted`` at its first loud frame), sends an interim ``Results`` after 0.5 s of
    it and the final one (``speech_final``) after 0.1 s of silence (``endpointing``), then
    ``UtteranceEnd`` after 1 s without words. ``transcripts`` are what it hears, one per
    utterance, in order. Times are seconds of the audio received; ``log`` has the trio times."""

    def __init__(self, transcripts: list[str]) -> None:
        self.transcripts = list(transcripts)
        self.log: list[dict] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1"

    def results(self, text: str, start: float, end: float, *, final: bool) -> dict:
        words = text.split()
        step = (end - start) / len(words)
        timed = [
            {
                "word": w.strip(",.?").lower(),
                "start": round(start + i * step, 3),
                "end": round(start + (i + 1) * step, 3),
                "confidence": 0.98,
                "punctuated_word": w,
            }
            for i, w in enumerate(words)
        ]
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(end - start, 3),
            "start": round(start, 3),
            "is_final": final,
            "speech_final": final,
            "from_finalize": False,
            "channel": {"alternatives": [{"transcript": text, "confidence": 0.97, "words": timed}]},
            "metadata": {"request_id": "req-1", "model_info": {"name": "general-nova-3"}},
        }

    async def handle(self, request) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        assert headers["authorization"] == f"Token {DEEPGRAM_KEY}"
        ws = await request.accept()
        heard = 0.0
        speech: float | None = None  # when the utterance being heard began
        silence = 0.0
        interim = False
        ended: float | None = None  # when the last final's words ended (for UtteranceEnd)

        async def send(message: dict) -> None:
            self.log.append({"at": trio.current_time(), "server": message["type"]})
            await ws.send_message(json.dumps(message))

        while True:
            try:
                frame = await ws.get_message()
            except trio_websocket.ConnectionClosed:
                return
            if isinstance(frame, str):
                message = json.loads(frame)
                self.log.append({"at": trio.current_time(), "client": message["type"]})
                if message["type"] == "CloseStream":
                    await send({"type": "Metadata", "request_id": "req-1", "channels": 1})
                    await ws.aclose(1000)
                    return
                continue
            samples = np.frombuffer(frame, "<i2")
            at, heard = heard, heard + len(samples) / 16000
            if np.abs(samples).max() > 500:
                silence = 0.0
                if speech is None:
                    speech, interim, ended = at, False, None
                    await send({"type": "SpeechStarted", "channel": [0], "timestamp": at})
                elif not interim and heard - speech >= 0.5:
                    interim = True
                    first = " ".join(self.transcripts[0].split()[:2])
                    await send(self.results(first, speech, heard, final=False))
                continue
            silence += len(samples) / 16000
            if speech is not None and silence >= 0.1 - 1e-9:
                end = heard - silence
                await send(self.results(self.transcripts.pop(0), speech, end, final=True))
                speech, ended = None, end
            elif ended is not None and heard - ended >= 1.0 - 1e-9:
                await send({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": ended})
                ended = None


class Anthropic(AnthropicServer):
    """Answers the question, then the barge-in, a word per text delta."""

    async def serve(self, stream: trio.SocketStream) -> None:
        """One connection (what ``run`` serves each accepted one with)."""
        await self._serve(stream)

    async def default_handler(self, request):
        last = request.json()["messages"][-1]["content"][-1]["text"]
        reply = REPLY if last == QUESTION else SECOND_REPLY
        words = reply.split(" ")
        return sse_reply(text_reply(*(w + " " for w in words[:-1]), words[-1]))


class Output(FakeAudioOutput):
    """Records each frame that reaches it: (trio time, its level, its duration)."""

    def __init__(self) -> None:
        super().__init__(keep_audio=True)
        self.frames: list[tuple[float, int, float]] = []

    async def capture_frame(self, frame) -> None:
        level = int(frame.data.max()) if frame.samples_per_channel else 0
        self.frames.append((trio.current_time(), level, frame.duration))
        await super().capture_frame(frame)


def word_seconds(word: str) -> float:
    """Long words take longer: the share of the words is not the share of the audio."""
    return round(0.16 + 0.06 * len(word), 3)


def at(t: float) -> float:
    """A trio time, rid of the float error that sums of frame durations leave."""
    return round(t, 6)


@pytest.fixture
async def network(nursery) -> MemoryNetwork:
    return MemoryNetwork(nursery).install()


@pytest.fixture
def deepgram_stt(network):
    def make(transcripts: list[str]) -> tuple[deepgram.STT, ListeningDeepgram]:
        server = ListeningDeepgram(transcripts)
        server.port = network.serve_websocket(server.handle)
        return deepgram.STT(api_key=DEEPGRAM_KEY, base_url=server.url), server

    return make


@pytest.fixture
def anthropic_server(network) -> Anthropic:
    server = Anthropic()
    server.port = network.serve(server.serve)
    return server


@pytest.fixture
async def anthropic_llm(anthropic_server):
    llm = anthropic.LLM(api_key=ANTHROPIC_KEY, model="claude-test", base_url=anthropic_server.url)
    yield llm
    await llm.aclose()


@pytest.fixture
def cartesia_server(network) -> FakeCartesia:
    server = FakeCartesia()
    server.port = network.serve_websocket(server.handle)
    return server


async def test_barge_in_cancels_the_reply_on_the_wire_and_keeps_what_was_heard(
    deepgram_stt, anthropic_llm, anthropic_server, cartesia_server, autojump_clock
):
    stt, stt_server = deepgram_stt([QUESTION, BARGE_IN])
    tts_server = cartesia_server
    tts_server.pace = 0.2  # each word takes 0.2 s to make: a little less than it lasts
    tts_server.late_chunk = True  # one more chunk is on its way when the context is cancelled
    tts_server.word_seconds = word_seconds
    tts = cartesia.TTS(api_key=CARTESIA_KEY, base_url=tts_server.url, sample_rate=RATE)

    tl = Timeline()
    tl.audio_output = output = Output()
    tl.user_speech(start=0.5, end=2.5, transcript=QUESTION)
    tl.user_speech(start=6.0, end=7.0, transcript=BARGE_IN)
    options = {"stt": stt, "vad": None, "llm": anthropic_llm, "tts": tts}
    async with tl.session(**options, turn_detection="stt") as session:
        await session.start(Assistant())
        await tl.wait_done()
    await tts.aclose()

    # Deepgram hears the question (0.5 to 2.5 s) and ends it after 0.1 s of silence; the turn
    # ends 0.5 s later (min_endpointing_delay), the reply's text goes to Cartesia at once and
    # its first word is heard 0.2 s after. The barge-in (from 6.0 s) has words at 6.52 s.
    heard_by_deepgram = [(at(e["at"]), e["server"]) for e in stt_server.log if "server" in e]
    assert heard_by_deepgram[:3] == [(0.52, "SpeechStarted"), (1.0, "Results"), (2.6, "Results")]
    assert heard_by_deepgram[4:6] == [(6.02, "SpeechStarted"), (6.52, "Results")]
    requests = [e for e in tts_server.log if "transcript" in e.get("client", {})]
    assert requests[0]["at"] == 3.1
    first, second = output.playbacks
    assert (at(first.started_at), at(first.position), first.interrupted) == (3.3, 3.22, True)
    assert (at(second.started_at), second.interrupted) == (7.8, False)

    # The interrupted context is cancelled on the wire at the instant of the barge-in, and none
    # of its audio reaches the listener after, not even the chunk the server had in flight.
    old, _ = tts_server.contexts
    cancels = [e for e in tts_server.log if e.get("client", {}).get("cancel")]
    assert cancels == [{"at": 6.52, "client": {"context_id": old, "cancel": True}}]
    assert [e["at"] for e in tts_server.log if e.get("server", {}).get("late")] == [6.7]
    old_audio = [(t, d) for t, level, d in output.frames if level == 1000]
    assert max(t for t, _ in old_audio) < 6.52
    assert {level for t, level, _ in output.frames if t > 6.52} == {2000}

    # What the user heard of the first reply is what Cartesia's word timestamps say played
    # in 3.22 s: the words that ended by then ("a" at 2.85 s; "light" ends at 3.25 s).
    messages = [(m.role, m.text_content, m.interrupted) for m in session.history.messages()]
    assert messages == [
        ("user", QUESTION, False),
        ("assistant", "It is sunny in Paris today, with a", True),
        ("user", BARGE_IN, False),
        ("assistant", SECOND_REPLY, False),
    ]
    # An estimate from the share of the audio pushed by then would have said one word more.
    pushed = sum(d for _, d in old_audio)
    assert heard_text(REPLY, played=first.position, pushed=pushed) == (
        "It is sunny in Paris today, with a light"
    )
    # The LLM was told, in its next request, what the user had heard.
    first_request, second_request = (r.json()["messages"] for r in anthropic_server.requests)
    assert [m["role"] for m in second_request] == ["user", "assistant", "user"]
    assert second_request[1]["content"] == [
        {"type": "text", "text": "It is sunny in Paris today, with a"}
    ]
    assert len(first_request) == 1


async def test_a_fallback_tts_speaks_one_reply_when_the_first_provider_drops(
    deepgram_stt, anthropic_llm, cartesia_server, network, autojump_clock
):
    # Cartesia takes the reply's text, then drops the connection before any audio (on the
    # retry too); ElevenLabs, next in line, speaks the reply instead.
    stt, _ = deepgram_stt([QUESTION])
    cartesia_server.mode, cartesia_server.drop_after = "drop", 0
    eleven_server = FakeElevenLabs()
    eleven_server.port = network.serve_websocket(eleven_server.handle)
    first = cartesia.TTS(api_key=CARTESIA_KEY, base_url=cartesia_server.url, sample_rate=RATE)
    second = elevenlabs.TTS(
        api_key=ELEVEN_KEY, base_url=eleven_server.url, voice=VOICE, sample_rate=RATE
    )
    tts = FallbackAdapter([first, second])

    tl = Timeline()
    tl.audio_output = output = Output()
    tl.user_speech(start=0.5, end=2.5, transcript=QUESTION)
    options = {"stt": stt, "vad": None, "llm": anthropic_llm, "tts": tts}
    async with tl.session(**options, turn_detection="stt") as session:
        await session.start(Assistant())
        await tl.wait_done()
    await first.aclose()
    await second.aclose()

    # The connection the session opened at its start (the first attempt speaks on it), the
    # retry's, and the one the session keeps warm, opened again after the drops.
    assert len(cartesia_server.handshakes) == 3
    assert not [e for e in cartesia_server.log if "level" in e.get("server", {})]
    assert len(eleven_server.contexts) == 1
    # One reply reached the listener, whole, from the second provider only (its first
    # context speaks at level 1000): its 18 words of 0.2 s each.
    [playback] = output.playbacks
    assert not playback.interrupted
    # The turn ends at 3.1 s; Cartesia fails at once, and again on its retry 0.5 s later;
    # ElevenLabs answers at once.
    assert at(playback.started_at) == 3.6
    assert {level for _, level, _ in output.frames} == {1000}
    assert at(sum(d for _, _, d in output.frames)) == at(len(REPLY.split()) * 0.2)
    assert at(playback.position) == at(len(REPLY.split()) * 0.2)
    messages = [(m.role, m.text_content, m.interrupted) for m in session.history.messages()]
    assert messages == [("user", QUESTION, False), ("assistant", REPLY, False)]
