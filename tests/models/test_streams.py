"""The stream machinery every model shares: retries, idle timeouts, errors, closing, cancelling.

Every time is exact on the autojump clock: retry delays are 0.5, 1.0, 2.0... s (the defaults of
``APIConnectOptions``), the idle timeout is 10 s.
"""

from collections.abc import Awaitable, Callable

import numpy as np
import pytest
import trio

from tvoice import APIConnectionError, APIError, APIStatusError, APITimeoutError
from tvoice._utils import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectOptions,
    BackgroundTasks,
    call_with_retry,
    now,
    retry_delay,
    short_id,
)
from tvoice.audio import AudioFrame
from tvoice.llm import LLM, ChatChunk, ChatContext, ChoiceDelta, CompletionUsage, LLMStream
from tvoice.metrics import LLMMetrics, STTMetrics, TTSMetrics
from tvoice.stt import (
    STT,
    RecognizeStream,
    SpeechData,
    SpeechEvent,
    SpeechEventType,
    STTCapabilities,
)
from tvoice.tts import TTS, ChunkedStream, SynthesizeStream, TTSCapabilities
from tvoice.vad import VAD, VADCapabilities, VADEvent, VADEventType, VADStream

# -- test doubles ---------------------------------------------------------------------------

Script = Callable[[int, "ScriptedLLMStream"], Awaitable[None]]


class ScriptedLLM(LLM):
    """Each attempt of each chat stream runs ``script(attempt_number, stream)``."""

    def __init__(self, script: Script, *, capacity: int = 64, label: str = "scripted") -> None:
        super().__init__()
        self.script = script
        self.capacity = capacity
        self.attempts = 0
        self._label = label

    @property
    def label(self) -> str:
        return self._label

    def chat(
        self,
        *,
        chat_ctx,
        tools=(),
        tool_choice="auto",
        conn_options=DEFAULT_API_CONNECT_OPTIONS,
        extra=None,
    ) -> LLMStream:
        return ScriptedLLMStream(
            self, chat_ctx=chat_ctx, tools=tools, tool_choice=tool_choice, conn_options=conn_options
        )


class ScriptedLLMStream(LLMStream):
    def __init__(self, llm: ScriptedLLM, **kwargs) -> None:
        self._output_capacity = llm.capacity
        super().__init__(llm, **kwargs)
        self._scripted = llm

    async def _run(self) -> None:
        self._scripted.attempts += 1
        await self._scripted.script(self._scripted.attempts, self)

    async def say(self, text: str) -> None:
        await self._emit_chunk(ChatChunk(id=self.request_id, delta=ChoiceDelta(content=text)))

    async def usage(self, prompt: int, completion: int) -> None:
        usage = CompletionUsage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )
        await self._emit_chunk(ChatChunk(id=self.request_id, usage=usage))


def user_says(text: str = "Hi") -> ChatContext:
    ctx = ChatContext()
    ctx.add_message(role="user", content=text)
    return ctx


async def read_timed(stream) -> list[tuple[float, str]]:
    """(time, text) of each text chunk, until the stream ends or raises."""
    out = []
    async for chunk in stream:
        if chunk.delta and chunk.delta.content:
            out.append((trio.current_time(), chunk.delta.content))
    return out


def fails_then_says(failures: int, text: str = "hi", *, error=APIConnectionError) -> Script:
    async def script(attempt: int, stream: ScriptedLLMStream) -> None:
        if attempt <= failures:
            raise error(f"failure {attempt}")
        await stream.say(text)

    return script


class BatchSTT(STT):
    """``recognize`` takes ``delay`` s, failing the first ``failures`` calls."""

    def __init__(self, *, failures: int = 0, delay: float = 0.0, error=APIConnectionError):
        super().__init__(capabilities=STTCapabilities(streaming=False))
        self.failures = failures
        self.delay = delay
        self.error = error
        self.calls = 0

    async def _recognize_impl(self, frame, *, language, conn_options) -> SpeechEvent:
        self.calls += 1
        await trio.sleep(self.delay)
        if self.calls <= self.failures:
            raise self.error(f"stt failure {self.calls}")
        return SpeechEvent(
            type=SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[SpeechData(text=f"{frame.duration:.1f} s")],
            request_id=f"req{self.calls}",
        )


def tasks_below(task: trio.lowlevel.Task) -> list[trio.lowlevel.Task]:
    """Every task running in nurseries opened by ``task``, recursively."""
    out = []
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            out += [child, *tasks_below(child)]
    return out


# -- retries --------------------------------------------------------------------------------


async def test_retryable_failures_are_retried_after_half_a_second_then_one(autojump_clock):
    llm = ScriptedLLM(fails_then_says(2))
    async with llm.chat(chat_ctx=user_says()) as stream:
        assert await read_timed(stream) == [(1.5, "hi")]
    assert llm.attempts == 3


async def test_non_retryable_error_is_raised_from_iteration_without_retry(autojump_clock):
    llm = ScriptedLLM(
        fails_then_says(5, error=lambda m: APIStatusError(m, status_code=400, request_id="r1"))
    )
    async with llm.chat(chat_ctx=user_says()) as stream:
        with pytest.raises(APIStatusError, match="failure 1") as info:
            await stream.collect()
    assert trio.current_time() == 0.0
    assert llm.attempts == 1
    assert info.value.status_code == 400
    assert info.value.retryable is False
    assert "status_code=400, request_id=r1" in str(info.value)


async def test_failure_after_output_is_raised_and_not_retried(autojump_clock):
    async def script(attempt, stream):
        await trio.sleep(0.2)
        await stream.say("Hel")
        await trio.sleep(0.3)
        raise APIConnectionError("dropped")

    llm = ScriptedLLM(script)
    got = []
    async with llm.chat(chat_ctx=user_says()) as stream:
        with pytest.raises(APIConnectionError, match="dropped"):
            async for chunk in stream:
                got.append((trio.current_time(), chunk.delta.content))
    assert got == [(0.2, "Hel")]
    assert trio.current_time() == 0.5
    assert llm.attempts == 1


async def test_exhausted_retries_raise_the_last_error(autojump_clock):
    llm = ScriptedLLM(fails_then_says(100))
    async with llm.chat(chat_ctx=user_says()) as stream:
        with pytest.raises(APIConnectionError, match="failure 4"):
            await stream.collect()
    assert trio.current_time() == 0.5 + 1.0 + 2.0
    assert llm.attempts == 4


async def test_no_retries_with_max_retry_zero(autojump_clock):
    llm = ScriptedLLM(fails_then_says(1))
    options = APIConnectOptions(max_retry=0)
    async with llm.chat(chat_ctx=user_says(), conn_options=options) as stream:
        assert stream.conn_options is options
        with pytest.raises(APIConnectionError, match="failure 1"):
            await stream.collect()
    assert llm.attempts == 1
    assert trio.current_time() == 0.0


async def test_retry_delay_is_capped_by_max_retry_interval(autojump_clock):
    options = APIConnectOptions(max_retry=4, retry_interval=1.0, max_retry_interval=2.5)
    assert [retry_delay(options, n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 2.5, 2.5]
    llm = ScriptedLLM(fails_then_says(4))
    async with llm.chat(chat_ctx=user_says(), conn_options=options) as stream:
        assert await read_timed(stream) == [(1.0 + 2.0 + 2.5 + 2.5, "hi")]
    assert llm.attempts == 5


def test_default_retry_delays_double_from_half_a_second():
    assert [retry_delay(DEFAULT_API_CONNECT_OPTIONS, n) for n in range(1, 7)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        8.0,
    ]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_retry": -1}, {"retry_interval": -0.1}, {"timeout": 0.0}, {"timeout": -1.0}],
)
def test_connect_options_refuse_nonsense(kwargs):
    with pytest.raises(ValueError, match="must be"):
        APIConnectOptions(**kwargs)


async def test_recognize_retries_with_the_same_delays(autojump_clock):
    stt = BatchSTT(failures=2, delay=0.25)
    metrics = []
    stt.on("metrics_collected", metrics.append)
    event = await stt.recognize(AudioFrame.silence(1.0, 16000))
    assert event.text == "1.0 s"
    assert stt.calls == 3
    # three attempts of 0.25 s, with 0.5 s and 1.0 s between them
    assert trio.current_time() == 0.25 * 3 + 0.5 + 1.0
    assert metrics == [
        STTMetrics(
            label=stt.label,
            request_id="req3",
            timestamp=2.25,
            duration=2.25,
            audio_duration=1.0,
        )
    ]


async def test_recognize_combines_a_list_of_frames(autojump_clock):
    stt = BatchSTT()
    frames = [AudioFrame.silence(0.5, 16000), AudioFrame.silence(0.7, 16000)]
    assert (await stt.recognize(frames)).text == "1.2 s"


async def test_recognize_does_not_retry_non_retryable_errors(autojump_clock):
    stt = BatchSTT(failures=5, error=lambda m: APIStatusError(m, status_code=401))
    with pytest.raises(APIStatusError, match="stt failure 1"):
        await stt.recognize(AudioFrame.silence(1.0, 16000))
    assert stt.calls == 1
    assert trio.current_time() == 0.0


async def test_recognize_raises_the_last_error_when_retries_run_out(autojump_clock):
    stt = BatchSTT(failures=100)
    with pytest.raises(APIConnectionError, match="stt failure 4"):
        await stt.recognize(AudioFrame.silence(1.0, 16000))
    assert stt.calls == 4
    assert trio.current_time() == 3.5


async def test_recognize_times_out_each_attempt(autojump_clock):
    stt = BatchSTT(delay=float("inf"))
    options = APIConnectOptions(max_retry=1, timeout=2.0, retry_interval=0.5)
    with pytest.raises(APITimeoutError, match=r"no answer within 2\.0 s"):
        await stt.recognize(AudioFrame.silence(1.0, 16000), conn_options=options)
    assert trio.current_time() == 2.0 + 0.5 + 2.0
    assert stt.calls == 2


async def test_call_with_retry_caps_delays(autojump_clock):
    calls = []

    async def flaky() -> str:
        calls.append(trio.current_time())
        if len(calls) < 4:
            raise APIError("busy")
        return "ok"

    options = APIConnectOptions(retry_interval=2.0, max_retry_interval=3.0)
    assert await call_with_retry(flaky, options, label="flaky") == "ok"
    assert calls == [0.0, 2.0, 5.0, 8.0]


# -- idle timeout ---------------------------------------------------------------------------


async def test_llm_that_never_answers_times_out_at_exactly_timeout(autojump_clock):
    async def silent(attempt, stream):
        await trio.sleep_forever()

    llm = ScriptedLLM(silent)
    async with llm.chat(chat_ctx=user_says(), conn_options=APIConnectOptions(max_retry=0)) as s:
        with pytest.raises(APITimeoutError, match=r"no output for 10\.0 s"):
            await s.collect()
    assert trio.current_time() == 10.0


async def test_a_timeout_before_any_output_is_retried(autojump_clock):
    async def silent(attempt, stream):
        await trio.sleep_forever()

    llm = ScriptedLLM(silent)
    async with llm.chat(chat_ctx=user_says()) as stream:
        with pytest.raises(APITimeoutError):
            await stream.collect()
    assert llm.attempts == 4
    assert trio.current_time() == 4 * 10.0 + 0.5 + 1.0 + 2.0


async def test_llm_that_stalls_after_answering_times_out_after_its_last_chunk(autojump_clock):
    async def stalls(attempt, stream):
        await trio.sleep(1.0)
        await stream.say("Hello")
        await trio.sleep(2.0)
        await stream.say(" there")
        await trio.sleep_forever()

    llm = ScriptedLLM(stalls)
    got = []
    async with llm.chat(chat_ctx=user_says()) as stream:
        with pytest.raises(APITimeoutError):
            async for chunk in stream:
                got.append((trio.current_time(), chunk.delta.content))
    assert got == [(1.0, "Hello"), (3.0, " there")]
    assert trio.current_time() == 3.0 + 10.0
    assert llm.attempts == 1


async def test_a_slow_consumer_is_not_counted_against_the_idle_timeout(autojump_clock):
    async def fast(attempt, stream):
        for i in range(5):
            await stream.say(str(i))

    # No buffer: every chunk waits for the consumer, who takes 100 s per chunk.
    llm = ScriptedLLM(fast, capacity=0)
    got = []
    async with llm.chat(chat_ctx=user_says()) as stream:
        async for chunk in stream:
            got.append((trio.current_time(), chunk.delta.content))
            await trio.sleep(100)
    assert got == [(0.0, "0"), (100.0, "1"), (200.0, "2"), (300.0, "3"), (400.0, "4")]


async def test_the_idle_timer_restarts_when_the_consumer_takes_a_chunk(autojump_clock):
    async def pauses(attempt, stream):
        await stream.say("a")
        await trio.sleep(9.0)  # under the 10 s timeout, counted from when "a" was taken
        await stream.say("b")
        await trio.sleep(11.0)
        await stream.say("c")

    llm = ScriptedLLM(pauses, capacity=0)
    got = []
    async with llm.chat(chat_ctx=user_says()) as stream:
        with pytest.raises(APITimeoutError):
            async for chunk in stream:
                got.append((trio.current_time(), chunk.delta.content))
                if chunk.delta.content == "a":
                    await trio.sleep(50)
    # "b" was ready at 9.0 and waited for the consumer until 50.0; the 11 s gap after it is
    # counted from 50.0.
    assert got == [(0.0, "a"), (50.0, "b")]
    assert trio.current_time() == 50.0 + 10.0


async def test_batch_streams_without_idle_timeout_wait_as_long_as_needed(autojump_clock):
    stream = SlowVAD(delay=1000.0).stream()
    async with stream:
        stream.end_input()
        events = await stream.collect()
    assert [e.type for e in events] == [VADEventType.INFERENCE_DONE]
    assert trio.current_time() == 1000.0


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [RuntimeError("boom"), OSError(104, "reset"), KeyError("k")])
async def test_a_plain_exception_in_the_provider_becomes_a_non_retryable_api_error(
    autojump_clock, error, caplog
):
    async def breaks(attempt, stream):
        await stream.say("partial")
        await trio.sleep(1.0)
        raise error

    llm = ScriptedLLM(breaks)
    got = []
    with trio.fail_after(60):  # never a hang
        async with llm.chat(chat_ctx=user_says()) as stream:
            with pytest.raises(APIError) as info:
                async for chunk in stream:
                    got.append(chunk.delta.content)
    assert got == ["partial"]
    assert info.value.__cause__ is error
    assert info.value.retryable is False
    assert type(error).__name__ in str(info.value)
    assert llm.attempts == 1
    assert trio.current_time() == 1.0
    assert "ScriptedLLMStream failed" in caplog.text


async def test_a_plain_exception_before_output_is_not_retried(autojump_clock):
    async def breaks(attempt, stream):
        raise OSError("no route")

    llm = ScriptedLLM(breaks)
    async with llm.chat(chat_ctx=user_says()) as stream:
        with pytest.raises(APIError, match="no route") as info:
            await stream.collect()
    assert isinstance(info.value.__cause__, OSError)
    assert llm.attempts == 1


async def test_the_error_is_raised_again_on_later_iteration(autojump_clock):
    llm = ScriptedLLM(fails_then_says(9, error=lambda m: APIError(m, retryable=False)))
    async with llm.chat(chat_ctx=user_says()) as stream:
        with pytest.raises(APIError, match="failure 1"):
            await stream.collect()
        with pytest.raises(APIError, match="failure 1"):
            await stream.__anext__()


def test_error_tree_and_messages():
    assert issubclass(APITimeoutError, APIConnectionError)
    assert issubclass(APIConnectionError, APIError)
    assert issubclass(APIStatusError, APIError)
    assert str(APIError("x", retryable=False)) == "x (retryable=False)"
    assert APIError("x", body={"a": 1}).body == {"a": 1}
    assert APIConnectionError().message == "connection error"
    assert APITimeoutError().retryable
    # 4xx other than 408/429 are the caller's fault: retrying cannot help
    assert [APIStatusError(status_code=c).retryable for c in (400, 401, 408, 429, 500, -1)] == [
        False,
        False,
        True,
        True,
        True,
        True,
    ]
    assert APIStatusError(status_code=500, retryable=False).retryable is False


# -- BackgroundTasks ------------------------------------------------------------------------


async def test_background_tasks_cancel_helpers_when_the_block_ends(autojump_clock):
    cleaned = []

    async def helper():
        try:
            await trio.sleep_forever()
        finally:
            cleaned.append(trio.current_time())

    async with BackgroundTasks() as nursery:
        nursery.start_soon(helper)
        await trio.sleep(2.0)
    assert cleaned == [2.0]
    assert trio.current_time() == 2.0


async def test_background_tasks_let_the_body_exception_through_unwrapped(autojump_clock):
    cleaned = []

    async def helper():
        try:
            await trio.sleep_forever()
        finally:
            cleaned.append(True)

    with pytest.raises(ValueError, match="body"):
        async with BackgroundTasks() as nursery:
            nursery.start_soon(helper)
            await trio.sleep(1.0)
            raise ValueError("body")
    assert cleaned == [True]


async def test_background_tasks_helper_crash_propagates_as_a_group(autojump_clock):
    async def helper():
        await trio.sleep(1.0)
        raise KeyError("helper")

    with pytest.RaisesGroup(KeyError):
        async with BackgroundTasks() as nursery:
            nursery.start_soon(helper)
            await trio.sleep_forever()
    assert trio.current_time() == 1.0


async def test_background_tasks_nursery_only_inside_and_entered_once(autojump_clock):
    tasks = BackgroundTasks()
    with pytest.raises(RuntimeError, match="outside its `async with` block"):
        _ = tasks.nursery
    async with tasks as nursery:
        assert tasks.nursery is nursery
        with pytest.raises(RuntimeError, match="cannot be entered twice"):
            await tasks.__aenter__()
    with pytest.raises(RuntimeError, match="outside"):
        _ = tasks.nursery


async def test_background_tasks_let_an_outer_cancel_through(autojump_clock):
    with trio.move_on_after(3.0) as scope:
        async with BackgroundTasks() as nursery:
            nursery.start_soon(trio.sleep_forever)
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert trio.current_time() == 3.0


# -- misuse, closing ------------------------------------------------------------------------


async def test_a_stream_must_be_opened_before_use(autojump_clock):
    stream = ScriptedLLM(fails_then_says(0)).chat(chat_ctx=user_says())
    with pytest.raises(RuntimeError, match=r"must be opened first: `async with"):
        await stream.__anext__()
    with pytest.raises(RuntimeError, match="must be opened first"):
        async for _ in stream:
            pass
    # closing a stream never opened does nothing; it can still be opened afterwards
    await stream.aclose()
    async with stream:
        assert await stream.to_str_iterable() == ["hi"]


async def test_input_streams_must_be_opened_before_pushing(autojump_clock):
    stream = ScriptedSTT().stream()
    with pytest.raises(RuntimeError, match="must be opened first"):
        await stream.push_frame(AudioFrame.silence(0.1, 16000))
    synth = ScriptedTTS().stream()
    with pytest.raises(RuntimeError, match="must be opened first"):
        await synth.push_text("hi")


async def test_a_stream_can_be_entered_only_once(autojump_clock):
    stream = ScriptedLLM(fails_then_says(0)).chat(chat_ctx=user_says())
    async with stream:
        with pytest.raises(RuntimeError, match="ScriptedLLMStream can be entered only once"):
            await stream.__aenter__()
    with pytest.raises(RuntimeError, match="entered only once"):
        async with stream:
            pass


async def test_aclose_twice_is_fine_and_ends_iteration(autojump_clock):
    stream = ScriptedLLM(fails_then_says(0)).chat(chat_ctx=user_says())
    async with stream:
        await stream.aclose()
        await stream.aclose()
        assert await stream.collect() == []
    await stream.aclose()


async def test_closing_mid_stream_cancels_the_provider_and_leaves_no_task(autojump_clock):
    cleanup = []

    async def endless(attempt, stream):
        try:
            for i in range(1000):
                await stream.say(str(i))
                await trio.sleep(0.5)
        finally:
            cleanup.append(trio.current_time())

    llm = ScriptedLLM(endless)
    metrics = []
    llm.on("metrics_collected", metrics.append)
    me = trio.lowlevel.current_task()
    async with trio.open_nursery() as nursery:
        stream = llm.chat(chat_ctx=user_says())
        await stream.__aenter__()
        assert tasks_below(me)  # the provider task
        assert (await stream.__anext__()).delta.content == "0"
        await trio.sleep(1.2)
        await stream.aclose()
        assert cleanup == [1.2]
        assert not nursery.child_tasks
        assert tasks_below(me) == []
    assert [m.cancelled for m in metrics] == [True]


async def test_closing_while_the_provider_waits_on_a_full_buffer(autojump_clock):
    sent = []

    async def flood(attempt, stream):
        for i in range(10):
            await stream.say(str(i))
            sent.append(i)

    llm = ScriptedLLM(flood, capacity=2)
    me = trio.lowlevel.current_task()
    async with llm.chat(chat_ctx=user_says()):
        await trio.sleep(1.0)
        assert sent == [0, 1]  # backpressure: blocked on the third
    assert tasks_below(me) == []
    assert sent == [0, 1]


async def test_a_stream_whose_consumer_is_gone_stops_producing(autojump_clock):
    finished = []

    async def flood(attempt, stream):
        try:
            for i in range(10):
                await stream.say(str(i))
        finally:
            finished.append(attempt)

    llm = ScriptedLLM(flood, capacity=0)
    async with llm.chat(chat_ctx=user_says()) as stream:
        # Closing our end of the output (what aclose does first) ends the producer cleanly.
        await stream.__anext__()
        await stream.aclose()
    assert finished == [1]


# -- LLM stream details ---------------------------------------------------------------------


async def test_llm_stream_properties_and_metrics(autojump_clock):
    async def answer(attempt, stream):
        await trio.sleep(0.25)
        await stream.say("Hello ")
        await trio.sleep(0.75)
        await stream.say("world")
        await stream.usage(prompt=7, completion=4)

    llm = ScriptedLLM(answer, label="my-llm")
    metrics = []
    llm.on("metrics_collected", metrics.append)
    ctx = user_says()
    await trio.sleep(3.0)
    async with llm.chat(chat_ctx=ctx, tool_choice="none") as stream:
        assert stream.chat_ctx is ctx
        assert stream.tools == []
        assert stream.tool_choice == "none"
        assert stream.request_id.startswith("llm_")
        assert await stream.to_str_iterable() == ["Hello ", "world"]
    assert metrics == [
        LLMMetrics(
            label="my-llm",
            request_id=stream.request_id,
            timestamp=4.0,
            ttft=0.25,
            duration=1.0,
            cancelled=False,
            prompt_tokens=7,
            completion_tokens=4,
            total_tokens=11,
            tokens_per_second=4.0,
        )
    ]


async def test_llm_metrics_of_a_failed_request(autojump_clock):
    llm = ScriptedLLM(fails_then_says(9, error=lambda m: APIError(m, retryable=False)))
    metrics = []
    llm.on("metrics_collected", metrics.append)
    async with llm.chat(chat_ctx=user_says()) as stream:
        with pytest.raises(APIError):
            await stream.collect()
    (m,) = metrics
    assert (m.ttft, m.duration, m.cancelled, m.tokens_per_second) == (-1.0, 0.0, True, 0.0)


def test_llm_defaults():
    llm = ScriptedLLM(fails_then_says(0))
    assert llm.model == "unknown"
    assert LLM.label.fget(llm) == "tests.models.test_streams.ScriptedLLM"


async def test_llm_aclose_is_a_no_op(autojump_clock):
    await ScriptedLLM(fails_then_says(0)).aclose()


# -- the other stream kinds -----------------------------------------------------------------


class ScriptedSTT(STT):
    """A streaming STT: one INTERIM per frame, a FINAL at each flush and at the end."""

    def __init__(self) -> None:
        super().__init__(capabilities=STTCapabilities(streaming=True, interim_results=True))
        self.cleanup: list[float] = []

    async def _recognize_impl(self, frame, *, language, conn_options):
        return SpeechEvent(type=SpeechEventType.FINAL_TRANSCRIPT)

    def stream(self, *, language=None, conn_options=DEFAULT_API_CONNECT_OPTIONS):
        return ScriptedRecognizeStream(self, language=language, conn_options=conn_options)


class ScriptedRecognizeStream(RecognizeStream):
    async def _run(self) -> None:
        frames = 0
        try:
            async for item in self._input:
                if isinstance(item, AudioFrame):
                    frames += 1
                    await self._emit(SpeechEvent(type=SpeechEventType.INTERIM_TRANSCRIPT))
                else:
                    await self._final(frames)
                    frames = 0
            await self._final(frames)
        finally:
            self._stt.cleanup.append(trio.current_time())

    async def _final(self, frames: int) -> None:
        data = SpeechData(text=f"{frames} frames", language=self._language or "")
        await self._emit(SpeechEvent(type=SpeechEventType.FINAL_TRANSCRIPT, alternatives=[data]))


class ScriptedTTS(TTS):
    """One 0.1 s frame per character, 0.1 s apart; ``stream`` speaks each segment likewise."""

    def __init__(self) -> None:
        super().__init__(
            sample_rate=16000, num_channels=1, capabilities=TTSCapabilities(streaming=True)
        )
        self.cleanup: list[float] = []

    def synthesize(self, text, *, conn_options=DEFAULT_API_CONNECT_OPTIONS) -> ChunkedStream:
        return ScriptedChunkedStream(self, text, conn_options=conn_options)

    def stream(self, *, conn_options=DEFAULT_API_CONNECT_OPTIONS) -> SynthesizeStream:
        return ScriptedSynthesizeStream(self, conn_options=conn_options)


def tone(duration: float, rate: int = 16000) -> AudioFrame:
    n = round(duration * rate)
    return AudioFrame((np.ones(n) * 1000).astype(np.int16), rate)


class ScriptedChunkedStream(ChunkedStream):
    async def _run(self) -> None:
        try:
            for _ in self.input_text:
                await trio.sleep(0.1)
                await self._emit_frame(tone(0.1))
        finally:
            self._tts.cleanup.append(trio.current_time())


class ScriptedSynthesizeStream(SynthesizeStream):
    async def _run(self) -> None:
        text, segment = "", 0
        try:
            async for item in self._input:
                if isinstance(item, str):
                    text += item
                    continue
                await self._speak(text, f"s{segment}")
                text, segment = "", segment + 1
            if text:
                await self._speak(text, f"s{segment}")
        finally:
            self._tts.cleanup.append(trio.current_time())

    async def _speak(self, text: str, segment_id: str) -> None:
        for _ in text:
            await trio.sleep(0.1)
            await self._emit_frame(tone(0.1), segment_id=segment_id)
        await self._end_segment(segment_id)


class SlowVAD(VAD):
    """INFERENCE_DONE ``delay`` s after the input ends."""

    def __init__(self, *, delay: float = 0.0) -> None:
        super().__init__(capabilities=VADCapabilities(update_interval=0.1))
        self.delay = delay
        self.cleanup: list[float] = []

    def stream(self) -> VADStream:
        return SlowVADStream(self)


class SlowVADStream(VADStream):
    async def _run(self) -> None:
        try:
            async for _ in self._input:
                pass
            await trio.sleep(self._vad.delay)
            event = VADEvent(type=VADEventType.INFERENCE_DONE, timestamp=trio.current_time())
            await self._emit(event)
        finally:
            self._vad.cleanup.append(trio.current_time())


async def test_recognize_stream_push_flush_and_metrics(autojump_clock):
    stt = ScriptedSTT()
    metrics = []
    stt.on("metrics_collected", metrics.append)
    frame = AudioFrame.silence(0.5, 16000)
    async with stt.stream(language="fr") as stream:
        await stream.push_frame(frame)
        await stream.push_frame(frame)
        await stream.flush()
        await trio.sleep(1.0)
        await stream.push_frame(frame)
        stream.end_input()
        events = await stream.collect()
        with pytest.raises(RuntimeError, match="input already ended"):
            await stream.push_frame(frame)
    finals = [e for e in events if e.type == SpeechEventType.FINAL_TRANSCRIPT]
    assert [(e.text, e.alternatives[0].language) for e in finals] == [
        ("2 frames", "fr"),
        ("1 frames", "fr"),
    ]
    assert len(metrics) == 1
    assert metrics[0].streamed
    assert metrics[0].audio_duration == 1.5
    assert metrics[0].duration == 1.0


async def test_recognize_stream_refuses_what_is_not_a_frame(autojump_clock):
    stt = ScriptedSTT()
    async with stt.stream() as stream:
        with pytest.raises(TypeError, match="push_frame expects an AudioFrame, got ndarray"):
            await stream.push_frame(np.zeros(10, np.int16))


async def test_recognize_stream_without_audio_reports_no_metrics(autojump_clock):
    stt = ScriptedSTT()
    metrics = []
    stt.on("metrics_collected", metrics.append)
    async with stt.stream() as stream:
        stream.end_input()
        assert [e.text for e in await stream.collect()] == ["0 frames"]
    assert metrics == []


def test_batch_stt_does_not_stream():
    stt = BatchSTT()
    with pytest.raises(NotImplementedError, match=r"wrap it: stt\.StreamAdapter"):
        stt.stream()
    assert stt.capabilities.streaming is False


async def test_chunked_stream_ends_with_one_is_final_and_reports_metrics(autojump_clock):
    tts = ScriptedTTS()
    metrics = []
    tts.on("metrics_collected", metrics.append)
    async with tts.synthesize("abc") as stream:
        assert stream.input_text == "abc"
        items = await stream.collect()
    assert [i.is_final for i in items] == [False, False, False, True]
    assert {i.request_id for i in items} == {stream.request_id}
    assert items[-1].frame.samples_per_channel == 0
    assert metrics == [
        TTSMetrics(
            label=tts.label,
            request_id=stream.request_id,
            timestamp=pytest.approx(0.3),
            ttfb=0.1,
            duration=pytest.approx(0.3),
            audio_duration=pytest.approx(0.3),
            characters_count=3,
            cancelled=False,
        )
    ]


async def test_chunked_stream_that_fails_sends_no_is_final(autojump_clock):
    class Broken(ScriptedTTS):
        def synthesize(self, text, *, conn_options=DEFAULT_API_CONNECT_OPTIONS):
            return BrokenChunked(self, text, conn_options=conn_options)

    class BrokenChunked(ChunkedStream):
        async def _run(self):
            await self._emit_frame(tone(0.1))
            raise APIConnectionError("gone")

    got = []
    async with Broken().synthesize("abc") as stream:
        with pytest.raises(APIConnectionError):
            async for item in stream:
                got.append(item.is_final)
    assert got == [False]


async def test_synthesize_stream_segments_and_metrics(autojump_clock):
    tts = ScriptedTTS()
    metrics = []
    tts.on("metrics_collected", metrics.append)
    async with tts.stream() as stream:
        await trio.sleep(1.0)
        await stream.push_text("ab")
        await stream.push_text("")  # ignored
        await stream.flush()
        await stream.push_text("c")
        stream.end_input()
        items = await stream.collect()
        with pytest.raises(TypeError, match="push_text expects a str, got int"):
            await stream.push_text(3)
    assert {i.request_id for i in items} == {stream.request_id}
    assert [(i.segment_id, i.is_final) for i in items] == [
        ("s0", False),
        ("s0", False),
        ("s0", True),
        ("s1", False),
        ("s1", True),
    ]
    (m,) = metrics
    assert m.streamed
    assert m.ttfb == pytest.approx(0.1)
    assert m.characters_count == 3
    assert m.audio_duration == pytest.approx(0.3)
    assert m.duration == pytest.approx(1.3)


async def test_synthesize_stream_ttfb_when_audio_comes_at_time_zero(autojump_clock):
    class Instant(ScriptedTTS):
        def stream(self, *, conn_options=DEFAULT_API_CONNECT_OPTIONS):
            return InstantStream(self, conn_options=conn_options)

    class InstantStream(SynthesizeStream):
        async def _run(self):
            async for _ in self._input:
                await self._emit_frame(tone(0.1))
                await self._end_segment()

    tts = Instant()
    metrics = []
    tts.on("metrics_collected", metrics.append)
    async with tts.stream() as stream:
        await stream.push_text("a")
        stream.end_input()
        await stream.collect()
    assert metrics[0].ttfb == 0.0


async def test_synthesize_stream_without_input_has_no_ttfb(autojump_clock):
    tts = ScriptedTTS()
    metrics = []
    tts.on("metrics_collected", metrics.append)
    async with tts.stream() as stream:
        stream.end_input()
        assert await stream.collect() == []
    assert metrics[0].ttfb == -1.0


def test_batch_tts_does_not_stream():
    class Batch(ScriptedTTS):
        def stream(self, *, conn_options=DEFAULT_API_CONNECT_OPTIONS):
            return TTS.stream(self, conn_options=conn_options)

    with pytest.raises(NotImplementedError, match=r"wrap it: tts\.StreamAdapter"):
        Batch().stream()


async def test_vad_stream_refuses_what_is_not_a_frame(autojump_clock):
    vad = SlowVAD()
    assert vad.capabilities.update_interval == 0.1
    assert vad.label.endswith("SlowVAD")
    async with vad.stream() as stream:
        with pytest.raises(TypeError, match="got bytes"):
            await stream.push_frame(b"\0\0")


async def test_input_streams_retry_with_the_input_not_yet_read(autojump_clock):
    seen = []

    class Flaky(ScriptedSTT):
        def stream(self, *, language=None, conn_options=DEFAULT_API_CONNECT_OPTIONS):
            return FlakyStream(self, language=language, conn_options=conn_options)

    class FlakyStream(RecognizeStream):
        attempt = 0

        async def _run(self):
            self.attempt += 1
            async for item in self._input:
                seen.append((self.attempt, item.duration))
                if self.attempt == 1:
                    raise APIConnectionError("reset")
            await self._emit(SpeechEvent(type=SpeechEventType.END_OF_SPEECH))

    async with Flaky().stream() as stream:
        for d in (0.1, 0.2, 0.3):
            await stream.push_frame(AudioFrame.silence(d, 16000))
        stream.end_input()
        events = await stream.collect()
    assert [e.type for e in events] == [SpeechEventType.END_OF_SPEECH]
    assert seen == [(1, 0.1), (2, 0.2), (2, 0.3)]
    assert trio.current_time() == 0.5


async def test_pushing_to_a_failed_input_stream_is_dropped_not_blocked(autojump_clock):
    class Dead(ScriptedSTT):
        def stream(self, *, language=None, conn_options=DEFAULT_API_CONNECT_OPTIONS):
            return DeadStream(self, language=language, conn_options=conn_options)

    class DeadStream(RecognizeStream):
        async def _run(self):
            raise APIStatusError("bad key", status_code=401)

    async with Dead().stream() as stream:
        await trio.sleep(1.0)
        # far more than the input buffer holds: none of it blocks
        for _ in range(1000):
            await stream.push_frame(AudioFrame.silence(0.01, 16000))
        with pytest.raises(APIStatusError, match="bad key"):
            await stream.collect()
    assert trio.current_time() == 1.0


# -- cancellation of every stream kind ------------------------------------------------------


async def _use_llm() -> list[float]:
    cleanup: list[float] = []

    async def endless(attempt, stream):
        try:
            while True:
                await stream.say("x")
                await trio.sleep(0.3)
        finally:
            cleanup.append(trio.current_time())

    async with ScriptedLLM(endless).chat(chat_ctx=user_says()) as stream:
        async for _ in stream:
            pass
    return cleanup


async def _use_chunked(tts: ScriptedTTS) -> None:
    async with tts.synthesize("x" * 1000) as stream:
        await stream.collect()


async def _use_synthesize(tts: ScriptedTTS) -> None:
    async with tts.stream() as stream:
        await stream.push_text("x" * 1000)
        stream.end_input()
        await stream.collect()


async def _use_recognize(stt: ScriptedSTT) -> None:
    async with stt.stream() as stream:
        for _ in range(1000):
            await stream.push_frame(AudioFrame.silence(0.1, 16000))
            await trio.sleep(0.1)


async def _use_vad(vad: SlowVAD) -> None:
    async with vad.stream() as stream:
        await stream.push_frame(AudioFrame.silence(0.1, 16000))
        stream.end_input()
        await stream.collect()


@pytest.mark.parametrize(
    ("make", "use"),
    [
        (ScriptedTTS, _use_chunked),
        (ScriptedTTS, _use_synthesize),
        (ScriptedSTT, _use_recognize),
        (lambda: SlowVAD(delay=1e9), _use_vad),
    ],
)
async def test_cancelling_any_stream_mid_flight_leaves_nothing_running(autojump_clock, make, use):
    model = make()
    me = trio.lowlevel.current_task()
    with trio.move_on_after(1.05) as scope:
        await use(model)
    assert scope.cancelled_caught
    assert trio.current_time() == 1.05
    assert model.cleanup == [1.05]
    assert tasks_below(me) == []


async def test_cancelling_an_llm_stream_mid_flight_leaves_nothing_running(autojump_clock):
    me = trio.lowlevel.current_task()
    async with trio.open_nursery() as nursery:
        nursery.cancel_scope.deadline = 1.0
        nursery.start_soon(_use_llm)
        await trio.sleep_forever()
    assert nursery.cancel_scope.cancelled_caught
    assert trio.current_time() == 1.0
    assert tasks_below(me) == []


# -- small utilities ------------------------------------------------------------------------


def test_now_outside_trio_is_zero():
    assert now() == 0.0


async def test_now_inside_trio_is_trio_time(autojump_clock):
    await trio.sleep(1.5)
    assert now() == 1.5


def test_short_ids_are_unique_and_prefixed():
    ids = {short_id("speech") for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("speech_") and len(i) == len("speech_") + 12 for i in ids)
