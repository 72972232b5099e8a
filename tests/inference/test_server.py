"""The local inference server over real loopback HTTP, with small models of the tests' own:
every route's wire format (OpenAI's), and every way a request can be wrong."""

import json

import httpx
import numpy as np
import pytest
import trio

from tvoice.audio import AudioFrame, read_wav, wav_bytes
from tvoice.inference import SPEECH_SAMPLE_RATE, InferenceServer, Limits
from tvoice.llm import FunctionCall
from tvoice.stt import STT, SpeechData, SpeechEvent, SpeechEventType, STTCapabilities
from tvoice.testing import Timeline


class HeardSTT(STT):
    """Says it heard "hello world" and keeps what it was given."""

    def __init__(self, *, fail=None):
        super().__init__(capabilities=STTCapabilities(streaming=False))
        self.frames = []
        self.fail = fail

    async def _recognize_impl(self, frame, *, language, conn_options):
        if self.fail is not None:
            raise self.fail
        self.frames.append((frame, language))
        return SpeechEvent(
            type=SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[SpeechData(text="hello world", language=language or "en")],
        )


@pytest.fixture
async def served(nursery):
    """``served(llm=, stt=, tts=, limits=)`` -> an httpx client on a running server."""
    clients = []

    async def serve(**models):
        server = InferenceServer(**models)
        port = await nursery.start(server.run)
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)
        clients.append(client)
        return client

    yield serve
    for client in clients:
        await client.aclose()


def timeline() -> Timeline:
    tl = Timeline()
    tl.llm(input="Hello.", content="Hi there, friend.", ttft=0.01, duration=0.02)
    call = FunctionCall(call_id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    tl.llm(
        input="Weather in Paris?",
        content="Let me check.",
        tool_calls=[call],
        ttft=0.01,
        duration=0.02,
    )
    tl.tts(input="Hi there.", audio_duration=0.5)
    return tl


def chat_body(text="Hello.", **options):
    return {
        "model": "local",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
        **options,
    }


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Look up the weather.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def events(response_text):
    lines = [line for line in response_text.split("\n") if line]
    assert all(line.startswith("data: ") for line in lines), lines
    return [line[6:] for line in lines]


async def test_health_and_models(served):
    client = await served(llm=timeline().fake_llm, stt=HeardSTT())
    assert (await client.get("/health")).json() == {"status": "ok"}
    models = (await client.get("/v1/models")).json()
    assert models["object"] == "list"
    assert len(models["data"]) == 2
    assert {m["object"] for m in models["data"]} == {"model"}


async def test_a_chat_completion(served):
    client = await served(llm=timeline().fake_llm)
    response = await client.post("/v1/chat/completions", json=chat_body())
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl")
    assert body["model"] == "local"
    (choice,) = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": "Hi there, friend."}
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


async def test_a_streamed_chat_completion_with_a_tool_call_and_usage(served):
    client = await served(llm=timeline().fake_llm)
    body = chat_body(
        "Weather in Paris?",
        stream=True,
        stream_options={"include_usage": True},
        tools=[WEATHER_TOOL],
    )
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    data = events(response.text)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Let me check."
    calls = [
        d for c in chunks if c["choices"] for d in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert calls == [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] > 0


async def test_the_history_reaches_the_model_in_order(served):
    tl = timeline()
    tl.llm(input="sunny", content="It is sunny.", ttft=0.01, duration=0.01)
    client = await served(llm=tl.fake_llm)
    body = {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "tools": [WEATHER_TOOL],
    }
    response = await client.post("/v1/chat/completions", json=body)
    assert response.json()["choices"][0]["message"]["content"] == "It is sunny."
    assert tl.fake_llm.requests == ["sunny"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"not json", None),
        (b"[]", None),
        (json.dumps({"messages": []}).encode(), "messages"),
        (json.dumps({"messages": [{"role": "wizard", "content": "hi"}]}).encode(), "messages"),
        (json.dumps({"messages": [{"role": "user", "content": 5}]}).encode(), "messages"),
        (json.dumps(chat_body(temperature=9)).encode(), "temperature"),
        (json.dumps(chat_body(temperature=float("nan"))).encode(), "temperature"),
        (json.dumps(chat_body(max_completion_tokens=0)).encode(), "max_completion_tokens"),
        (json.dumps(chat_body(seed="x")).encode(), "seed"),
        (json.dumps(chat_body(tools=[{"type": "web_search"}])).encode(), "tools"),
        (
            json.dumps(
                chat_body(
                    tools=[WEATHER_TOOL],
                    tool_choice={"type": "function", "function": {"name": "get_time"}},
                )
            ).encode(),
            "tool_choice",
        ),
    ],
)
async def test_a_malformed_chat_request_is_a_400_that_says_why(served, body, param):
    tl = timeline()
    client = await served(llm=tl.fake_llm)
    response = await client.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]
    assert tl.fake_llm.requests == []


async def test_a_model_failure_is_a_5xx_with_its_message(served):
    client = await served(llm=timeline().fake_llm)
    # The fake model has no reply scripted for this text: a non-retryable failure.
    response = await client.post("/v1/chat/completions", json=chat_body("Unscripted."))
    assert response.status_code == 500
    assert "Unscripted." in response.json()["error"]["message"]
    response = await client.post("/v1/chat/completions", json=chat_body("Unscripted.", stream=True))
    data = events(response.text)
    assert "Unscripted." in json.loads(data[-1])["error"]["message"]


def multipart(fields):
    boundary = "tvoice-test-boundary"
    body = b""
    for name, value in fields.items():
        if name == "file":
            head = 'Content-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            head += "Content-Type: audio/wav\r\n"
        else:
            head = f'Content-Disposition: form-data; name="{name}"\r\n'
        body += f"--{boundary}\r\n{head}\r\n".encode() + value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


TONE = AudioFrame(
    (np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000) * 8000).astype(np.int16), 16000
)


async def test_a_transcription(served):
    stt = HeardSTT()
    client = await served(stt=stt)
    body, headers = multipart({"file": wav_bytes(TONE), "model": b"whisper-1", "language": b"en"})
    response = await client.post("/v1/audio/transcriptions", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"text": "hello world"}
    ((frame, language),) = stt.frames
    assert (frame.sample_rate, frame.samples_per_channel, language) == (16000, 16000, "en")
    body, headers = multipart({"file": wav_bytes(TONE), "response_format": b"text"})
    response = await client.post("/v1/audio/transcriptions", content=body, headers=headers)
    assert response.text == "hello world"


async def test_a_streamed_transcription(served):
    client = await served(stt=HeardSTT())
    body, headers = multipart({"file": wav_bytes(TONE), "stream": b"true"})
    response = await client.post("/v1/audio/transcriptions", content=body, headers=headers)
    assert [json.loads(d) for d in events(response.text)] == [
        {"type": "transcript.text.delta", "delta": "hello world"},
        {"type": "transcript.text.done", "text": "hello world"},
    ]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": b"whisper-1"}, "file"),
        ({"file": b"RIFF not really a wav"}, "file"),
        ({"file": wav_bytes(TONE), "response_format": b"srt"}, "response_format"),
    ],
)
async def test_a_malformed_transcription_request_is_a_400(served, fields, param):
    stt = HeardSTT()
    client = await served(stt=stt)
    body, headers = multipart(fields)
    response = await client.post("/v1/audio/transcriptions", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert stt.frames == []


async def test_a_body_that_is_not_multipart_or_is_cut_is_a_400(served):
    client = await served(stt=HeardSTT())
    response = await client.post("/v1/audio/transcriptions", content=b"x")
    assert response.status_code == 400
    body, headers = multipart({"file": wav_bytes(TONE)})
    response = await client.post("/v1/audio/transcriptions", content=body[:-20], headers=headers)
    assert response.status_code == 400


async def test_a_body_over_the_limit_is_refused_before_it_is_read_whole(served):
    client = await served(stt=HeardSTT(), limits=Limits(max_body=1000))
    body, headers = multipart({"file": wav_bytes(TONE)})
    with _accept_413_or_reset() as outcome:
        response = await client.post("/v1/audio/transcriptions", content=body, headers=headers)
        outcome.append(response.status_code)
    # The server is still there for the next request.
    assert (await client.get("/health")).status_code == 200


class _accept_413_or_reset:
    """The server answers 413 and closes; the client may see the answer, or a reset while it
    is still sending the rest of the body."""

    def __enter__(self):
        self.seen = []
        return self.seen

    def __exit__(self, kind, value, tb):
        if kind is None:
            assert self.seen == [413]
            return False
        return issubclass(kind, httpx.TransportError)


async def test_speech_as_pcm_at_24_khz(served):
    tl = timeline()
    client = await served(tts=tl.fake_tts)
    body = {"model": "tts-1", "input": "Hi there.", "voice": "alloy", "response_format": "pcm"}
    async with client.stream("POST", "/v1/audio/speech", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "audio/pcm"
        pcm = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert len(pcm) == 2 * int(0.5 * SPEECH_SAMPLE_RATE)


async def test_speech_as_wav(served):
    client = await served(tts=timeline().fake_tts)
    body = {"input": "Hi there.", "voice": "alloy", "response_format": "wav"}
    response = await client.post("/v1/audio/speech", json=body)
    assert response.headers["content-type"] == "audio/wav"
    frame = read_wav(response.content)
    assert (frame.sample_rate, frame.num_channels) == (SPEECH_SAMPLE_RATE, 1)
    assert frame.duration == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"voice": "alloy"}, "input"),
        ({"input": "", "voice": "alloy"}, "input"),
        ({"input": "x" * 5000, "voice": "alloy"}, "input"),
        ({"input": "Hi.", "response_format": "mp3"}, "response_format"),
        ({"input": "Hi.", "response_format": "pcm", "speed": 9}, "speed"),
        ({"input": "Hi.", "response_format": "pcm", "speed": 1.5}, "speed"),
    ],
)
async def test_a_malformed_speech_request_is_a_400(served, body, param):
    client = await served(tts=timeline().fake_tts)
    response = await client.post("/v1/audio/speech", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_unknown_routes_methods_and_missing_models(served):
    client = await served(llm=timeline().fake_llm)
    assert (await client.get("/v1/nothing")).status_code == 404
    assert (await client.get("/v1/chat/completions")).status_code == 405
    response = await client.post("/v1/audio/speech", json={"input": "Hi."})
    assert response.status_code == 404
    assert "speech" in response.json()["error"]["message"]


async def test_a_client_that_leaves_mid_reply_costs_only_its_request(served):
    tl = Timeline()
    tl.llm(input="Talk.", content="word " * 200, ttft=0.01, duration=2.0)
    tl.llm(input="Hello.", content="Hi.", ttft=0.01, duration=0.01)
    client = await served(llm=tl.fake_llm)
    with trio.move_on_after(0.2):
        async with client.stream(
            "POST", "/v1/chat/completions", json=chat_body("Talk.", stream=True)
        ) as r:
            async for _ in r.aiter_lines():
                pass
    response = await client.post("/v1/chat/completions", json=chat_body())
    assert response.json()["choices"][0]["message"]["content"] == "Hi."


async def test_garbage_instead_of_http_is_dropped(served):
    client = await served(llm=timeline().fake_llm)
    port = client.base_url.port
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
            # Not HTTP: the server closes the connection without a word.
            assert await stream.receive_some(1000) == b""
    assert (await client.get("/health")).status_code == 200


# -- warming up ------------------------------------------------------------------------------


async def test_warm_up_runs_each_model_once_on_a_tiny_input(autojump_clock):
    tl = timeline()
    tl.tts(input="Hello.", audio_duration=0.2)
    stt = HeardSTT()
    llm, tts = tl.fake_llm, tl.fake_tts
    server = InferenceServer(llm=llm, stt=stt, tts=tts)
    await server.warm_up()
    ((frame, _),) = stt.frames
    assert frame.duration == pytest.approx(0.5)
    assert llm.requests == ["Hello."]
    assert tts.requests == ["Hello."]


async def test_a_model_that_fails_to_warm_up_is_logged_and_served_anyway(autojump_clock, caplog):
    from tvoice import APIConnectionError

    tl = timeline()
    tl.tts(input="Hello.", audio_duration=0.2)
    tts = tl.fake_tts
    server = InferenceServer(stt=HeardSTT(fail=APIConnectionError("no model here")), tts=tts)
    await server.warm_up()
    assert "warming up the STT failed" in caplog.text
    assert tts.requests == ["Hello."]  # the next model still warmed up
