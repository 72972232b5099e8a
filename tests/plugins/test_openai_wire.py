"""A loopback server that replays the OpenAI HTTP API's documented wire format, and the wire
module's own tests.

The server is HTTP/1.1 on trio and h11: it checks ``Authorization: Bearer``, keeps every request
it got, and answers what the test's handler says, part by part: bytes, pauses, a cut connection
or a silence. The other openai tests import it from here.
"""

import email.parser
import email.policy
import json
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import h11
import httpx
import pytest
import trio

from tests.llm.strict_openai import message_errors
from tvoice_plugins._http import SseDecoder, retry_after
from tvoice_plugins.openai._wire import (
    PcmDecoder,
    ToolCallAssembler,
    parse_chat_chunk,
    parse_transcription_event,
)

API_KEY = "sk-test-0123456789abcdefSECRET"


class Cut:
    """A part that closes the connection where it stands (mid-body)."""


class Hang:
    """A part that stops sending, without closing."""


CUT, HANG = Cut(), Hang()
Part = bytes | float | Cut | Hang


@attrs.define
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, Any]:
        """A multipart form: {name: text} for fields, {name: (filename, type, bytes)} for files."""
        raw = f"Content-Type: {self.headers['content-type']}\r\n\r\n".encode() + self.body
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if part.get_filename():
                fields[name] = (part.get_filename(), part.get_content_type(), payload)
            else:
                fields[name] = payload.decode()
        return fields


@attrs.define
class Reply:
    status: int = 200
    headers: list[tuple[str, str]] = attrs.field(factory=list)
    parts: list[Part] = attrs.field(factory=list)


def error_reply(status: int, message: str, *, type_: str = "invalid_request_error", **headers):
    """An error as OpenAI sends it: ``{"error": {"message", "type", "param", "code"}}``."""
    body = {"error": {"message": message, "type": type_, "param": None, "code": None}}
    return Reply(
        status,
        [("content-type", "application/json"), *headers.items()],
        [json.dumps(body).encode()],
    )


def sse(*events: Any, done: bool = True, pause: float = 0.0) -> list[Part]:
    """The parts of an event stream: each event a ``data:`` line (JSON unless bytes/str)."""
    parts: list[Part] = []
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event)
        parts.append(f"data: {data}\n\n".encode())
        if pause:
            parts.append(pause)
    if done:
        parts.append(b"data: [DONE]\n\n")
    return parts


def sse_reply(parts: list[Part]) -> Reply:
    return Reply(200, [("content-type", "text/event-stream")], parts)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra) -> dict:
    """A ``chat.completion.chunk``."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-test",
        "choices": choices,
        **extra,
    }


def usage_chunk(prompt: int = 11, completion: int = 7) -> dict:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    return chunk(None, usage={**usage, "total_tokens": prompt + completion})


def text_stream(*pieces: str, pause: float = 0.0) -> list[Part]:
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": p}) for p in pieces]
    events += [chunk({}, "stop"), usage_chunk()]
    return sse(*events, pause=pause)


Handler = Callable[[Request], Awaitable[Reply]]


class WireServer:
    """The fake API: ``url`` is its base URL (``http://127.0.0.1:PORT/v1``)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.handler: Handler = self.default_handler
        self.port = 0
        self.connections = 0
        self.strict_messages = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def default_handler(self, request: Request) -> Reply:
        return sse_reply(text_stream("Hello", " there", "."))

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._serve, listeners)
            task_status.started(self)

    async def _serve(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        async with stream:
            while True:
                try:
                    request = await self._read_request(conn, stream)
                except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
                    return
                if request is None:
                    return
                self.requests.append(request)
                reply = await self._check(request) or await self.handler(request)
                if not await self._send(conn, stream, reply):
                    return
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()

    async def _check(self, request: Request) -> Reply | None:
        """What the hosted API refuses before it looks at the request."""
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            # OpenAI's message names (a masked form of) the key it got; this one names all
            # of it, so the tests see that the plugin scrubs it.
            got = request.headers.get("authorization", "").removeprefix("Bearer ")
            return error_reply(
                401, f"Incorrect API key provided: {got}.", type_="invalid_request_error"
            )
        if request.path.endswith("/chat/completions") and self.strict_messages:
            errors = message_errors(request.json().get("messages"))
            if errors:
                return error_reply(400, "Invalid 'messages': " + "; ".join(errors))
        return None

    async def _read_request(self, conn: h11.Connection, stream: trio.SocketStream):
        head = await _next_event(conn, stream)
        if not isinstance(head, h11.Request):
            return None
        body = b""
        while True:
            event = await _next_event(conn, stream)
            if isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return None
        headers = {k.decode().lower(): v.decode() for k, v in head.headers}
        return Request(head.method.decode(), head.target.decode(), headers, body)

    async def _send(self, conn: h11.Connection, stream: trio.SocketStream, reply: Reply) -> bool:
        """Send ``reply``; False if the connection was cut or broke."""
        headers = [("transfer-encoding", "chunked"), *reply.headers]
        try:
            head = h11.Response(status_code=reply.status, headers=headers)
            await stream.send_all(conn.send(head))
            for part in reply.parts:
                if isinstance(part, Cut):
                    await stream.aclose()
                    return False
                if isinstance(part, Hang):
                    await trio.sleep_forever()
                if isinstance(part, float):
                    await trio.sleep(part)
                elif isinstance(part, bytes):
                    await stream.send_all(conn.send(h11.Data(data=part)))
            await stream.send_all(conn.send(h11.EndOfMessage()))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True


async def _next_event(conn: h11.Connection, stream: trio.SocketStream):
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        data = await stream.receive_some(65536)
        conn.receive_data(data)  # b"" = the client closed


@pytest.fixture
async def server(nursery) -> WireServer:
    return await nursery.start(WireServer().run)


# The wire module on its own.


def test_sse_decoder_follows_the_event_stream_format():
    decoder = SseDecoder()
    lines = [": keep-alive", "event: update", "data: one", "data:two", "", "data: x", "", ""]
    events = [e for line in lines if (e := decoder.push(line)) is not None]
    assert [(e.event, e.data) for e in events] == [("update", "one\ntwo"), ("message", "x")]
    decoder.push("data: tail")
    assert decoder.flush().data == "tail"
    assert decoder.flush() is None


def test_chat_chunks_parse_and_malformed_ones_are_refused():
    delta = parse_chat_chunk(json.dumps(chunk({"content": "Hi"})))
    assert (delta.content, delta.finished, delta.usage) == ("Hi", False, None)
    usage = parse_chat_chunk(json.dumps(usage_chunk(3, 4))).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (3, 4, 7)
    assert parse_chat_chunk(json.dumps(chunk({}, "stop"))).finished
    for bad in ("{", "[1]", '{"choices": 3}', '{"choices": [{"delta": {"content": 5}}]}'):
        with pytest.raises(ValueError):  # noqa: PT011
            parse_chat_chunk(bad)
    assert parse_chat_chunk('{"error": {"message": "overloaded"}}').error == {
        "message": "overloaded"
    }


def test_tool_calls_are_assembled_from_pieces_by_index():
    calls = ToolCallAssembler(call_id_prefix="req")
    pieces = [
        {"index": 0, "id": "call_a", "function": {"name": "f", "arguments": ""}},
        {"index": 1, "id": "call_b", "type": "function", "function": {"name": "g"}},
        {"index": 0, "function": {"arguments": '{"x": '}},
        {"index": 1, "function": {"arguments": "{}"}},
        {"index": 0, "function": {"arguments": "1}"}},
    ]
    for piece in pieces:
        calls.push(piece)
    done = calls.finish()
    assert [(c.call_id, c.name, c.arguments) for c in done] == [
        ("call_a", "f", '{"x": 1}'),
        ("call_b", "g", "{}"),
    ]
    assert not calls
    # Without indexes: an id starts a call, the pieces after it continue it.
    for piece in [
        {"id": "x", "function": {"name": "f", "arguments": "{"}},
        {"function": {"arguments": "}"}},
        {"id": "y", "function": {"name": "g", "arguments": "{}"}},
    ]:
        calls.push(piece)
    assert [(c.call_id, c.arguments) for c in calls.finish()] == [("x", "{}"), ("y", "{}")]
    calls.push({"index": 0, "function": {"arguments": "{}"}})
    with pytest.raises(ValueError, match="no function name"):
        calls.finish()


def test_transcription_events():
    assert parse_transcription_event('{"type": "transcript.text.delta", "delta": " Hi"}') == (
        "delta",
        " Hi",
    )
    assert parse_transcription_event('{"type": "transcript.text.done", "text": "Hi"}') == (
        "done",
        "Hi",
    )
    with pytest.raises(ValueError):  # noqa: PT011
        parse_transcription_event('{"type": "transcript.text.done"}')


def test_pcm_decoder_keeps_a_split_sample_for_the_next_piece():
    decoder = PcmDecoder()
    assert decoder.push(b"\x01") is None
    frame = decoder.push(b"\x00\x02\x00\x03")
    assert frame.sample_rate == 24000
    assert frame.data[:, 0].tolist() == [1, 2]
    assert decoder.pending == 1


def test_retry_after_in_seconds_milliseconds_or_a_date():
    assert retry_after(httpx.Headers({"retry-after": "2"})) == 2.0
    assert retry_after(httpx.Headers({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    date = "Wed, 21 Oct 2015 07:28:10 GMT"
    assert retry_after(httpx.Headers({"retry-after": date}), now=1445412487.0) == 3.0
    assert retry_after(httpx.Headers({"retry-after": "soon"})) is None
    assert retry_after(httpx.Headers()) is None


def test_clients_share_one_tls_context_and_plain_http_loads_no_certificates():
    from tvoice_plugins import openai

    hosted = [openai.LLM(api_key="k"), openai.TTS(api_key="k"), openai.STT(api_key="k")]
    contexts = {id(model._client._verify) for model in hosted}
    assert len(contexts) == 1  # loaded once for the process, not once per model
    assert isinstance(hosted[0]._client._verify, ssl.SSLContext)
    local = openai.LLM(base_url="http://127.0.0.1:8080/v1", api_key="unused")
    assert local._client._verify is False
