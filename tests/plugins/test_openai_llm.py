"""openai.LLM against a loopback server that speaks the documented Chat Completions wire format:
conformance, the request it sends, streaming, tool calls, usage, cancellation, every error path,
and the key's secrecy."""

import logging

import httpx
import pytest
import trio

from tests.plugins.test_openai_wire import (
    API_KEY,
    CUT,
    HANG,
    WireServer,
    chunk,
    error_reply,
    sse,
    sse_reply,
    text_stream,
    usage_chunk,
)
from tvoice import APIConnectionError, APIConnectOptions, APIError, APIStatusError
from tvoice import APITimeoutError as APITimeout
from tvoice.llm import ChatContext, FunctionCall, FunctionCallOutput, function_tool
from tvoice.testing import check_llm
from tvoice_plugins import openai

# Real sockets on the real clock: limits only a hang reaches.
LIMIT = 10.0
NO_RETRY = APIConnectOptions(max_retry=0, timeout=5.0)


@function_tool
async def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


@pytest.fixture
async def server(nursery) -> WireServer:
    return await nursery.start(WireServer().run)


def make_llm(server, **options) -> openai.LLM:
    options.setdefault("api_key", API_KEY)
    return openai.LLM(model="gpt-test", base_url=server.url, **options)


def ctx(text: str = "Hi") -> ChatContext:
    chat = ChatContext()
    chat.add_message(role="user", content=text)
    return chat


async def reply(llm, chat=None, **options):
    options.setdefault("conn_options", NO_RETRY)
    with trio.fail_after(LIMIT):
        async with llm.chat(chat_ctx=chat or ctx(), **options) as stream:
            return await stream.collect()


def text_of(chunks) -> str:
    return "".join(c.delta.content or "" for c in chunks if c.delta)


def calls_of(chunks) -> list[FunctionCall]:
    return [call for c in chunks if c.delta for call in c.delta.tool_calls]


def weather_calls(*cities: str) -> list:
    """A reply calling get_weather once per city, the calls' pieces interleaved."""
    starts = [
        chunk({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]})
        for i in range(len(cities))
    ]  # fmt: skip
    heads = [
        chunk({"tool_calls": [{"index": i, "function": {"arguments": '{"city": '}}]})
        for i in range(len(cities))
    ]
    tails = [
        chunk({"tool_calls": [{"index": i, "function": {"arguments": f'"{city}"}}'}}]})
        for i, city in enumerate(cities)
    ]
    return [chunk({"role": "assistant", "content": None}), *starts, *heads, *tails]


async def answering(request):
    body = request.json()
    if body.get("tools") and body.get("tool_choice") != "none":
        return sse_reply(sse(*weather_calls("Paris"), chunk({}, "tool_calls"), usage_chunk()))
    return sse_reply(text_stream("Hello", " there", "."))


async def test_conformance(server):
    server.handler = answering
    llm = make_llm(server)
    broken = make_llm(server, api_key="sk-wrong")
    await check_llm(llm, tools=[get_weather], broken=broken, time_limit=LIMIT)
    await llm.aclose()
    await broken.aclose()


async def test_the_request_follows_the_api(server):
    llm = make_llm(
        server,
        temperature=0.3,
        max_completion_tokens=50,
        seed=7,
        response_format={"type": "json_object"},
        parallel_tool_calls=False,
        headers={"X-Team": "voice"},
        extra_body={"service_tier": "flex"},
    )
    chat = ctx("weather?")
    chat.add_message(role="developer", content="Be brief.")
    await reply(llm, chat, tools=[get_weather], tool_choice="get_weather", extra={"user": "u1"})
    await llm.aclose()
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["x-team"] == "voice"
    body = request.json()
    assert body["model"] == "gpt-test"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "user", "content": "weather?"},
        {"role": "system", "content": "Be brief."},
    ]
    assert body["tools"] == [{"type": "function", "function": get_weather.schema}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert (body["temperature"], body["max_completion_tokens"], body["seed"]) == (0.3, 50, 7)
    assert body["response_format"] == {"type": "json_object"}
    assert (body["service_tier"], body["user"]) == ("flex", "u1")


async def test_without_tools_no_tool_fields_are_sent(server):
    llm = make_llm(server, parallel_tool_calls=True)
    await reply(llm)
    await llm.aclose()
    body = server.requests[0].json()
    assert not {"tools", "tool_choice", "parallel_tool_calls", "temperature"} & set(body)


async def test_text_is_streamed_as_it_arrives(server):
    async def slow(request):
        return sse_reply(text_stream("One", " two", " three", pause=0.3))

    server.handler = slow
    llm = make_llm(server)
    arrivals = []
    with trio.fail_after(LIMIT):
        async with llm.chat(chat_ctx=ctx(), conn_options=NO_RETRY) as stream:
            start = trio.current_time()
            async for c in stream:
                if c.delta and c.delta.content:
                    arrivals.append((c.delta.content, trio.current_time() - start))
    await llm.aclose()
    assert [text for text, _ in arrivals] == ["One", " two", " three"]
    # The first words come long before the reply ends.
    assert arrivals[0][1] < arrivals[-1][1] - 0.4


async def test_several_tool_calls_with_arguments_in_pieces(server):
    async def calling(request):
        events = [*weather_calls("Paris", "Rome"), chunk({}, "tool_calls"), usage_chunk()]
        return sse_reply(sse(*events))

    server.handler = calling
    llm = make_llm(server)
    chunks = await reply(llm, tools=[get_weather], tool_choice="required")
    await llm.aclose()
    assert [(c.call_id, c.name, c.arguments) for c in calls_of(chunks)] == [
        ("call_0", "get_weather", '{"city": "Paris"}'),
        ("call_1", "get_weather", '{"city": "Rome"}'),
    ]
    assert server.requests[0].json()["tool_choice"] == "required"


async def test_text_then_a_call_without_finish_reason_ends_at_done(server):
    async def calling(request):
        events = [chunk({"content": "Let me check."}), *weather_calls("Oslo"), usage_chunk()]
        return sse_reply(sse(*events))

    server.handler = calling
    llm = make_llm(server)
    chunks = await reply(llm, tools=[get_weather])
    await llm.aclose()
    assert text_of(chunks) == "Let me check."
    assert [c.arguments for c in calls_of(chunks)] == ['{"city": "Oslo"}']


async def test_usage_goes_into_the_metrics(server):
    llm = make_llm(server)
    metrics = []
    llm.on("metrics_collected", metrics.append)
    chunks = await reply(llm)
    await llm.aclose()
    assert chunks[-1].usage is not None
    (m,) = metrics
    assert (m.prompt_tokens, m.completion_tokens, m.total_tokens) == (11, 7, 18)
    assert not m.cancelled
    assert m.ttft >= 0


async def test_leaving_the_stream_closes_the_response_at_once(server):
    closed = trio.Event()

    async def endless(request):
        return sse_reply(sse(*[chunk({"content": "word "}) for _ in range(10_000)], pause=0.01))

    server.handler = endless
    original_send = server._send

    async def send(conn, stream, reply):
        # Returns when the reply is sent (100 s from now) or when a write fails.
        ok = await original_send(conn, stream, reply)
        closed.set()
        return ok

    server._send = send
    llm = make_llm(server)
    with trio.fail_after(LIMIT):
        async with llm.chat(chat_ctx=ctx(), conn_options=NO_RETRY) as stream:
            await stream.__anext__()
        left = trio.current_time()
        await closed.wait()
    # The server's next write fails: the connection was closed, not drained.
    assert trio.current_time() - left < 1.0
    await llm.aclose()


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors_are_final_and_carry_the_providers_message(server, status):
    async def refuse(request):
        return error_reply(status, "You are not allowed to sample from this model")

    server.handler = refuse
    llm = make_llm(server)
    with pytest.raises(APIStatusError) as caught:
        await reply(llm, conn_options=APIConnectOptions(max_retry=3, retry_interval=0))
    await llm.aclose()
    error = caught.value
    assert (error.status_code, error.retryable) == (status, False)
    assert "You are not allowed to sample from this model" in error.message
    assert error.body["type"] == "invalid_request_error"
    assert len(server.requests) == 1


async def test_a_wrong_key_is_a_401_that_never_shows_the_key(server, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "sk-wrong-key-SHOULD-NOT-LEAK"
    llm = make_llm(server, api_key=wrong)
    with pytest.raises(APIStatusError) as caught:
        await reply(llm)
    await llm.aclose()
    error = caught.value
    assert (error.status_code, error.retryable) == (401, False)
    assert "Incorrect API key provided" in error.message
    shown = [str(error), repr(error), error.message, str(error.body), repr(llm), repr(llm.client)]
    shown += [record.getMessage() for record in caplog.records]
    assert not [text for text in shown if wrong in text]


async def test_the_key_never_appears_in_logs_reprs_or_errors(server, caplog):
    caplog.set_level(logging.DEBUG)

    async def leaky(request):
        return error_reply(500, f"internal error while using {API_KEY}")

    server.handler = leaky
    llm = make_llm(server)
    with pytest.raises(APIStatusError) as caught:
        await reply(llm, conn_options=APIConnectOptions(max_retry=1, retry_interval=0))
    await llm.aclose()
    shown = [str(caught.value), repr(caught.value), str(caught.value.body), repr(llm)]
    shown += [str(vars(llm)), repr(llm.client)]
    shown += [record.getMessage() for record in caplog.records]
    assert caplog.records  # the retry was logged
    assert not [text for text in shown if API_KEY in text]
    assert "***" in caught.value.message


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_other_client_errors_are_final(server, status):
    async def refuse(request):
        return error_reply(status, "bad request")

    server.handler = refuse
    llm = make_llm(server)
    with pytest.raises(APIStatusError) as caught:
        await reply(llm, conn_options=APIConnectOptions(max_retry=2, retry_interval=0))
    await llm.aclose()
    assert (caught.value.status_code, caught.value.retryable) == (status, False)
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503])
async def test_retryable_statuses_are_retried_then_succeed(server, status):
    async def flaky(request):
        if len(server.requests) == 1:
            return error_reply(status, "try again", type_="server_error")
        return sse_reply(text_stream("Fine."))

    server.handler = flaky
    llm = make_llm(server)
    chunks = await reply(llm, conn_options=APIConnectOptions(max_retry=1, retry_interval=0))
    assert text_of(chunks) == "Fine."
    assert len(server.requests) == 2

    async def failing(request):
        return error_reply(status, "try again", type_="server_error")

    server.handler = failing
    with pytest.raises(APIStatusError) as caught:
        await reply(llm)
    await llm.aclose()
    assert (caught.value.status_code, caught.value.retryable) == (status, True)


async def test_retry_after_is_honoured(server):
    times = []

    async def limited(request):
        times.append(trio.current_time())
        if len(times) == 1:
            return error_reply(429, "Rate limit reached", type_="requests", **{"retry-after": "1"})
        return sse_reply(text_stream("Now."))

    server.handler = limited
    llm = make_llm(server)
    chunks = await reply(llm, conn_options=APIConnectOptions(max_retry=1, retry_interval=0))
    await llm.aclose()
    assert text_of(chunks) == "Now."
    assert times[1] - times[0] >= 1.0


async def test_a_retry_after_longer_than_the_call_allows_is_final(server):
    async def limited(request):
        return error_reply(429, "Rate limit reached", **{"retry-after": "120"})

    server.handler = limited
    llm = make_llm(server)
    with trio.fail_after(LIMIT):
        with pytest.raises(APIStatusError) as caught:
            await reply(llm, conn_options=APIConnectOptions(max_retry=3, retry_interval=0))
    await llm.aclose()
    assert caught.value.status_code == 429
    assert caught.value.retryable is False
    assert caught.value.retry_after == 120.0
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "parts",
    [
        # The connection drops mid-stream (an incomplete chunked body).
        [*sse(chunk({"content": "Hel"}), done=False), CUT],
        # The body ends cleanly, but before the reply finished and without [DONE].
        sse(chunk({"content": "Hel"}), done=False),
        # A chunk that is not JSON.
        [*sse(chunk({"content": "Hel"}), done=False), b"data: {not json\n\n"],
        # A chunk of the wrong shape.
        sse(chunk({"content": "Hel"}), '{"choices": {"0": 1}}'),
    ],
    ids=["cut", "no-done", "not-json", "wrong-shape"],
)
async def test_a_broken_stream_is_a_connection_error(server, parts):
    async def broken(request):
        return sse_reply(parts)

    server.handler = broken
    llm = make_llm(server)
    with pytest.raises(APIConnectionError):
        await reply(llm)
    await llm.aclose()


async def test_an_error_event_mid_stream_is_an_api_error(server):
    async def failing(request):
        return sse_reply(sse({"error": {"message": "The server had an error", "type": "x"}}))

    server.handler = failing
    llm = make_llm(server)
    with pytest.raises(APIError, match="The server had an error"):
        await reply(llm)
    await llm.aclose()


async def test_a_silent_server_times_out(server):
    async def silent(request):
        return sse_reply([*sse(chunk({"content": "Hel"}), done=False), HANG])

    server.handler = silent
    llm = make_llm(server)
    start = trio.current_time()
    with pytest.raises(APITimeout):
        await reply(llm, conn_options=APIConnectOptions(max_retry=0, timeout=0.5))
    await llm.aclose()
    assert trio.current_time() - start < 2.0


async def test_a_refused_connection_is_a_connection_error():
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    llm = openai.LLM(model="m", base_url=f"http://127.0.0.1:{port}/v1", api_key=API_KEY)
    with pytest.raises(APIConnectionError) as caught:
        await reply(llm)
    await llm.aclose()
    assert caught.value.retryable


async def test_connections_are_reused_and_closed_with_the_llm(server):
    llm = make_llm(server)
    await reply(llm)
    await reply(llm)
    assert server.connections == 1
    await llm.aclose()
    assert llm.client.http_client.is_closed


async def test_an_injected_client_is_used_and_owned():
    seen = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = b"".join(p for p in text_stream("Mocked.") if isinstance(p, bytes))
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    llm = openai.LLM(model="m", base_url="http://mock/v1", api_key=API_KEY, http_client=client)
    assert text_of(await reply(llm)) == "Mocked."
    await llm.aclose()
    assert client.is_closed
    assert str(seen[0].url) == "http://mock/v1/chat/completions"


async def test_the_history_sent_is_valid_for_a_strict_provider(server):
    # Recorded as the runtime does when a tool outlives its interrupted speech.
    chat = ctx("What is the weather in Paris?")
    chat.items.append(FunctionCall(call_id="c1", name="get_weather", arguments="{}"))
    chat.add_message(role="user", content="Hello?")
    chat.items.append(
        FunctionCallOutput(call_id="c1", name="get_weather", output="Sunny", is_error=False)
    )
    llm = make_llm(server)
    assert text_of(await reply(llm, chat)) == "Hello there."
    await llm.aclose()
    roles = [m["role"] for m in server.requests[0].json()["messages"]]
    assert roles == ["user", "assistant", "tool", "user"]


def test_presets_take_their_url_and_key_variable(monkeypatch):
    monkeypatch.setenv("GROQ_API_KEY", "gsk-secret")
    groq = openai.LLM.with_groq(model="llama-3.3-70b-versatile")
    assert groq.client.base_url == "https://api.groq.com/openai/v1"
    assert groq.client.has_api_key
    assert "gsk-secret" not in repr(groq)
    expected = {
        "together": ("TOGETHER_API_KEY", "https://api.together.xyz/v1"),
        "fireworks": ("FIREWORKS_API_KEY", "https://api.fireworks.ai/inference/v1"),
        "openrouter": ("OPENROUTER_API_KEY", "https://openrouter.ai/api/v1"),
    }
    for name, (env, url) in expected.items():
        monkeypatch.setenv(env, "k")
        llm = getattr(openai.LLM, f"with_{name}")()
        assert llm.client.base_url == url
    monkeypatch.delenv("TOGETHER_API_KEY")
    with pytest.raises(ValueError, match="TOGETHER_API_KEY"):
        openai.LLM.with_together()
    # Local servers need no key.
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    ollama = openai.LLM.with_ollama(model="llama3.2")
    assert (ollama.client.base_url, ollama.client.has_api_key) == (
        "http://localhost:11434/v1",
        False,
    )
    assert openai.LLM.with_vllm(model="m").client.base_url == "http://localhost:8000/v1"


def test_the_openai_key_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY") as caught:
        openai.LLM()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    llm = openai.LLM()
    assert llm.client.has_api_key
    assert "sk-from-env" not in repr(llm) + str(caught.value)
    # Another server needs no key.
    monkeypatch.delenv("OPENAI_API_KEY")
    assert not openai.LLM(base_url="http://127.0.0.1:1/v1").client.has_api_key


async def test_a_reply_cut_before_anything_was_said_is_retried_from_scratch(server):
    async def cut_then_whole(request):
        if len(server.requests) == 1:
            # Half a tool call, then the connection drops: nothing was emitted yet.
            return sse_reply([*sse(*weather_calls("Par"), done=False), CUT])
        return sse_reply(sse(*weather_calls("Paris"), chunk({}, "tool_calls"), usage_chunk()))

    server.handler = cut_then_whole
    llm = make_llm(server)
    chunks = await reply(
        llm, tools=[get_weather], conn_options=APIConnectOptions(max_retry=1, retry_interval=0)
    )
    await llm.aclose()
    assert [c.arguments for c in calls_of(chunks)] == ['{"city": "Paris"}']
    assert len(server.requests) == 2


async def test_a_last_event_without_a_blank_line_is_read(server):
    async def terse(request):
        parts = sse(chunk({"content": "Hi"}), chunk({}, "stop"), usage_chunk(), done=False)
        return sse_reply([*parts, b"data: [DONE]"])

    server.handler = terse
    llm = make_llm(server)
    chunks = await reply(llm)
    await llm.aclose()
    assert text_of(chunks) == "Hi"
    assert chunks[-1].usage is not None
