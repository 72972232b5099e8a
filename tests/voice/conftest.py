import pytest

from tvoice.voice import Agent


class Assistant(Agent):
    def __init__(self, **kwargs) -> None:
        super().__init__(instructions="You are a helpful assistant.", **kwargs)


class Recorder:
    """Every session event, with the agent and user state timelines."""

    def __init__(self, session) -> None:
        self.events = []
        for name in (
            "user_state_changed",
            "agent_state_changed",
            "user_input_transcribed",
            "conversation_item_added",
            "function_tools_executed",
            "speech_created",
            "agent_false_interruption",
            "metrics_collected",
            "error",
            "close",
        ):
            session.on(name, self.events.append)

    def of(self, type_):
        return [e for e in self.events if e.type == type_]

    @property
    def agent_states(self):
        return [(e.new_state, e.created_at) for e in self.of("agent_state_changed")]

    @property
    def user_states(self):
        return [(e.new_state, e.created_at) for e in self.of("user_state_changed")]

    def metrics(self, type_):
        return [e.metrics for e in self.of("metrics_collected") if e.metrics.type == type_]


def kinds(history):
    return [
        (i.type, i.role) if i.type == "message" else (i.type, getattr(i, "name", None))
        for i in history.items
        if i.type != "agent_handoff"
    ]


@pytest.fixture
def assistant():
    return Assistant()
