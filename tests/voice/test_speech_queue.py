"""The speech queue: say and generate_reply by priority, one at a time; an interruption drops
what is queued."""

import pytest
import trio

from tests.voice.conftest import Assistant
from tvoice.testing import Timeline
from tvoice.voice import SPEECH_PRIORITY_HIGH, SpeechHandle


async def test_say_generate_reply_and_priority(autojump_clock):
    tl = Timeline()
    for text, seconds in (("First.", 1.0), ("Urgent.", 1.0), ("Second.", 1.0), ("Sure.", 1.0)):
        tl.tts(input=text, audio_duration=seconds)
    tl.llm(input="Be brief.", content="Sure.")
    async with tl.session() as session:
        created = []
        session.on("speech_created", lambda e: created.append((e.source, e.user_initiated)))
        await session.start(Assistant())
        first = session.say("First.")
        second = session.say("Second.", allow_interruptions=False)
        reply = session.generate_reply(instructions="Be brief.")
        urgent = session._runtime.activity.say(
            "Urgent.",
            allow_interruptions=None,
            add_to_chat_ctx=True,
            priority=SPEECH_PRIORITY_HIGH,
        )
        assert isinstance(first, SpeechHandle)
        with pytest.raises(RuntimeError, match="does not allow interruptions"):
            second.interrupt()
        await reply
        assert all(h.done() for h in (first, second, urgent))
    texts = [m.text_content for m in session.history.messages()]
    # Queued before the scheduler ran: the high priority one goes first, then in order.
    assert texts == ["Urgent.", "First.", "Second.", "Sure."]
    assert created == [("say", True), ("say", True), ("generate_reply", True), ("say", True)]
    assert tl.llm_requests == ["Be brief."]


async def test_interrupt_drops_queued_speech(autojump_clock):
    tl = Timeline()
    tl.tts(input="One.", audio_duration=5.0)
    tl.tts(input="Two.", audio_duration=5.0)
    async with tl.session() as session:
        await session.start(Assistant())
        one, two = session.say("One."), session.say("Two.")
        await trio.sleep(1.0)
        session.interrupt()
        await two
        assert one.interrupted
        assert two.interrupted
    assert [(p.position, p.interrupted) for p in tl.audio_output.playbacks] == [
        (pytest.approx(0.8), True)
    ]
