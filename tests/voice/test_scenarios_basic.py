import pytest

from tvoice.testing import Timeline
from tvoice.voice import Agent


class Assistant(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are a helpful assistant.")


def record_states(session):
    states = []
    session.on("agent_state_changed", lambda e: states.append(("agent", e.new_state, e.created_at)))
    session.on("user_state_changed", lambda e: states.append(("user", e.new_state, e.created_at)))
    return states


async def test_basic_turn(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Hello, how are you?", stt_delay=0.2)
    tl.llm(input="Hello, how are you?", content="I'm well.", ttft=0.1, duration=0.3)
    tl.tts(input="I'm well.", audio_duration=2.0, ttfb=0.2, duration=0.3)
    metrics = []
    async with tl.session() as session:
        states = record_states(session)
        session.on("metrics_collected", lambda e: metrics.append(e.metrics))
        await session.start(Assistant())
        await tl.wait_done()
    print(states)
    assert ("user", "speaking", pytest.approx(0.55)) in states
    assert ("user", "listening", pytest.approx(3.0)) in states
    agent = [(s, t) for who, s, t in states if who == "agent"]
    assert agent == [
        ("listening", 0.0),
        ("thinking", pytest.approx(3.0)),
        ("speaking", pytest.approx(3.5)),
        ("listening", pytest.approx(5.5)),
    ]
    items = session.history.items
    assert [(i.type, getattr(i, "role", None)) for i in items] == [
        ("agent_handoff", None),
        ("message", "user"),
        ("message", "assistant"),
    ]
