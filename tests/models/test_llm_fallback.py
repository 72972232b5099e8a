"""llm.FallbackAdapter: each LLM gets its own retries, then the next one answers the request."""

import pytest
import trio

from tvoice import APIConnectionError, APIError, APIStatusError, APITimeoutError
from tvoice._utils import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, FallbackPool
from tvoice.llm import (
    LLM,
    ChatChunk,
    ChatContext,
    ChoiceDelta,
    CompletionUsage,
    FallbackAdapter,
    LLMStream,
)
from tvoice.metrics import LLMMetrics


class ScriptedLLM(LLM):
    """Answers ``text`` after ``ttft`` s; or fails every attempt with ``error``; or hangs.

    ``requests`` records the trio time of each attempt (retries included).
    """

    def __init__(
        self,
        name: str,
        *,
        text: str = "",
        ttft: float = 0.1,
        error: APIError | Exception | None = None,
        fail_after_text: bool = False,
        hang: bool = False,
    ) -> None:
        super().__init__()
        self.name = name
        self.text = text
        self.ttft = ttft
        self.error = error
        self.fail_after_text = fail_after_text
        self.hang = hang
        self.requests: list[float] = []
        self.options: list[APIConnectOptions] = []

    @property
    def label(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<LLM {self.name}>"

    def chat(
        self,
        *,
        chat_ctx,
        tools=(),
        tool_choice="auto",
        conn_options=DEFAULT_API_CONNECT_OPTIONS,
        extra=None,
    ) -> LLMStream:
        self.options.append(conn_options)
        return ScriptedStream(
            self, chat_ctx=chat_ctx, tools=tools, tool_choice=tool_choice, conn_options=conn_options
        )


class ScriptedStream(LLMStream):
    def __init__(self, llm: ScriptedLLM, **kwargs) -> None:
        super().__init__(llm, **kwargs)
        self._scripted = llm

    async def _run(self) -> None:
        llm = self._scripted
        llm.requests.append(trio.current_time())
        if llm.hang:
            await trio.sleep_forever()
        if llm.error is not None and not llm.fail_after_text:
            raise llm.error
        await trio.sleep(llm.ttft)
        for word in llm.text.split(" "):
            await self._emit_chunk(ChatChunk(id=self.request_id, delta=ChoiceDelta(content=word)))
        if llm.error is not None:
            raise llm.error
        usage = CompletionUsage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
        await self._emit_chunk(ChatChunk(id=self.request_id, usage=usage))


def tasks_below(task: trio.lowlevel.Task) -> list[trio.lowlevel.Task]:
    out = []
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            out += [child, *tasks_below(child)]
    return out


def user_says(text: str = "Hi") -> ChatContext:
    ctx = ChatContext()
    ctx.add_message(role="user", content=text)
    return ctx


async def ask(llm: LLM) -> tuple[float, str]:
    """(time of the first text, the whole text)."""
    first = None
    text = []
    async with llm.chat(chat_ctx=user_says()) as stream:
        async for chunk in stream:
            if chunk.delta and chunk.delta.content:
                first = trio.current_time() if first is None else first
                text.append(chunk.delta.content)
    return first, " ".join(text)


async def test_backup_answers_when_the_primary_fails_after_its_own_retries(autojump_clock):
    primary = ScriptedLLM("primary", error=APIConnectionError("down"))
    backup = ScriptedLLM("backup", text="Hello there", ttft=0.2)
    adapter = FallbackAdapter([primary, backup])
    first, text = await ask(adapter)
    assert text == "Hello there"
    # primary: attempt at 0, one retry (the default for fallbacks) 0.5 s later, then backup
    assert primary.requests == [0.0, 0.5]
    assert backup.requests == [0.5]
    assert first == 0.5 + 0.2
    assert primary.options == [adapter.llm_conn_options]
    assert adapter.llm_conn_options == APIConnectOptions(max_retry=1, timeout=10.0)


async def test_the_switch_time_follows_conn_options(autojump_clock):
    primary = ScriptedLLM("primary", error=APIConnectionError("down"))
    backup = ScriptedLLM("backup", text="ok", ttft=0.0)
    options = APIConnectOptions(max_retry=3, retry_interval=1.0, max_retry_interval=3.0)
    adapter = FallbackAdapter([primary, backup], conn_options=options)
    first, _ = await ask(adapter)
    assert primary.requests == [0.0, 1.0, 3.0, 6.0]
    assert first == 6.0


async def test_a_hanging_primary_times_out_then_falls_back(autojump_clock):
    primary = ScriptedLLM("primary", hang=True)
    backup = ScriptedLLM("backup", text="ok", ttft=0.0)
    options = APIConnectOptions(max_retry=1, timeout=5.0)
    adapter = FallbackAdapter([primary, backup], conn_options=options)
    first, text = await ask(adapter)
    assert text == "ok"
    assert primary.requests == [0.0, 5.5]
    assert first == 5.0 + 0.5 + 5.0


async def test_a_non_retryable_error_falls_back_at_once(autojump_clock):
    primary = ScriptedLLM("primary", error=APIStatusError("bad request", status_code=400))
    backup = ScriptedLLM("backup", text="ok", ttft=0.0)
    first, _ = await ask(FallbackAdapter([primary, backup]))
    assert primary.requests == [0.0]
    assert first == 0.0


async def test_a_crashing_primary_falls_back(autojump_clock):
    primary = ScriptedLLM("primary", error=RuntimeError("bug in the plugin"))
    backup = ScriptedLLM("backup", text="ok", ttft=0.0)
    _, text = await ask(FallbackAdapter([primary, backup]))
    assert text == "ok"
    assert primary.requests == [0.0]


async def test_a_failed_primary_is_skipped_for_recovery_interval_then_tried_again(autojump_clock):
    primary = ScriptedLLM("primary", text="from primary", error=APIConnectionError("down"))
    backup = ScriptedLLM("backup", text="from backup", ttft=0.0)
    adapter = FallbackAdapter([primary, backup], recovery_interval=30.0)
    assert (await ask(adapter))[1] == "from backup"
    assert primary.requests == [0.0, 0.5]
    # unavailable until 0.5 + 30 = 30.5: the next requests go straight to the backup
    await trio.sleep_until(30.4)
    assert await ask(adapter) == (30.4, "from backup")
    assert primary.requests == [0.0, 0.5]
    assert adapter.pool.candidates() == [backup]
    # it has recovered meanwhile; once the interval is over it is asked first again
    primary.error = None
    await trio.sleep_until(30.5)
    assert adapter.pool.candidates() == [primary, backup]
    assert await ask(adapter) == (30.6, "from primary")
    assert primary.requests == [0.0, 0.5, 30.5]
    assert backup.requests == [0.5, 30.4]


async def test_when_every_llm_is_unavailable_all_are_tried(autojump_clock):
    primary = ScriptedLLM("primary", error=APIStatusError("no", status_code=403))
    backup = ScriptedLLM("backup", error=APIStatusError("no", status_code=403))
    adapter = FallbackAdapter([primary, backup])
    for _ in range(2):
        with pytest.raises(APIConnectionError):
            await ask(adapter)
    assert primary.requests == [0.0, 0.0]
    assert backup.requests == [0.0, 0.0]


async def test_a_failure_after_text_was_streamed_is_raised(autojump_clock):
    primary = ScriptedLLM(
        "primary", text="Half a", error=APIConnectionError("dropped"), fail_after_text=True
    )
    backup = ScriptedLLM("backup", text="never")
    adapter = FallbackAdapter([primary, backup])
    got = []
    async with adapter.chat(chat_ctx=user_says()) as stream:
        with pytest.raises(APIConnectionError, match="dropped"):
            async for chunk in stream:
                got.append(chunk.delta.content)
    assert got == ["Half", "a"]
    assert backup.requests == []
    assert primary.requests == [0.0]


async def test_all_failing_raises_a_connection_error_naming_each(autojump_clock):
    primary = ScriptedLLM("primary", error=APIConnectionError("primary is down"))
    backup = ScriptedLLM("backup", error=APIStatusError("backup says 401", status_code=401))
    adapter = FallbackAdapter([primary, backup])
    with pytest.raises(APIConnectionError) as info:
        await ask(adapter)
    message = str(info.value)
    assert message.startswith("all LLMs failed: ")
    assert "primary is down" in message
    assert "backup says 401" in message
    assert info.value.retryable is False
    # the adapter's own stream does not retry: one round, then the error
    assert primary.requests == [0.0, 0.5]
    assert backup.requests == [0.5]
    assert trio.current_time() == 0.5


async def test_metrics_of_every_llm_are_forwarded(autojump_clock):
    primary = ScriptedLLM("primary", error=APIConnectionError("down"))
    backup = ScriptedLLM("backup", text="a b", ttft=0.25)
    adapter = FallbackAdapter([primary, backup])
    metrics: list[LLMMetrics] = []
    adapter.on("metrics_collected", metrics.append)
    await ask(adapter)
    assert [(m.label, m.cancelled, m.ttft) for m in metrics] == [
        ("primary", True, -1.0),
        ("backup", False, 0.25),
    ]
    assert metrics[1].completion_tokens == 2
    assert metrics[1].duration == 0.25
    assert metrics[1].timestamp == 0.75


async def test_closing_the_adapter_stream_cancels_the_inner_one(autojump_clock):
    primary = ScriptedLLM("primary", hang=True)
    adapter = FallbackAdapter([primary, ScriptedLLM("backup", text="x")])
    metrics = []
    adapter.on("metrics_collected", metrics.append)
    with trio.move_on_after(2.0):
        await ask(adapter)
    assert [(m.label, m.cancelled, m.duration) for m in metrics] == [("primary", True, 2.0)]
    assert tasks_below(trio.lowlevel.current_task()) == []
    # a cancelled request is not a failure
    assert adapter.pool.candidates() == adapter.pool.models


async def test_adapter_passes_the_request_through(autojump_clock):
    seen = []

    class Recording(ScriptedLLM):
        def chat(self, *, chat_ctx, tools=(), tool_choice="auto", **kwargs):
            seen.append((chat_ctx, list(tools), tool_choice))
            return super().chat(chat_ctx=chat_ctx, tools=tools, tool_choice=tool_choice, **kwargs)

    inner = Recording("inner", text="ok")
    adapter = FallbackAdapter([inner])
    ctx = user_says()
    async with adapter.chat(chat_ctx=ctx, tool_choice="none") as stream:
        assert stream.tool_choice == "none"
        await stream.collect()
    assert seen == [(ctx, [], "none")]


def test_adapter_needs_an_llm():
    with pytest.raises(ValueError, match="needs at least one LLM"):
        FallbackAdapter([])


def test_fallback_pool_basics():
    a, b = object(), object()
    pool = FallbackPool([a, b], recovery_interval=5.0, kind="widget")
    assert pool.models == [a, b]
    error = pool.all_failed([APITimeoutError("t1"), APIError("e2")])
    assert isinstance(error, APIConnectionError)
    assert str(error) == (
        "all widgets failed: t1 (retryable=True); e2 (retryable=True) (retryable=False)"
    )


async def test_fallback_pool_marks_and_recovers(autojump_clock, caplog):
    a, b = "a", "b"
    pool = FallbackPool([a, b], recovery_interval=5.0, kind="widget")
    pool.mark_failed(a, APIError("x"))
    assert "widget 'a' failed, falling back" in caplog.text
    assert pool.candidates() == [b]
    await trio.sleep(4.999)
    assert pool.candidates() == [b]
    pool.mark_ok(a)
    assert pool.candidates() == [a, b]
    pool.mark_failed(a, APIError("x"))
    await trio.sleep(5.0)
    assert pool.candidates() == [a, b]
