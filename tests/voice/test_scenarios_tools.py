"""Issue scenarios 2 and 9-13: tool calls, tools under interruption, handoffs, tasks, hooks,
errors, away, close."""

import json

import pytest
import trio

from tests.voice.conftest import Assistant, Recorder, kinds
from tvoice import StopResponse, ToolError, function_tool
from tvoice.llm import FunctionCall
from tvoice.testing import Timeline
from tvoice.voice import Agent, AgentTask, RunContext


def call(tool_name, call_id="call_1", **arguments):
    return FunctionCall(call_id=call_id, name=tool_name, arguments=json.dumps(arguments))


async def test_2_tool_call_with_text_before_it(autojump_clock):
    from tvoice import function_tool
    from tvoice.llm import FunctionCall

    class Weather(Assistant):
        @function_tool
        async def get_weather(self, city: str) -> str:
            """Current weather in a city."""
            return f"Sunny in {city}."

    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Weather in Paris?")
    call = FunctionCall(call_id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    tl.llm(input="Weather in Paris?", content="Let me check.", tool_calls=[call])
    tl.tts(input="Let me check.", audio_duration=1.0)
    tl.llm(input="Sunny in Paris.", content="It is sunny in Paris.")
    tl.tts(input="It is sunny in Paris.", audio_duration=2.0)
    async with tl.session() as session:
        rec = Recorder(session)
        await session.start(Weather())
        await tl.wait_done()
    assert rec.agent_states == [
        ("listening", 0.0),
        ("thinking", 3.0),
        ("speaking", 3.5),
        ("thinking", 4.5),
        ("speaking", 5.0),
        ("listening", 7.0),
    ]
    assert kinds(session.history) == [
        ("message", "user"),
        ("message", "assistant"),
        ("function_call", "get_weather"),
        ("function_call_output", "get_weather"),
        ("message", "assistant"),
    ]
    [executed] = rec.of("function_tools_executed")
    assert executed.function_call_outputs[0].output == "Sunny in Paris."
    assert tl.llm_requests == ["Weather in Paris?", "Sunny in Paris."]


class Weather(Assistant):
    def __init__(self, delay=0.0) -> None:
        super().__init__()
        self.delay = delay
        self.calls = 0

    @function_tool
    async def get_weather(self, city: str) -> str:
        """Current weather in a city."""
        self.calls += 1
        await trio.sleep(self.delay)
        return f"Sunny in {city}."


def weather_timeline(*, check_audio=1.0):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Weather in Paris?")
    tl.llm(
        input="Weather in Paris?",
        content="Let me check.",
        tool_calls=[call("get_weather", city="Paris")],
    )
    tl.tts(input="Let me check.", audio_duration=check_audio)
    tl.llm(input="Sunny in Paris.", content="It is sunny.")
    tl.tts(input="It is sunny.", audio_duration=1.0)
    return tl


def count_ids(ctx, item_type):
    return [i for i in ctx.items if i.type == item_type]


async def test_9_tool_result_survives_interrupting_its_speech(autojump_clock):
    tl = weather_timeline(check_audio=2.0)
    tl.user_speech(start=4.0, end=5.0, transcript="Never mind.")
    tl.llm(input="Never mind.", content="OK.")
    tl.tts(input="OK.", audio_duration=1.0)
    agent = Weather()
    async with tl.session() as session:
        await session.start(agent)
        await tl.wait_done()
    assert agent.calls == 1
    assert kinds(session.history) == [
        ("message", "user"),
        ("message", "assistant"),
        ("function_call", "get_weather"),
        ("function_call_output", "get_weather"),
        ("message", "user"),
        ("message", "assistant"),
    ]
    heard = session.history.messages()[1]
    assert (heard.text_content, heard.interrupted) == ("Let", True)  # 1.05 s of 2 s heard
    for ctx in (session.history, agent.chat_ctx):
        assert len(count_ids(ctx, "function_call")) == 1
        assert len(count_ids(ctx, "function_call_output")) == 1
    assert tl.llm_requests == ["Weather in Paris?", "Never mind."]


async def test_9_a_silent_tool_step_leaves_the_turn_latency_to_the_answer(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Weather in Paris?")
    tl.llm(input="Weather in Paris?", content="", tool_calls=[call("get_weather", city="Paris")])
    tl.llm(input="Sunny in Paris.", content="It is sunny.", ttft=0.1, duration=0.2)
    tl.tts(input="It is sunny.", audio_duration=1.0, ttfb=0.2)
    async with tl.session() as session:
        rec = Recorder(session)
        await session.start(Weather(delay=0.5))
        await tl.wait_done()
    [playback] = tl.audio_output.playbacks
    [turn] = rec.metrics("turn_metrics")
    assert turn.e2e_latency == pytest.approx(playback.started_at - 2.5)
    assert turn.llm_ttft == pytest.approx(0.1)  # the step that spoke
    assert turn.tts_ttfb == pytest.approx(0.3)  # its sentence ends at 0.2 s, audio 0.2 s later
    assert turn.end_of_utterance_delay == pytest.approx(0.5)


async def test_9_slow_tool_output_kept_after_interruption(autojump_clock):
    tl = weather_timeline()
    tl.user_speech(start=5.0, end=6.0, transcript="Hurry up!")
    tl.llm(input="Hurry up!", content="Working on it.")
    tl.tts(input="Working on it.", audio_duration=1.0)
    agent = Weather(delay=10.0)  # finishes at 13.3, long after the interruption at 6.1
    async with tl.session() as session:
        await session.start(agent)
        await tl.wait_done()
        assert autojump_clock.current_time() == pytest.approx(13.3)
    assert kinds(session.history) == [
        ("message", "user"),
        ("message", "assistant"),
        ("function_call", "get_weather"),
        ("message", "user"),
        ("message", "assistant"),
        ("function_call_output", "get_weather"),
    ]
    for ctx in (session.history, agent.chat_ctx):
        assert len(count_ids(ctx, "function_call_output")) == 1
    # The interrupted reply does not go on: no LLM call for the late tool output.
    assert tl.llm_requests == ["Weather in Paris?", "Hurry up!"]


class Greeter(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="Greet, then transfer to sales.")

    @function_tool
    async def transfer_to_sales(self):
        """Hand the caller to sales."""
        return Sales(), "Transferring you to sales."


class Sales(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="Sell things.")
        self.entered_at = None
        self.chat_on_enter = None

    async def on_enter(self) -> None:
        self.entered_at = trio.current_time()
        self.chat_on_enter = [i.type for i in self.chat_ctx.items]
        await self.session.say("Sales here, how can I help?")


async def test_10_handoff_through_a_tool(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="I want to buy.")
    tl.llm(input="I want to buy.", tool_calls=[call("transfer_to_sales")])
    tl.tts(input="Sales here, how can I help?", audio_duration=2.0)
    greeter = Greeter()
    async with tl.session() as session:
        rec = Recorder(session)
        await session.start(greeter)
        await tl.wait_done()
        sales = session.current_agent
    assert isinstance(sales, Sales)
    assert sales.entered_at == pytest.approx(3.3)
    handoffs = [i for i in session.history.items if i.type == "agent_handoff"]
    assert [(h.old_agent_id, h.new_agent_id) for h in handoffs] == [
        (None, greeter.id),
        (greeter.id, sales.id),
    ]
    # The chat is carried over to the new agent.
    assert "function_call_output" in sales.chat_on_enter
    assert kinds(session.history)[-1] == ("message", "assistant")
    assert session.history.messages()[-1].text_content == "Sales here, how can I help?"
    assert tl.llm_requests == ["I want to buy."]  # no reply from the old agent
    assert rec.agent_states[-1] == ("listening", pytest.approx(5.5))


class CollectName(AgentTask[str]):
    def __init__(self) -> None:
        super().__init__(instructions="Ask for the caller's name.")

    async def on_enter(self) -> None:
        self.session.say("What is your name?")

    @function_tool
    async def record_name(self, name: str) -> None:
        """Record the caller's name."""
        self.complete(name)


class Booker(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="Book tables.")
        self.name = None

    @function_tool
    async def book(self, context: RunContext) -> str:
        """Book a table (asks for the name first)."""
        self.name = await CollectName()
        return f"Booked for {self.name}."


async def test_10_agent_task_returns_a_value(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Book a table.")
    tl.llm(input="Book a table.", tool_calls=[call("book")])
    tl.tts(input="What is your name?", audio_duration=1.0)
    tl.user_speech(start=5.0, end=6.0, transcript="Ada.")
    tl.llm(input="Ada.", tool_calls=[call("record_name", call_id="call_2", name="Ada")])
    tl.llm(input="Booked for Ada.", content="Done, Ada.")
    tl.tts(input="Done, Ada.", audio_duration=1.0)
    booker = Booker()
    async with tl.session() as session:
        await session.start(booker)
        await tl.wait_done()
        assert session.current_agent is booker
    assert booker.name == "Ada"
    assert session.history.messages()[-1].text_content == "Done, Ada."
    handoff_targets = [
        type(session.agent_by_id(i.new_agent_id)).__name__
        for i in session.history.items
        if i.type == "agent_handoff"
    ]
    assert handoff_targets == ["Booker", "CollectName", "Booker"]
    outputs = [i.output for i in session.history.items if i.type == "function_call_output"]
    assert outputs == ["", "Booked for Ada."]


class Gatekeeper(Assistant):
    async def on_user_turn_completed(self, turn_ctx, new_message) -> None:
        if "secret" in new_message.text_content:
            self.session.say("I can't talk about that.")
            raise StopResponse()
        new_message.content = [new_message.text_content.upper()]


async def test_10_on_user_turn_completed_say_and_stop_response(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Tell me the secret.")
    tl.tts(input="I can't talk about that.", audio_duration=1.0)
    tl.user_speech(start=5.0, end=6.0, transcript="hello")
    tl.llm(input="HELLO", content="Hi.")
    tl.tts(input="Hi.", audio_duration=1.0)
    async with tl.session() as session:
        await session.start(Gatekeeper())
        await tl.wait_done()
    assert tl.llm_requests == ["HELLO"]
    assert [(m.role, m.text_content) for m in session.history.messages()] == [
        ("user", "Tell me the secret."),
        ("assistant", "I can't talk about that."),
        ("user", "HELLO"),
        ("assistant", "Hi."),
    ]


class Looper(Assistant):
    @function_tool
    async def again(self) -> str:
        """Always asks to be called again."""
        return "call again"


async def test_10_max_tool_steps(autojump_clock, caplog):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Loop.")
    tl.llm(input="Loop.", tool_calls=[call("again")])
    tl.llm(input="call again", tool_calls=[call("again", call_id="call_n")])
    async with tl.session(max_tool_steps=2) as session:
        await session.start(Looper())
        await tl.wait_done()
    assert tl.llm_requests == ["Loop.", "call again", "call again"]
    assert len([i for i in session.history.items if i.type == "function_call_output"]) == 3
    assert "max_tool_steps (2) reached" in caplog.text


class Fragile(Assistant):
    @function_tool
    async def divide(self, a: int, b: int) -> str:
        """Divide a by b."""
        if b == 1:
            raise ToolError("dividing by one is pointless")
        return str(a / b)


async def test_11_tool_errors_become_outputs(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Compute.")
    tl.llm(
        input="Compute.",
        tool_calls=[
            call("nonexistent", call_id="c1"),
            call("divide", call_id="c2", a="x"),
            call("divide", call_id="c3", a=1, b=0),
            FunctionCall(call_id="c5", name="divide", arguments="{not json"),
            call("divide", call_id="c4", a=1, b=1),
        ],
    )
    tl.llm(input="dividing by one is pointless", content="Sorry.")
    tl.tts(input="Sorry.", audio_duration=1.0)
    async with tl.session() as session:
        rec = Recorder(session)
        await session.start(Fragile())
        await tl.wait_done()
    outputs = {i.call_id: i for i in session.history.items if i.type == "function_call_output"}
    assert all(o.is_error for o in outputs.values())
    assert outputs["c1"].output == "Unknown function: 'nonexistent'"
    assert "argument 'a': expected an integer" in outputs["c2"].output
    assert "missing required argument 'b'" in outputs["c2"].output
    assert outputs["c3"].output == "An internal error occurred while running the tool."
    assert "ZeroDivision" not in outputs["c3"].output
    assert outputs["c4"].output == "dividing by one is pointless"
    assert "not valid JSON" in outputs["c5"].output
    assert [type(e.error).__name__ for e in rec.of("error")] == ["ZeroDivisionError"]
    assert session.history.messages()[-1].text_content == "Sorry."


async def test_12_user_away(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Weather in Paris?")
    tl.llm(input="Weather in Paris?", tool_calls=[call("get_weather", city="Paris")])
    tl.llm(input="Sunny in Paris.", content="Sunny.")
    tl.tts(input="Sunny.", audio_duration=1.0)
    async with tl.session(user_away_timeout=5.0) as session:
        rec = Recorder(session)
        await session.start(Weather(delay=20.0))  # the tool runs 3.3 .. 23.3
        await tl.wait_done()
        await trio.sleep(10)
    away = [t for s, t in rec.user_states if s == "away"]
    # Idle from 24.8 (end of the reply), not while the tool ran.
    assert away == [pytest.approx(29.8)]


async def test_12_away_from_the_start_and_back(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=20.0, end=21.0, transcript="")
    async with tl.session(user_away_timeout=15.0) as session:
        rec = Recorder(session)
        await session.start(Assistant())
        await tl.wait_done()
    assert rec.user_states == [("away", 15.0), ("speaking", 20.05), ("listening", 21.5)]


async def test_13_hanging_models_close_within_close_timeout(autojump_clock):
    from tvoice.llm import LLM, LLMStream

    class HangingLLM(LLM):
        def chat(self, **kwargs):
            return Hang(self, chat_ctx=kwargs["chat_ctx"])

    class Hang(LLMStream):
        _idle_timeout = False

        async def _run(self) -> None:
            await trio.sleep_forever()

    class HangingExit(Assistant):
        async def on_exit(self) -> None:
            await trio.sleep_forever()

    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Hello?")
    closes = []
    async with tl.session(llm=HangingLLM(), close_timeout=2.0) as session:
        session.on("close", closes.append)
        await session.start(HangingExit())
        await trio.sleep(10.0)
        assert session.agent_state == "thinking"
    assert trio.current_time() == pytest.approx(12.0)
    assert [c.reason for c in closes] == ["user_initiated"]
    assert [m.text_content for m in session.history.messages()] == ["Hello?"]


async def test_13_pending_transcript_committed_on_close(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Goodbye.")
    async with tl.session(min_endpointing_delay=5.0) as session:
        await session.start(Assistant())
        await trio.sleep(3.0)
    assert [m.text_content for m in session.history.messages()] == ["Goodbye."]
    assert tl.llm_requests == []
