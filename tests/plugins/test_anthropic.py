"""anthropic.LLM against a loopback server that speaks the Messages API's documented wire format.

The server is the openai tests' trio + h11 server (``test_openai_wire.WireServer``) with
Anthropic's rules: ``x-api-key`` and ``anthropic-version: 2023-06-01`` headers, ``POST
/v1/messages`` bodies checked as strictly as the API does (alternating turns, each ``tool_use``
answered by its ``tool_result`` at the head of the next user turn, ``max_tokens``), errors as
``{"type": "error", "error": {"type", "message"}}``, and replies as named SSE events
(message_start, content_block_start/delta/stop, message_delta, message_stop, ping, error), from
docs.anthropic.com (api/messages, api/messages-streaming, api/errors, tool-use).
``wire/anthropic.jsonl`` is one tool-using exchange as this server saw it.
"""

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.plugins.test_openai_wire import CUT, HANG, Part, Reply, Request, WireServer
from tvoice import APIConnectionError, APIConnectOptions, APIError, APIStatusError
from tvoice import APITimeoutError as APITimeout
from tvoice.llm import ChatContext, FunctionCall, FunctionCallOutput, function_tool
from tvoice.testing import check_llm
from tvoice_plugins import anthropic
from tvoice_plugins.anthropic._wire import MessageStream, to_anthropic_messages

API_KEY = "sk-ant-test-0123456789SECRET"
LIMIT = 10.0
NO_RETRY = APIConnectOptions(max_retry=0, timeout=5.0)
WIRE = Path(__file__).parent / "wire" / "anthropic.jsonl"


@function_tool
async def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


# What the API refuses before it answers.


def message_errors(body: Any) -> list[str]:
    """Every rule of the Messages API ``body`` breaks (it answers 400 otherwise); [] if valid."""
    errors: list[str] = []
    if not isinstance(body.get("model"), str):
        errors.append("model: Field required")
    if not isinstance(body.get("max_tokens"), int):
        errors.append("max_tokens: Field required")
    if "system" in body and not isinstance(body["system"], str | list):
        errors.append("system: Input should be a valid string or list")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*errors, "messages: at least one message is required"]
    has_tools = bool(body.get("tools"))
    pending: list[str] = []  # tool_use ids of the last assistant turn
    for i, message in enumerate(messages):
        role = message.get("role")
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            errors.append(f"messages.{i}: roles must alternate user/assistant, starting with user")
        content = message.get("content")
        if not isinstance(content, list) or not content:
            errors.append(f"messages.{i}: content must be a non-empty list of blocks")
            continue
        results = [b.get("tool_use_id") for b in content if b.get("type") == "tool_result"]
        if pending:
            if sorted(results) != sorted(pending):
                errors.append(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(sorted(set(pending) - set(results)))}"
                )
            kinds = [b.get("type") for b in content]
            if kinds[: len(pending)] != ["tool_result"] * len(pending):
                # The API's words (anthropics/anthropic-sdk-typescript#653).
                errors.append(
                    f"messages.{i}: Did not find {len(pending)} `tool_result` block(s) at the "
                    "beginning of this message. Messages following `tool_use` blocks must "
                    "begin with a matching number of `tool_result` blocks."
                )
        elif results:
            errors.append(
                f"messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{', '.join(results)}. Each `tool_result` block must have a corresponding "
                "`tool_use` block in the previous message."
            )
        pending = []
        for block in content:
            kind = block.get("type")
            if kind == "text":
                if not isinstance(block.get("text"), str) or not block["text"]:
                    errors.append(f"messages.{i}: text content blocks must be non-empty")
            elif kind == "tool_use":
                if role != "assistant":
                    errors.append(f"messages.{i}: tool_use blocks are the assistant's")
                if not isinstance(block.get("input"), dict):
                    errors.append(f"messages.{i}: tool_use.input: Input should be an object")
                if not (isinstance(block.get("id"), str) and isinstance(block.get("name"), str)):
                    errors.append(f"messages.{i}: tool_use needs an id and a name")
                pending.append(block.get("id"))
            elif kind == "tool_result":
                if role != "user" or not isinstance(block.get("content"), str | list):
                    errors.append(f"messages.{i}: a tool_result is a user block with content")
                if "is_error" in block and not isinstance(block["is_error"], bool):
                    errors.append(f"messages.{i}: tool_result.is_error must be a boolean")
            else:
                errors.append(f"messages.{i}: unknown block type {kind!r}")
            if kind in ("tool_use", "tool_result") and not has_tools:
                errors.append(
                    "Requests which include `tool_use` or `tool_result` blocks must define tools."
                )
    if pending:
        errors.append("the last assistant turn has tool_use blocks without tool_result blocks")
    last = messages[-1]
    if last.get("role") == "assistant":
        texts = [b["text"] for b in last.get("content") or [] if b.get("type") == "text"]
        if texts and texts[-1] != texts[-1].rstrip():
            errors.append("final assistant content cannot end with trailing whitespace")
    return errors


# The replies, event by event.


def event(kind: str, **fields: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()


def message_start(input_tokens: int = 25, cache_read: int = 10, cache_write: int = 5) -> bytes:
    usage = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": 1,
    }
    message = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-test",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    return event("message_start", message=message)


def text_block(index: int, *pieces: str) -> list[Part]:
    parts: list[Part] = [
        event("content_block_start", index=index, content_block={"type": "text", "text": ""})
    ]
    parts += [
        event("content_block_delta", index=index, delta={"type": "text_delta", "text": p})
        for p in pieces
    ]
    return [*parts, event("content_block_stop", index=index)]


def tool_block(index: int, call_id: str, name: str, *json_pieces: str) -> list[Part]:
    block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
    parts: list[Part] = [event("content_block_start", index=index, content_block=block)]
    parts += [
        event(
            "content_block_delta",
            index=index,
            delta={"type": "input_json_delta", "partial_json": p},
        )
        for p in json_pieces
    ]
    return [*parts, event("content_block_stop", index=index)]


def message_end(stop_reason: str = "end_turn", output_tokens: int = 15) -> list[Part]:
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    return [
        event("message_delta", delta=delta, usage={"output_tokens": output_tokens}),
        event("message_stop"),
    ]


def text_reply(*pieces: str) -> list[Part]:
    return [message_start(), event("ping"), *text_block(0, *pieces), *message_end()]


def weather_reply(*cities: str, text: str = "Let me check.") -> list[Part]:
    parts: list[Part] = [message_start(), *text_block(0, text)]
    for i, city in enumerate(cities, start=1):
        parts += tool_block(i, f"toolu_0{i}", "get_weather", "", '{"ci', 'ty": "', f'{city}"}}')
    return [*parts, *message_end("tool_use", 40)]


def sse_reply(parts: list[Part]) -> Reply:
    return Reply(200, [("content-type", "text/event-stream"), ("request-id", "req_01")], parts)


def error_reply(status: int, kind: str, message: str, **headers: str) -> Reply:
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_9"}
    return Reply(
        status,
        [("content-type", "application/json"), ("request-id", "req_9"), *headers.items()],
        [json.dumps(body).encode()],
    )


class AnthropicServer(WireServer):
    """The Messages API: ``url`` is the base URL (no ``/v1``); ``log`` the wire transcript."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def default_handler(self, request: Request) -> Reply:
        body = request.json()
        last = body["messages"][-1]["content"]
        answered = any(b.get("type") == "tool_result" for b in last)
        if body.get("tools") and body["tool_choice"]["type"] != "none" and not answered:
            return sse_reply(weather_reply("Paris", "Rome"))
        return sse_reply(text_reply("Hello", " there", "."))

    async def _check(self, request: Request) -> Reply | None:
        if request.headers.get("x-api-key") != API_KEY:
            # The real message does not echo the key; this one does, so that the tests see the
            # plugin scrub it.
            got = request.headers.get("x-api-key", "")
            return error_reply(401, "authentication_error", f"invalid x-api-key {got}")
        if request.headers.get("anthropic-version") != "2023-06-01":
            return error_reply(400, "invalid_request_error", "anthropic-version: header required")
        if request.headers.get("content-type") != "application/json":
            return error_reply(400, "invalid_request_error", "content-type must be JSON")
        if (request.method, request.path) != ("POST", "/v1/messages"):
            return error_reply(404, "not_found_error", "Not found")
        errors = message_errors(request.json())
        if errors:
            return error_reply(400, "invalid_request_error", "; ".join(errors))
        return None

    async def _send(self, conn, stream, reply: Reply) -> bool:
        if self.requests:
            request = self.requests[-1]
            self.log.append({"client": {"method": request.method, "path": request.path,
                                        "body": request.json()}})  # fmt: skip
        for part in reply.parts:
            if isinstance(part, bytes) and part.startswith(b"event: "):
                name, data = part.decode().strip().split("\n")
                name, data = name.removeprefix("event: "), data.removeprefix("data: ")
                try:
                    self.log.append({"server": {"event": name, "data": json.loads(data)}})
                except ValueError:
                    self.log.append({"server": {"event": name, "data": data}})
        return await super()._send(conn, stream, reply)


@pytest.fixture
async def server(nursery) -> AnthropicServer:
    return await nursery.start(AnthropicServer().run)


def make_llm(server, **options) -> anthropic.LLM:
    options.setdefault("api_key", API_KEY)
    return anthropic.LLM(model="claude-test", base_url=server.url, **options)


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


async def test_conformance(server):
    llm = make_llm(server)
    broken = make_llm(server, api_key="sk-ant-wrong")
    await check_llm(llm, tools=[get_weather], broken=broken, time_limit=LIMIT)
    await llm.aclose()
    await broken.aclose()


async def test_the_request_follows_the_api(server):
    llm = make_llm(
        server,
        max_tokens=300,
        temperature=0.2,
        top_k=5,
        headers={"anthropic-beta": "x"},
        extra_body={"metadata": {"user_id": "u1"}},
    )
    chat = ChatContext()
    chat.add_message(role="system", content="You are terse.")
    chat.add_message(role="user", content="weather?")
    chat.add_message(role="developer", content="Use metric units.")
    await reply(llm, chat, tools=[get_weather], tool_choice="get_weather")
    await llm.aclose()
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["anthropic-beta"] == "x"
    assert "authorization" not in request.headers
    body = request.json()
    assert body == {
        "model": "claude-test",
        "max_tokens": 300,
        "system": "You are terse.\n\nUse metric units.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "weather?"}]}],
        "stream": True,
        "temperature": 0.2,
        "top_k": 5,
        "tools": [
            {
                "name": "get_weather",
                "description": "The weather in a city.",
                "input_schema": get_weather.schema["parameters"],
            }
        ],
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "metadata": {"user_id": "u1"},
    }


@pytest.mark.parametrize(
    ("choice", "wire"),
    [("auto", {"type": "auto"}), ("required", {"type": "any"}), ("none", {"type": "none"})],
)
async def test_tool_choice(server, choice, wire):
    llm = make_llm(server)
    await reply(llm, tools=[get_weather], tool_choice=choice)
    await llm.aclose()
    assert server.requests[0].json()["tool_choice"] == wire


async def test_without_tools_no_tool_fields_are_sent(server):
    llm = make_llm(server)
    await reply(llm)
    await llm.aclose()
    body = server.requests[0].json()
    assert not {"tools", "tool_choice", "temperature", "system"} & set(body)
    assert body["max_tokens"] == 1024


async def test_text_tool_calls_and_usage(server):
    llm = make_llm(server)
    metrics = []
    llm.on("metrics_collected", metrics.append)
    chunks = await reply(llm, tools=[get_weather])
    await llm.aclose()
    assert text_of(chunks) == "Let me check."
    assert [(c.call_id, c.name, c.arguments) for c in calls_of(chunks)] == [
        ("toolu_01", "get_weather", '{"city": "Paris"}'),
        ("toolu_02", "get_weather", '{"city": "Rome"}'),
    ]
    usage = chunks[-1].usage
    # 25 input tokens + 5 written to the cache + 10 read from it; 40 output tokens.
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (40, 40, 80)
    (m,) = metrics
    assert (m.prompt_tokens, m.completion_tokens) == (40, 40)


async def test_a_tool_without_input_deltas_gets_its_start_input(server):
    async def bare(request):
        block = {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {}}
        parts = [
            message_start(),
            event("content_block_start", index=0, content_block=block),
            event("content_block_stop", index=0),
            *message_end("tool_use"),
        ]
        return sse_reply(parts)

    server.handler = bare
    llm = make_llm(server)
    chunks = await reply(llm, tools=[get_weather])
    await llm.aclose()
    assert [c.arguments for c in calls_of(chunks)] == ["{}"]


async def test_unknown_events_and_blocks_are_ignored(server):
    async def novel(request):
        thinking = {"type": "thinking", "thinking": ""}
        parts = [
            message_start(),
            event("content_block_start", index=0, content_block=thinking),
            event("content_block_delta", index=0, delta={"type": "thinking_delta"}),
            event("content_block_delta", index=0, delta={"type": "signature_delta"}),
            event("content_block_stop", index=0),
            event("something_new", payload=1),
            *text_block(1, "Hi"),
            *message_end(),
        ]  # fmt: skip
        return sse_reply(parts)

    server.handler = novel
    llm = make_llm(server)
    assert text_of(await reply(llm)) == "Hi"
    await llm.aclose()


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, "authentication_error"), (403, "permission_error"), (400, "invalid_request_error"),
     (404, "not_found_error"), (413, "request_too_large")],
)  # fmt: skip
async def test_client_errors_are_final(server, status, kind):
    async def refuse(request):
        return error_reply(status, kind, "no")

    server.handler = refuse
    llm = make_llm(server)
    with pytest.raises(APIStatusError) as caught:
        await reply(llm, conn_options=APIConnectOptions(max_retry=3, retry_interval=0))
    await llm.aclose()
    error = caught.value
    assert (error.status_code, error.retryable, error.request_id) == (status, False, "req_9")
    assert error.body == {"type": kind, "message": "no"}
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("status", "kind"), [(429, "rate_limit_error"), (500, "api_error"), (529, "overloaded_error")]
)
async def test_retryable_statuses_are_retried_then_succeed(server, status, kind):
    async def flaky(request):
        if len(server.requests) == 1:
            return error_reply(status, kind, "try again")
        return sse_reply(text_reply("Fine."))

    server.handler = flaky
    llm = make_llm(server)
    chunks = await reply(llm, conn_options=APIConnectOptions(max_retry=1, retry_interval=0))
    assert text_of(chunks) == "Fine."
    assert len(server.requests) == 2

    async def failing(request):
        return error_reply(status, kind, "try again")

    server.handler = failing
    with pytest.raises(APIStatusError) as caught:
        await reply(llm)
    await llm.aclose()
    assert (caught.value.status_code, caught.value.retryable) == (status, True)


def mocked(handler) -> anthropic.LLM:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return anthropic.LLM(base_url="http://mock", api_key=API_KEY, http_client=client)


def body_of(parts: list[Part]) -> bytes:
    return b"".join(p for p in parts if isinstance(p, bytes))


async def test_retry_after_is_honoured_on_the_trio_clock(autojump_clock):
    times = []

    def limited(request: httpx.Request) -> httpx.Response:
        times.append(trio.current_time())
        if len(times) == 1:
            body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}
            return httpx.Response(429, headers={"retry-after": "3"}, json=body)
        return httpx.Response(200, content=body_of(text_reply("Now.")))

    llm = mocked(limited)
    chunks = await reply(llm, conn_options=APIConnectOptions(max_retry=1, retry_interval=0))
    await llm.aclose()
    assert text_of(chunks) == "Now."
    assert times[1] - times[0] == 3.0


async def test_a_retry_after_longer_than_the_call_allows_is_final(autojump_clock):
    def limited(request: httpx.Request) -> httpx.Response:
        body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}
        return httpx.Response(429, headers={"retry-after": "120"}, json=body)

    llm = mocked(limited)
    start = trio.current_time()
    with pytest.raises(APIStatusError) as caught:
        await reply(llm, conn_options=APIConnectOptions(max_retry=3, retry_interval=0))
    await llm.aclose()
    assert (caught.value.retryable, caught.value.retry_after) == (False, 120.0)
    assert trio.current_time() == start


@pytest.mark.parametrize(
    ("kind", "retryable"),
    [("overloaded_error", True), ("rate_limit_error", True), ("api_error", True),
     ("invalid_request_error", False), ("authentication_error", False)],
)  # fmt: skip
async def test_an_error_event_mid_stream(server, kind, retryable):
    async def failing(request):
        error = {"type": kind, "message": "Overloaded"}
        return sse_reply([message_start(), event("ping"), event("error", error=error)])

    server.handler = failing
    llm = make_llm(server)
    with pytest.raises(APIError, match="Overloaded") as caught:
        await reply(llm)
    await llm.aclose()
    assert caught.value.retryable is retryable
    assert caught.value.body == {"type": kind, "message": "Overloaded"}


async def test_overloaded_before_any_text_is_retried(server):
    async def overloaded_once(request):
        if len(server.requests) == 1:
            error = {"type": "overloaded_error", "message": "Overloaded"}
            return sse_reply([message_start(), event("error", error=error)])
        return sse_reply(text_reply("Back."))

    server.handler = overloaded_once
    llm = make_llm(server)
    chunks = await reply(llm, conn_options=APIConnectOptions(max_retry=1, retry_interval=0))
    await llm.aclose()
    assert text_of(chunks) == "Back."


@pytest.mark.parametrize(
    "parts",
    [
        [message_start(), *text_block(0, "Hel"), CUT],
        [message_start(), *text_block(0, "Hel")],  # ends cleanly, without message_stop
        [message_start(), b"event: content_block_start\ndata: {not json\n\n"],
        [message_start(), event("content_block_delta", index=3, delta={"type": "text_delta"})],
        [*text_block(0, "Hi"), *message_end()],  # no message_start
        [message_start(), *tool_block(0, "toolu_1", "")[:1]],  # a tool_use without a name
    ],
    ids=["cut", "no-stop", "not-json", "unknown-block", "no-start", "nameless-tool"],
)
async def test_a_broken_stream_is_a_connection_error(server, parts):
    async def broken(request):
        return sse_reply(parts)

    server.handler = broken
    llm = make_llm(server)
    with pytest.raises(APIConnectionError):
        await reply(llm)
    await llm.aclose()


async def test_a_silent_server_times_out(server):
    async def silent(request):
        return sse_reply([message_start(), *text_block(0, "Hel")[:2], HANG])

    server.handler = silent
    llm = make_llm(server)
    start = trio.current_time()
    with pytest.raises(APITimeout):
        await reply(llm, conn_options=APIConnectOptions(max_retry=0, timeout=0.5))
    await llm.aclose()
    assert trio.current_time() - start < 2.0


async def test_a_wrong_key_is_final_and_never_shown(server, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "sk-ant-wrong-SHOULD-NOT-LEAK"
    llm = make_llm(server, api_key=wrong)
    with pytest.raises(APIStatusError) as caught:
        await reply(llm, conn_options=APIConnectOptions(max_retry=2, retry_interval=0))
    await llm.aclose()
    error = caught.value
    assert (error.status_code, error.retryable) == (401, False)
    assert "invalid x-api-key" in error.message
    shown = [str(error), repr(error), str(error.body), repr(llm), repr(llm.client), str(vars(llm))]
    shown += [record.getMessage() for record in caplog.records]
    assert not [text for text in shown if wrong in text]


async def test_the_key_never_appears_in_logs_reprs_or_errors(server, caplog):
    caplog.set_level(logging.DEBUG)

    async def leaky(request):
        error = {"type": "api_error", "message": f"internal error with {API_KEY}"}
        return sse_reply([message_start(), event("error", error=error)])

    server.handler = leaky
    llm = make_llm(server)
    with pytest.raises(APIError) as caught:
        await reply(llm, conn_options=APIConnectOptions(max_retry=1, retry_interval=0))
    await llm.aclose()
    shown = [str(caught.value), repr(caught.value), str(caught.value.body), repr(llm)]
    shown += [str(vars(llm)), repr(llm.client), llm.label]
    shown += [record.getMessage() for record in caplog.records]
    assert caplog.records  # the retry was logged
    assert not [text for text in shown if API_KEY in text]
    assert "***" in caught.value.message


def test_the_key_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ValueError, match="ANTHROPIC_API_KEY"):
        anthropic.LLM()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    llm = anthropic.LLM()
    assert llm.client.has_api_key
    assert llm.client.base_url == "https://api.anthropic.com"
    assert "sk-ant-from-env" not in repr(llm)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:1/")
    assert anthropic.LLM().client.base_url == "http://127.0.0.1:1"
    with pytest.raises(ValueError, match="temperature"):
        anthropic.LLM(temperature=1.5)


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
        return httpx.Response(200, content=body_of(text_reply("Mocked.")))

    llm = mocked(handle)
    assert text_of(await reply(llm)) == "Mocked."
    await llm.aclose()
    assert llm.client.http_client.is_closed
    assert str(seen[0].url) == "http://mock/v1/messages"


# The history, converted.


def recorded_late() -> ChatContext:
    """A tool that outlived its interrupted speech: its output recorded after a later message."""
    chat = ChatContext()
    chat.add_message(role="system", content="Be brief.")
    chat.add_message(role="user", content="Weather in Paris and Rome?")
    chat.add_message(role="assistant", content="Let me check. ")
    chat.items.append(FunctionCall(call_id="c1", name="get_weather", arguments='{"city": "Paris"}'))
    chat.items.append(FunctionCall(call_id="c2", name="get_weather", arguments='{"city": "Rome"}'))
    chat.items.append(
        FunctionCallOutput(call_id="c2", name="get_weather", output="boom", is_error=True)
    )
    chat.add_message(role="user", content="Hello?")
    chat.items.append(
        FunctionCallOutput(call_id="c1", name="get_weather", output="Sunny", is_error=False)
    )
    chat.items.append(FunctionCall(call_id="c3", name="get_weather", arguments='{"city": "Oslo"}'))
    chat.add_message(role="user", content="And?")
    chat.add_message(role="user", content="")
    return chat  # fmt: skip


def test_the_history_is_converted_strictly():
    system, messages = to_anthropic_messages(recorded_late())
    assert system == "Be brief."
    assert messages == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "c2", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "Sunny"},
                {"type": "tool_result", "tool_use_id": "c2", "content": "boom", "is_error": True},
                {"type": "text", "text": "Hello?"},
                {"type": "text", "text": "And?"},
            ],
        },
    ]  # fmt: skip
    assert message_errors({"model": "m", "max_tokens": 1, "messages": messages, "tools": [1]}) == []


def test_a_history_starting_with_the_assistant_gets_a_user_turn_first():
    chat = ChatContext()
    chat.add_message(role="assistant", content="Hi, how can I help?")
    _, messages = to_anthropic_messages(chat)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert to_anthropic_messages(ChatContext())[1][0]["role"] == "user"


def test_without_tools_the_calls_are_told_as_text():
    _, messages = to_anthropic_messages(recorded_late(), with_tools=False)
    blocks = [b for m in messages for b in m["content"]]
    assert {b["type"] for b in blocks} == {"text"}
    assert message_errors({"model": "m", "max_tokens": 1, "messages": messages}) == []


async def test_a_history_recorded_late_is_accepted_by_a_strict_server(server):
    llm = make_llm(server)
    assert text_of(await reply(llm, recorded_late(), tools=[get_weather])) == "Hello there."
    assert text_of(await reply(llm, recorded_late())) == "Hello there."
    await llm.aclose()


def test_the_stream_reader_alone():
    stream = MessageStream()
    updates = [stream.push(p.decode().split("data: ")[1]) for p in weather_reply("Oslo")]
    texts = [u.text for u in updates if u and u.text]
    calls = [u.tool_call for u in updates if u and u.tool_call]
    assert (texts, [c.arguments for c in calls]) == (["Let me check."], ['{"city": "Oslo"}'])
    assert (stream.stopped, stream.stop_reason) == (True, "tool_use")


async def test_the_wire_transcript(server):
    """A tool call and its answer, event by event, as ``wire/anthropic.jsonl`` shows them."""
    llm = make_llm(server, max_tokens=256)
    chat = ChatContext()
    chat.add_message(role="system", content="You are a weather assistant. Be brief.")
    chat.add_message(role="user", content="What's the weather in Paris and Rome?")
    chunks = await reply(llm, chat, tools=[get_weather])
    chat.add_message(role="assistant", content=text_of(chunks))
    chat.items += calls_of(chunks)
    for call in calls_of(chunks):
        output = await get_weather(json.loads(call.arguments)["city"])
        chat.items.append(FunctionCallOutput(call_id=call.call_id, name=call.name,
                                             output=output, is_error=False))  # fmt: skip
    assert text_of(await reply(llm, chat, tools=[get_weather])) == "Hello there."
    await llm.aclose()
    lines = [json.loads(line) for line in WIRE.read_text().splitlines() if line.strip()]
    expected = [line for line in lines if "note" not in line]
    assert server.log == expected, "\n".join(json.dumps(e) for e in server.log)


def test_the_strict_check_refuses_what_the_api_refuses():
    use = {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "x"}
    text = {"type": "text", "text": "hi"}

    def errors(*turns, roles=("user", "assistant") * 3, tools=(1,)):
        messages = [{"role": r, "content": list(t)} for r, t in zip(roles, turns, strict=False)]
        body = {"model": "m", "max_tokens": 1, "messages": messages, "tools": list(tools)}
        return " ".join(message_errors(body))

    assert errors([text], [use], [result, text]) == ""
    assert "at the beginning" in errors([text], [use], [text, result])
    assert "without `tool_result`" in errors([text], [use], [text])
    assert "unexpected `tool_use_id`" in errors([text], [text], [result])
    assert "alternate" in errors([text], [text], roles=("user", "user"))
    assert "must define tools" in errors([text], [use], [result], tools=())


def test_usage_repeated_in_message_delta_is_not_counted_twice():
    stream = MessageStream()
    stream.push(message_start().decode().split("data: ")[1])
    usage = {"input_tokens": 30, "cache_read_input_tokens": 10, "output_tokens": 7}
    stream.push(json.dumps({"type": "message_delta", "delta": {}, "usage": usage}))
    # 30 + 10 as the delta says, and the 5 written to the cache from message_start.
    assert stream.usage.prompt_tokens == 45
    assert stream.usage.completion_tokens == 7
    with pytest.raises(ValueError, match="token count"):
        stream.push('{"type": "message_delta", "delta": {}, "usage": {"output_tokens": "7"}}')


async def test_prompt_caching_and_one_call_at_a_time(server):
    llm = make_llm(server, caching="ephemeral", parallel_tool_calls=False)
    chat = ChatContext()
    chat.add_message(role="system", content="Be brief.")
    chat.add_message(role="user", content="weather?")
    await reply(llm, chat, tools=[get_weather])
    await llm.aclose()
    body = server.requests[0].json()
    cached = {"type": "ephemeral"}
    assert body["system"] == [{"type": "text", "text": "Be brief.", "cache_control": cached}]
    assert body["tools"][-1]["cache_control"] == cached
    assert body["messages"][-1]["content"][-1]["cache_control"] == cached
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
