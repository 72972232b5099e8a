"""Turn detection modes, nodes, errors and RunResult."""

import pytest
import trio

from tests.voice.conftest import Assistant, Recorder
from tvoice import APIError, function_tool
from tvoice.llm import ChatContext, FunctionCall
from tvoice.testing import Timeline
from tvoice.voice import Agent, ModelSettings


def hello_timeline(stt_delay=0.2):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Hello", stt_delay=stt_delay)
    tl.llm(input="Hello", content="Hi!")
    tl.tts(input="Hi!", audio_duration=1.0)
    return tl


async def thinking_at(tl, **options):
    async with tl.session(**options) as session:
        rec = Recorder(session)
        await session.start(Assistant())
        await tl.wait_done()
    return [t for s, t in rec.agent_states if s == "thinking"]


async def test_turn_detection_stt_ends_at_stt_end_of_speech(autojump_clock):
    # FakeSTT sends END_OF_SPEECH with the final transcript (2.7): + min delay 0.5.
    assert await thinking_at(hello_timeline(), turn_detection="stt") == [pytest.approx(3.2)]


async def test_turn_detection_vad_is_the_default(autojump_clock):
    assert await thinking_at(hello_timeline()) == [pytest.approx(3.0)]


async def test_turn_detector_stretches_the_delay(autojump_clock):
    class Unsure:
        def __init__(self):
            self.seen = []

        async def predict_end_of_turn(self, chat_ctx):
            self.seen.append(chat_ctx.items[-1].text_content)
            return 0.25

    detector = Unsure()
    at = await thinking_at(
        hello_timeline(),
        turn_detection=detector,
        min_endpointing_delay=0.5,
        max_endpointing_delay=2.5,
    )
    # 0.5 + (2.5 - 0.5) * (1 - 0.25) = 2.0 after the end of speech (2.5).
    assert at == [pytest.approx(4.5)]
    assert detector.seen == ["Hello"]


async def test_manual_turns_commit_and_clear(autojump_clock):
    tl = hello_timeline()
    tl.user_speech(start=5.0, end=6.0, transcript="Forget this")
    async with tl.session(turn_detection="manual") as session:
        rec = Recorder(session)
        await session.start(Assistant())
        await trio.sleep(4.0)
        assert tl.llm_requests == []
        session.commit_user_turn()
        await trio.sleep(3.0)
        session.clear_user_turn()
        await tl.wait_done()
    assert tl.llm_requests == ["Hello"]
    assert [t for s, t in rec.agent_states if s == "thinking"] == [4.0]
    assert [m.text_content for m in session.history.messages()] == ["Hello", "Hi!"]


async def test_llm_error_is_reported_and_the_session_goes_on(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Unscripted")
    tl.user_speech(start=4.0, end=5.0, transcript="Hello")
    tl.llm(input="Hello", content="Hi!")
    tl.tts(input="Hi!", audio_duration=1.0)
    async with tl.session() as session:
        rec = Recorder(session)
        await session.start(Assistant())
        await tl.wait_done()
    [error] = rec.of("error")
    assert isinstance(error.error, APIError)
    assert "no LLM reply scripted for 'Unscripted'" in str(error.error)
    assert [m.text_content for m in session.history.messages()] == ["Unscripted", "Hello", "Hi!"]


async def test_tts_error_keeps_the_text(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Hello")
    tl.llm(input="Hello", content="No audio for this.")
    async with tl.session() as session:
        rec = Recorder(session)
        await session.start(Assistant())
        await tl.wait_done()
    assert [type(e.error).__name__ for e in rec.of("error")] == ["APIStatusError"]
    assert tl.audio_output.playbacks == []


async def test_nodes_can_be_overridden(autojump_clock):
    class Shouty(Assistant):
        async def llm_node(self, chat_ctx, tools, model_settings):
            async for chunk in Agent.llm_node(self, chat_ctx, tools, model_settings):
                yield chunk.delta.content.upper() if chunk.delta and chunk.delta.content else chunk

        async def transcription_node(self, text, model_settings):
            async for piece in text:
                yield f"[{piece}]"

    tl = hello_timeline()
    tl.tts(input="HI!", audio_duration=1.0)
    async with tl.session() as session:
        await session.start(Shouty())
        await tl.wait_done()
    assert session.history.messages()[-1].text_content == "HI!"
    assert tl.text_output.segments == ["[HI!]"]


async def test_a_node_override_may_give_the_default_node_settings_of_its_own(autojump_clock):
    # Fresh settings name no models: the default nodes run on those the agent runs on.
    class OwnSettings(Assistant):
        async def stt_node(self, audio, model_settings):
            async for event in Agent.stt_node(self, audio, ModelSettings()):
                yield event

        async def llm_node(self, chat_ctx, tools, model_settings):
            settings = ModelSettings(tool_choice="none")
            async for chunk in Agent.llm_node(self, chat_ctx, tools, settings):
                yield chunk

        async def tts_node(self, text, model_settings):
            async for frame in Agent.tts_node(self, text, ModelSettings()):
                yield frame

    tl = hello_timeline()
    async with tl.session() as session:
        rec = Recorder(session)
        await session.start(OwnSettings())
        await tl.wait_done()
    assert rec.of("error") == []
    assert [m.text_content for m in session.history.messages()] == ["Hello", "Hi!"]
    assert [p.position for p in tl.audio_output.playbacks] == [1.0]


async def test_a_default_node_outside_a_session_runs_on_the_models_it_is_given():
    with pytest.raises(RuntimeError, match="has no LLM"):
        async for _ in Assistant().llm_node(ChatContext(), [], ModelSettings()):
            pass


@pytest.mark.parametrize("own_node", [False, True])
async def test_a_reply_without_text_output(autojump_clock, own_node):
    seen = []

    class Noted(Assistant):
        async def transcription_node(self, text, model_settings):
            async for piece in text:
                seen.append(piece)
                yield piece

    tl = hello_timeline()
    async with tl.session() as session:
        rec = Recorder(session)
        await session.start(Noted() if own_node else Assistant())
        session.text_output = None  # the transcript goes nowhere
        await tl.wait_done()
    (reply,) = [m for m in session.history.messages() if m.role == "assistant"]
    assert reply.text_content == "Hi!"
    assert not reply.interrupted
    assert [s for s, _ in rec.agent_states] == ["listening", "thinking", "speaking", "listening"]
    assert tl.text_output.segments == []
    # An agent's own transcription node still runs: it may do more than pass the text on.
    assert seen == (["Hi!"] if own_node else [])


async def test_update_agent_from_outside(autojump_clock):
    class Second(Agent):
        def __init__(self):
            super().__init__(instructions="Second.")

    tl = hello_timeline()
    async with tl.session() as session:
        await session.start(Assistant())
        second = Second()
        session.update_agent(second)
        await tl.wait_done()
        assert session.current_agent is second
    assert tl.llm_requests == ["Hello"]
    assert [i.type for i in second.chat_ctx.items][-3:] == ["agent_handoff", "message", "message"]


class Shop(Assistant):
    @function_tool
    async def order(self, item: str, quantity: int = 1) -> str:
        """Order an item."""
        return f"Ordered {quantity} {item}."


async def test_run_result_expectations(autojump_clock):
    tl = Timeline()
    order = FunctionCall(call_id="c1", name="order", arguments='{"item": "pizza"}')
    tl.llm(input="One pizza please.", content="Ordering.", tool_calls=[order])
    tl.llm(input="Ordered 1 pizza.", content="Your pizza is ordered.")
    tl.llm(
        input="Intent: confirms the order\n\nMessage: Your pizza is ordered.",
        tool_calls=[
            FunctionCall(
                call_id="j", name="check_intent", arguments='{"success": true, "reason": "ok"}'
            )
        ],
    )
    tl.llm(
        input="Intent: talks about the weather\n\nMessage: Your pizza is ordered.",
        tool_calls=[
            FunctionCall(
                call_id="j",
                name="check_intent",
                arguments='{"success": false, "reason": "it does not"}',
            )
        ],
    )
    async with tl.session(stt=None, vad=None, tts=None) as session:
        await session.start(Shop(), text_only=True)
        result = await session.run(user_input="One pizza please.")
    assert result.expect is result.expect  # one cursor
    expect = result.expect
    assert expect.skip_next_event_if(type="message", role="user") is None
    expect.skip_next_event_if(type="message", role="assistant")  # "Ordering."
    expect.next_event().is_function_call(name="order", arguments={"item": "pizza"})
    expect.next_event().is_function_call_output(output="Ordered 1 pizza.", is_error=False)
    message = expect.next_event().is_message(role="assistant")
    await message.judge(tl.fake_llm, intent="confirms the order")
    with pytest.raises(AssertionError, match="it does not"):
        await message.judge(tl.fake_llm, intent="talks about the weather")
    expect.no_more_events()
    assert result.final_output == "Your pizza is ordered."
    with pytest.raises(AssertionError, match=r"expected a function call, got message"):
        result.expect[0].is_function_call()
    with pytest.raises(AssertionError, match=r"there are no more"):
        result.expect.next_event()


async def test_session_guards(autojump_clock):
    session_factory = Timeline().session
    async with session_factory() as session:
        with pytest.raises(RuntimeError, match="has not started"):
            session.say("x")
        await session.start(Assistant())
        with pytest.raises(RuntimeError, match="already started"):
            await session.start(Assistant())
        with pytest.raises(ValueError, match="no userdata"):
            _ = session.userdata
    from tvoice.voice import AgentSession

    with pytest.raises(RuntimeError, match="async with"):
        await AgentSession().start(Assistant())


async def test_a_batch_stt_is_streamed_through_the_vad(autojump_clock):
    from tvoice.stt import STT, STTCapabilities

    class BatchOnly(STT):
        def __init__(self, fake):
            super().__init__(capabilities=STTCapabilities(streaming=False))
            self.fake = fake

        async def _recognize_impl(self, frame, *, language, conn_options):
            return await self.fake.recognize(frame)

    tl = hello_timeline()
    async with tl.session(stt=BatchOnly(tl.fake_stt)) as session:
        rec = Recorder(session)
        await session.start(Assistant())
        await tl.wait_done()
    # The VAD ends the utterance at 3.0; recognition is instant; the turn commits at once.
    assert [t for s, t in rec.agent_states if s == "thinking"] == [3.0]
    assert [m.text_content for m in session.history.messages()] == ["Hello", "Hi!"]


async def test_a_slow_transcript_keeps_the_turn_pending(autojump_clock):
    tl = hello_timeline(stt_delay=3.0)  # the final arrives 2.5 s after the VAD's end (3.0)
    async with tl.session() as session:
        await session.start(Assistant())
        await trio.sleep(4.0)
        assert not session.idle  # the recognizer has not answered yet
        await session.wait_for_idle()
        assert trio.current_time() == 7.0  # final 5.5 + LLM 0.3 + TTS 0.2 + 1.0 s of audio
    assert tl.llm_requests == ["Hello"]
