"""google.LLM against a loopback server that speaks the Gemini API's documented wire format.

The server is the openai tests' trio + h11 server (``test_openai_wire.WireServer``) with
Gemini's rules: the key in ``x-goog-api-key``, ``POST /v1beta/models/{model}:
streamGenerateContent?alt=sse``, bodies checked as strictly as the API does (contents starting
with the user and alternating user/model, each model turn's ``functionCall`` parts answered by
as many ``functionResponse`` parts at the head of the next user turn, a Schema without
``additionalProperties``), errors as ``{"error": {"code", "message", "status"}}`` (a bad key is
a 400 INVALID_ARGUMENT with reason API_KEY_INVALID), and replies as SSE ``data:`` lines of
``GenerateContentResponse`` JSON with no end marker, from ai.google.dev (api/generate-content,
api/caching#Content, gemini-api/docs/function-calling, gemini-api/docs/troubleshooting).
``wire/google.jsonl`` is one tool-using exchange as this server saw it.
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
from tvoice_plugins import google
from tvoice_plugins.google._wire import gemini_schema, to_gemini_contents

API_KEY = "AIza-test-0123456789SECRET"
LIMIT = 10.0
NO_RETRY = APIConnectOptions(max_retry=0, timeout=5.0)
WIRE = Path(__file__).parent / "wire" / "google.jsonl"
PATH = "/v1beta/models/gemini-test:streamGenerateContent?alt=sse"


@function_tool
async def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


# What the API refuses before it answers.


def _part_errors(i: int, part: Any) -> list[str]:
    kinds = [k for k in ("text", "functionCall", "functionResponse") if k in part]
    if len(kinds) != 1:
        return [f"contents[{i}].parts: a part holds exactly one of text/functionCall/..."]
    if kinds == ["text"] and (not isinstance(part["text"], str) or not part["text"]):
        return [f"contents[{i}].parts: text must be a non-empty string"]
    if kinds == ["functionCall"]:
        call = part["functionCall"]
        if not isinstance(call.get("name"), str) or not isinstance(call.get("args"), dict):
            return [f"contents[{i}].parts: functionCall needs a name and args object"]
    if kinds == ["functionResponse"]:
        response = part["functionResponse"]
        if not isinstance(response.get("name"), str) or not isinstance(
            response.get("response"), dict
        ):
            return [f"contents[{i}].parts: functionResponse needs a name and a response object"]
    return []


def request_errors(body: Any) -> list[str]:
    """Every rule of the Gemini API ``body`` breaks (it answers 400 otherwise); [] if valid."""
    errors: list[str] = []
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return ["contents is not specified"]
    pending: list[str] = []  # names of the last model turn's calls
    for i, content in enumerate(contents):
        role = content.get("role")
        if role != ("user" if i % 2 == 0 else "model"):
            errors.append(
                "Please ensure that multiturn requests alternate between user and model, "
                f"starting with the user (contents[{i}] is {role!r})"
            )
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            errors.append(f"contents[{i}].parts must not be empty")
            continue
        for part in parts:
            errors += _part_errors(i, part)
        responses = [p["functionResponse"]["name"] for p in parts if "functionResponse" in p]
        head = [
            p["functionResponse"]["name"] for p in parts[: len(pending)] if "functionResponse" in p
        ]
        if pending and (head != pending or len(responses) != len(pending)):
            errors.append(
                "Please ensure that the number of function response parts is equal to the "
                "number of function call parts of the function call turn."
            )
        elif responses and not pending:
            errors.append(
                "Please ensure that function response turn comes immediately after a function "
                "call turn."
            )
        pending = [p["functionCall"]["name"] for p in parts if "functionCall" in p]
        if pending and role != "model":
            errors.append(f"contents[{i}]: function calls are the model's")
    system = body.get("systemInstruction")
    if system is not None and not all(isinstance(p.get("text"), str) for p in system["parts"]):
        errors.append("systemInstruction.parts must be text")
    for tool in body.get("tools", ()):
        for declaration in tool.get("functionDeclarations", ()):
            if "additionalProperties" in json.dumps(declaration):
                errors.append('Invalid JSON payload received. Unknown name "additionalProperties"')
    config = (body.get("toolConfig") or {}).get("functionCallingConfig")
    if config is not None:
        if config.get("mode") not in ("AUTO", "ANY", "NONE"):
            errors.append("functionCallingConfig.mode is not AUTO, ANY or NONE")
        if "allowedFunctionNames" in config and config["mode"] != "ANY":
            errors.append("allowedFunctionNames is only allowed with mode ANY")
    known = {"temperature", "maxOutputTokens", "topP", "topK"}
    if set(body.get("generationConfig", {})) - known:
        errors.append("unknown generationConfig fields")
    return errors


# The replies.


def response(*parts: dict, finish: str | None = None, usage: bool = False) -> dict:
    candidate: dict[str, Any] = {"content": {"parts": list(parts), "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-test"}
    if usage:
        chunk["usageMetadata"] = {
            "promptTokenCount": 21,
            "candidatesTokenCount": 9,
            "thoughtsTokenCount": 4,
            "totalTokenCount": 34,
        }
    return chunk


def sse(*chunks: Any) -> list[Part]:
    return [f"data: {c if isinstance(c, str) else json.dumps(c)}\r\n\r\n".encode() for c in chunks]


def text_reply(*pieces: str) -> list[Part]:
    chunks = [response({"text": p}) for p in pieces[:-1]]
    return sse(*chunks, response({"text": pieces[-1]}, finish="STOP", usage=True))


def weather_reply(*cities: str) -> list[Part]:
    calls = [
        {
            "functionCall": {"name": "get_weather", "args": {"city": c}},
            "thoughtSignature": f"sig-{c}",
        }
        for c in cities
    ]
    return sse(response({"text": "Let me check."}), response(*calls, finish="STOP", usage=True))


def sse_reply(parts: list[Part]) -> Reply:
    return Reply(200, [("content-type", "text/event-stream")], parts)


def error_body(code: int, status: str, message: str, **extra: Any) -> dict:
    return {"error": {"code": code, "message": message, "status": status, **extra}}


def error_reply(code: int, status: str, message: str, **extra: Any) -> Reply:
    body = error_body(code, status, message, **extra)
    return Reply(code, [("content-type", "application/json")], [json.dumps(body).encode()])


class GeminiServer(WireServer):
    """The Gemini API: ``url`` is the base URL (``.../v1beta``); ``log`` the wire transcript."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1beta"

    async def default_handler(self, request: Request) -> Reply:
        body = request.json()
        last = body["contents"][-1]["parts"]
        answered = any("functionResponse" in p for p in last)
        mode = body.get("toolConfig", {}).get("functionCallingConfig", {}).get("mode")
        if body.get("tools") and mode != "NONE" and not answered:
            return sse_reply(weather_reply("Paris", "Rome"))
        return sse_reply(text_reply("Hello", " there", "."))

    async def _check(self, request: Request) -> Reply | None:
        if request.headers.get("x-goog-api-key") != API_KEY:
            # The real message does not echo the key; this one does, so that the tests see the
            # plugin scrub it.
            got = request.headers.get("x-goog-api-key", "")
            detail = {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
            }
            return error_reply(
                400,
                "INVALID_ARGUMENT",
                f"API key not valid. Please pass a valid API key. ({got})",
                details=[detail],
            )
        if request.method != "POST" or request.path != PATH:
            return error_reply(404, "NOT_FOUND", f"{request.path} was not found")
        if request.headers.get("content-type") != "application/json":
            return error_reply(400, "INVALID_ARGUMENT", "content-type must be JSON")
        errors = request_errors(request.json())
        if errors:
            return error_reply(400, "INVALID_ARGUMENT", "; ".join(errors))
        return None

    async def _send(self, conn, stream, reply: Reply) -> bool:
        if self.requests:
            request = self.requests[-1]
            self.log.append({"client": {"method": request.method, "path": request.path,
                                        "body": request.json()}})  # fmt: skip
        for part in reply.parts:
            if isinstance(part, bytes) and part.startswith(b"data: "):
                data = part.decode().strip().removeprefix("data: ")
                try:
                    self.log.append({"server": json.loads(data)})
                except ValueError:
                    self.log.append({"server": data})
        return await super()._send(conn, stream, reply)


@pytest.fixture
async def server(nursery) -> GeminiServer:
    return await nursery.start(GeminiServer().run)


def make_llm(server, **options) -> google.LLM:
    options.setdefault("api_key", API_KEY)
    return google.LLM(model="gemini-test", base_url=server.url, **options)


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
    broken = make_llm(server, api_key="AIza-wrong")
    await check_llm(llm, tools=[get_weather], broken=broken, time_limit=LIMIT)
    await llm.aclose()
    await broken.aclose()


async def test_the_request_follows_the_api(server):
    llm = make_llm(
        server,
        temperature=0.4,
        max_output_tokens=200,
        headers={"x-goog-user-project": "p"},
        extra_body={"safetySettings": []},
    )
    chat = ChatContext()
    chat.add_message(role="system", content="You are terse.")
    chat.add_message(role="user", content="weather?")
    await reply(llm, chat, tools=[get_weather], tool_choice="get_weather")
    await llm.aclose()
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", PATH)
    assert request.headers["x-goog-api-key"] == API_KEY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-goog-user-project"] == "p"
    assert "authorization" not in request.headers
    assert request.json() == {
        "contents": [{"role": "user", "parts": [{"text": "weather?"}]}],
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "The weather in a city.",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                            "required": ["city"],
                        },
                    }
                ]
            }
        ],
        "toolConfig": {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
        },
        "generationConfig": {"temperature": 0.4, "maxOutputTokens": 200},
        "safetySettings": [],
    }


@pytest.mark.parametrize(
    ("choice", "mode"), [("auto", "AUTO"), ("required", "ANY"), ("none", "NONE")]
)
async def test_tool_choice(server, choice, mode):
    llm = make_llm(server)
    await reply(llm, tools=[get_weather], tool_choice=choice)
    await llm.aclose()
    assert server.requests[0].json()["toolConfig"] == {"functionCallingConfig": {"mode": mode}}


async def test_without_tools_no_tool_fields_are_sent(server):
    llm = make_llm(server)
    await reply(llm)
    await llm.aclose()
    body = server.requests[0].json()
    assert set(body) == {"contents"}


async def test_text_calls_usage_and_thought_signatures_sent_back(server):
    llm = make_llm(server)
    metrics = []
    llm.on("metrics_collected", metrics.append)
    chat = ctx("Weather in Paris and Rome?")
    chunks = await reply(llm, chat, tools=[get_weather])
    assert text_of(chunks) == "Let me check."
    calls = calls_of(chunks)
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert len({c.call_id for c in calls}) == 2
    usage = chunks[-1].usage
    # 9 candidate tokens and 4 of thinking are the reply's.
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (21, 13, 34)
    assert (metrics[0].prompt_tokens, metrics[0].completion_tokens) == (21, 13)
    chat.add_message(role="assistant", content="Let me check.")
    chat.items += calls
    for call, output in zip(calls, ["Sunny", "Rain"], strict=True):
        chat.items.append(FunctionCallOutput(call_id=call.call_id, name=call.name,
                                             output=output, is_error=output == "Rain"))  # fmt: skip
    assert text_of(await reply(llm, chat, tools=[get_weather])) == "Hello there."
    await llm.aclose()
    contents = server.requests[1].json()["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {"text": "Let me check."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
             "thoughtSignature": "sig-Paris"},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}},
             "thoughtSignature": "sig-Rome"},
        ],
    }  # fmt: skip
    assert contents[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"output": "Sunny"}}},
            {"functionResponse": {"name": "get_weather", "response": {"error": "Rain"}}},
        ],
    }


async def test_thought_parts_are_not_said(server):
    async def thinking(request):
        return sse_reply(sse(response({"text": "hmm", "thought": True}),
                             response({"text": "Hi"}, finish="STOP")))  # fmt: skip

    server.handler = thinking
    llm = make_llm(server)
    chunks = await reply(llm)
    await llm.aclose()
    assert text_of(chunks) == "Hi"
    assert all(c.usage is None for c in chunks)


@pytest.mark.parametrize(
    ("code", "status"), [(400, "INVALID_ARGUMENT"), (403, "PERMISSION_DENIED"), (404, "NOT_FOUND")]
)
async def test_client_errors_are_final(server, code, status):
    async def refuse(request):
        return error_reply(code, status, "no")

    server.handler = refuse
    llm = make_llm(server)
    with pytest.raises(APIStatusError) as caught:
        await reply(llm, conn_options=APIConnectOptions(max_retry=3, retry_interval=0))
    await llm.aclose()
    error = caught.value
    assert (error.status_code, error.retryable) == (code, False)
    assert error.body == {"code": code, "message": "no", "status": status}
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("code", "status"), [(429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL"), (503, "UNAVAILABLE")]
)
async def test_retryable_statuses_are_retried_then_succeed(server, code, status):
    async def flaky(request):
        if len(server.requests) == 1:
            return error_reply(code, status, "try again")
        return sse_reply(text_reply("Fine."))

    server.handler = flaky
    llm = make_llm(server)
    chunks = await reply(llm, conn_options=APIConnectOptions(max_retry=1, retry_interval=0))
    assert text_of(chunks) == "Fine."
    assert len(server.requests) == 2

    async def failing(request):
        return error_reply(code, status, "try again")

    server.handler = failing
    with pytest.raises(APIStatusError) as caught:
        await reply(llm)
    await llm.aclose()
    assert (caught.value.status_code, caught.value.retryable) == (code, True)


def mocked(handler) -> google.LLM:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return google.LLM(
        model="gemini-test", base_url="http://mock/v1beta", api_key=API_KEY, http_client=client
    )


def body_of(parts: list[Part]) -> bytes:
    return b"".join(p for p in parts if isinstance(p, bytes))


@pytest.mark.parametrize("header", [True, False], ids=["retry-after", "RetryInfo"])
async def test_the_wait_asked_for_is_honoured_on_the_trio_clock(autojump_clock, header):
    times = []

    def limited(request: httpx.Request) -> httpx.Response:
        times.append(trio.current_time())
        if len(times) == 1:
            info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"}
            body = error_body(429, "RESOURCE_EXHAUSTED", "quota", details=[info])
            headers = {"retry-after": "3"} if header else {}
            return httpx.Response(429, headers=headers, json=body)
        return httpx.Response(200, content=body_of(text_reply("Now.")))

    llm = mocked(limited)
    chunks = await reply(llm, conn_options=APIConnectOptions(max_retry=1, retry_interval=0))
    await llm.aclose()
    assert text_of(chunks) == "Now."
    assert times[1] - times[0] == 3.0


async def test_a_wait_longer_than_the_call_allows_is_final(autojump_clock):
    def limited(request: httpx.Request) -> httpx.Response:
        info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "57s"}
        body = error_body(429, "RESOURCE_EXHAUSTED", "quota", details=[info])
        return httpx.Response(429, json=body)

    llm = mocked(limited)
    start = trio.current_time()
    with pytest.raises(APIStatusError) as caught:
        await reply(llm, conn_options=APIConnectOptions(max_retry=3, retry_interval=0))
    await llm.aclose()
    assert (caught.value.retryable, caught.value.retry_after) == (False, 57.0)
    assert trio.current_time() == start


@pytest.mark.parametrize(
    ("status", "retryable"),
    [("RESOURCE_EXHAUSTED", True), ("UNAVAILABLE", True), ("INVALID_ARGUMENT", False)],
)
async def test_an_error_mid_stream(server, status, retryable):
    async def failing(request):
        return sse_reply(sse(response({"text": "Hel"}), error_body(503, status, "Overloaded")))

    server.handler = failing
    llm = make_llm(server)
    with pytest.raises(APIError, match="Overloaded") as caught:
        await reply(llm)
    await llm.aclose()
    assert caught.value.retryable is retryable
    assert caught.value.body["status"] == status


async def test_a_blocked_prompt_is_final(server):
    async def refuse(request):
        return sse_reply(sse({"promptFeedback": {"blockReason": "SAFETY"}}))

    server.handler = refuse
    llm = make_llm(server)
    with pytest.raises(APIError, match="SAFETY") as caught:
        await reply(llm, conn_options=APIConnectOptions(max_retry=2, retry_interval=0))
    await llm.aclose()
    assert not caught.value.retryable
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "parts",
    [
        [*sse(response({"text": "Hel"})), CUT],
        sse(response({"text": "Hel"})),  # ends cleanly, without a finishReason
        [*sse(response({"text": "Hel"})), b"data: {not json\r\n\r\n"],
        sse(response({"text": "Hel"}), {"candidates": {"0": 1}}),
        sse(response({"functionCall": {"args": {}}}, finish="STOP")),
    ],
    ids=["cut", "no-finish", "not-json", "wrong-shape", "nameless-call"],
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
        return sse_reply([*sse(response({"text": "Hel"})), HANG])

    server.handler = silent
    llm = make_llm(server)
    start = trio.current_time()
    with pytest.raises(APITimeout):
        await reply(llm, conn_options=APIConnectOptions(max_retry=0, timeout=0.5))
    await llm.aclose()
    assert trio.current_time() - start < 2.0


async def test_a_wrong_key_is_final_and_never_shown(server, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "AIza-wrong-SHOULD-NOT-LEAK"
    llm = make_llm(server, api_key=wrong)
    with pytest.raises(APIStatusError) as caught:
        await reply(llm, conn_options=APIConnectOptions(max_retry=2, retry_interval=0))
    await llm.aclose()
    error = caught.value
    assert (error.status_code, error.retryable) == (400, False)
    assert "API key not valid" in error.message
    assert error.body["details"][0]["reason"] == "API_KEY_INVALID"
    shown = [str(error), repr(error), str(error.body), repr(llm), repr(llm.client), str(vars(llm))]
    shown += [record.getMessage() for record in caplog.records]
    assert not [text for text in shown if wrong in text]
    assert len(server.requests) == 1


async def test_the_key_never_appears_in_logs_reprs_or_errors(server, caplog):
    caplog.set_level(logging.DEBUG)

    async def leaky(request):
        return error_reply(500, "INTERNAL", f"internal error with {API_KEY}")

    server.handler = leaky
    llm = make_llm(server)
    with pytest.raises(APIStatusError) as caught:
        await reply(llm, conn_options=APIConnectOptions(max_retry=1, retry_interval=0))
    await llm.aclose()
    shown = [str(caught.value), repr(caught.value), str(caught.value.body), repr(llm)]
    shown += [str(vars(llm)), repr(llm.client), llm.label]
    shown += [record.getMessage() for record in caplog.records]
    assert caplog.records  # the retry was logged
    assert not [text for text in shown if API_KEY in text]
    assert "***" in caught.value.message


def test_the_key_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="GOOGLE_API_KEY"):
        google.LLM()
    monkeypatch.setenv("GEMINI_API_KEY", "from-gemini-env")
    assert google.LLM().client.has_api_key
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-from-env")
    llm = google.LLM(model="models/gemini-2.5-pro")
    assert llm.client.base_url == "https://generativelanguage.googleapis.com/v1beta"
    assert llm.model == "gemini-2.5-pro"
    assert "AIza-from-env" not in repr(llm)
    with pytest.raises(ValueError, match="temperature"):
        google.LLM(temperature=3)


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
    assert str(seen[0].url) == "http://mock/v1beta/models/gemini-test:streamGenerateContent?alt=sse"


# The history, converted.


def recorded_late() -> ChatContext:
    """A tool that outlived its interrupted speech: its output recorded after a later message."""
    chat = ChatContext()
    chat.add_message(role="system", content="Be brief.")
    chat.add_message(role="user", content="Weather in Paris and Rome?")
    chat.add_message(role="assistant", content="Let me check.")
    chat.items.append(FunctionCall(call_id="c1", name="get_weather", arguments='{"city": "Paris"}'))
    chat.items.append(FunctionCall(call_id="c2", name="get_time", arguments="{}"))
    chat.items.append(
        FunctionCallOutput(call_id="c2", name="get_time", output="boom", is_error=True)
    )
    chat.add_message(role="user", content="Hello?")
    chat.items.append(
        FunctionCallOutput(call_id="c1", name="get_weather", output="Sunny", is_error=False)
    )
    chat.items.append(FunctionCall(call_id="c3", name="get_weather", arguments='{"city": "Oslo"}'))
    chat.add_message(role="user", content="And?")
    chat.add_message(role="user", content=" ")
    return chat  # fmt: skip


def test_the_history_is_converted_strictly():
    system, contents = to_gemini_contents(recorded_late(), signatures={"c1": "sig"})
    assert system == "Be brief."
    assert contents == [
        {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
        {
            "role": "model",
            "parts": [
                {"text": "Let me check."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                 "thoughtSignature": "sig"},
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"output": "Sunny"}}},
                {"functionResponse": {"name": "get_time", "response": {"error": "boom"}}},
                {"text": "Hello?"},
                {"text": "And?"},
            ],
        },
    ]  # fmt: skip
    assert request_errors({"contents": contents}) == []


def test_a_history_starting_with_the_model_gets_a_user_turn_first():
    chat = ChatContext()
    chat.add_message(role="assistant", content="Hi, how can I help?")
    _, contents = to_gemini_contents(chat)
    assert [c["role"] for c in contents] == ["user", "model"]
    assert to_gemini_contents(ChatContext())[1][0]["role"] == "user"


async def test_a_history_recorded_late_is_accepted_by_a_strict_server(server):
    llm = make_llm(server)
    assert text_of(await reply(llm, recorded_late())) == "Hello there."
    await llm.aclose()


def test_json_schemas_become_gemini_schemas():
    schema = {
        "type": "object",
        "additionalProperties": False,
        "$schema": "x",
        "properties": {
            "when": {"type": ["string", "null"], "description": "d"},
            "tags": {"type": "array", "items": {"type": "string", "additionalProperties": 1}},
        },
        "required": ["when"],
    }
    assert gemini_schema(schema) == {
        "type": "object",
        "properties": {
            "when": {"type": "string", "nullable": True, "description": "d"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["when"],
    }


async def test_the_wire_transcript(server):
    """A function call and its answer, chunk by chunk, as ``wire/google.jsonl`` shows them."""
    llm = make_llm(server, max_output_tokens=256)
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
    call = {"functionCall": {"name": "f", "args": {}}}
    answer = {"functionResponse": {"name": "f", "response": {"output": "x"}}}
    text = {"text": "hi"}

    def errors(*turns):
        roles = ["user", "model"] * 3
        contents = [{"role": r, "parts": list(t)} for r, t in zip(roles, turns, strict=False)]
        return " ".join(request_errors({"contents": contents}))

    assert errors([text], [call], [answer, text]) == ""
    assert "number of function response parts" in errors([text], [call], [text, answer])
    assert "number of function response parts" in errors([text], [call, call], [answer])
    assert "immediately after a function call turn" in errors([text], [text], [answer])
    wrong = {"contents": [{"role": "model", "parts": [text]}]}
    assert "alternate" in " ".join(request_errors(wrong))


def test_an_output_recorded_without_a_name_takes_its_calls():
    chat = ctx("Time?")
    chat.items.append(FunctionCall(call_id="c1", name="get_time", arguments="{}"))
    chat.items.append(FunctionCallOutput(call_id="c1", output="noon", is_error=False))
    _, contents = to_gemini_contents(chat)
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_time", "response": {"output": "noon"}}}
    ]
