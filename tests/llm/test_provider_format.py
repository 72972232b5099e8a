from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.llm.strict_openai import message_errors
from tvoice.llm import (
    AgentHandoff,
    ChatContext,
    ChatMessage,
    FunctionCall,
    FunctionCallOutput,
    function_tool,
    to_openai_messages,
    to_openai_tools,
)


def call(call_id: str, arguments: str = '{"x": 1}') -> FunctionCall:
    return FunctionCall(call_id=call_id, name="f", arguments=arguments)


def output(call_id: str) -> FunctionCallOutput:
    return FunctionCallOutput(call_id=call_id, name="f", output=f"out {call_id}", is_error=False)


def tool_call(call_id: str, arguments: str = '{"x": 1}') -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "f", "arguments": arguments}}


def test_messages_keep_their_roles_except_developer():
    ctx = ChatContext()
    ctx.add_message(role="system", content="sys")
    ctx.add_message(role="developer", content="dev")
    ctx.add_message(role="user", content=["line 1", "line 2"])
    ctx.add_message(role="assistant", content=[])
    assert to_openai_messages(ctx) == [
        {"role": "system", "content": "sys"},
        {"role": "system", "content": "dev"},
        {"role": "user", "content": "line 1\nline 2"},
        {"role": "assistant", "content": ""},
    ]


def test_calls_join_the_assistant_message_right_before_them():
    ctx = ChatContext(
        [
            ChatMessage(role="user", content="weather?"),
            ChatMessage(role="assistant", content="Let me look."),
            AgentHandoff(new_agent_id="ignored"),
            call("a"),
            call("b", arguments=""),
            output("a"),
            output("b"),
            ChatMessage(role="assistant", content="Sunny."),
        ]
    )
    assert to_openai_messages(ctx) == [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [tool_call("a"), tool_call("b", arguments="{}")],
        },
        {"role": "tool", "tool_call_id": "a", "content": "out a"},
        {"role": "tool", "tool_call_id": "b", "content": "out b"},
        {"role": "assistant", "content": "Sunny."},
    ]


def test_calls_without_assistant_text_get_their_own_message():
    ctx = ChatContext(
        [
            ChatMessage(role="user", content="go"),
            call("a"),
            output("a"),
            call("b"),
            output("b"),
        ]
    )
    assert to_openai_messages(ctx) == [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [tool_call("a")]},
        {"role": "tool", "tool_call_id": "a", "content": "out a"},
        {"role": "assistant", "tool_calls": [tool_call("b")]},
        {"role": "tool", "tool_call_id": "b", "content": "out b"},
    ]


def test_an_empty_context_has_no_messages():
    assert to_openai_messages(ChatContext.empty()) == []


async def test_tools_are_wrapped_as_functions():
    @function_tool
    async def ping(host: str) -> str:
        """Ping a host."""
        return host

    raw = function_tool(raw_schema={"name": "raw", "description": "Raw."})

    async def handler(raw_arguments: dict[str, Any]) -> None:
        pass

    assert to_openai_tools([ping, raw(handler)]) == [
        {
            "type": "function",
            "function": {
                "name": "ping",
                "description": "Ping a host.",
                "parameters": {
                    "type": "object",
                    "properties": {"host": {"type": "string"}},
                    "required": ["host"],
                    "additionalProperties": False,
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "raw",
                "description": "Raw.",
                "parameters": {"type": "object", "properties": {}},
            },
        },
    ]


# What a strict provider receives, whatever order the runtime recorded.


def roles_and_ids(messages: list[dict[str, Any]]) -> list[str]:
    """``user``, ``assistant[a,b]``, ``tool:a``...: the shape of ``messages``."""
    shape = []
    for m in messages:
        if m["role"] == "tool":
            shape.append(f"tool:{m['tool_call_id']}")
        elif "tool_calls" in m:
            shape.append(f"assistant[{','.join(c['id'] for c in m['tool_calls'])}]")
        else:
            shape.append(m["role"])
    return shape


def test_an_output_recorded_after_later_messages_follows_its_call():
    # A tool that outlived its interrupted speech: the user spoke before it finished.
    ctx = ChatContext(
        [
            ChatMessage(role="user", content="weather?"),
            ChatMessage(role="assistant", content="Let me", interrupted=True),
            call("a"),
            ChatMessage(role="user", content="hello?"),
            ChatMessage(role="assistant", content="Still looking."),
            output("a"),
        ]
    )
    messages = to_openai_messages(ctx)
    assert roles_and_ids(messages) == ["user", "assistant[a]", "tool:a", "user", "assistant"]
    assert messages[1]["content"] == "Let me"
    assert message_errors(messages) == []


def test_calls_without_an_output_yet_are_left_out():
    ctx = ChatContext(
        [
            ChatMessage(role="user", content="go"),
            ChatMessage(role="assistant", content="On it."),
            call("done"),
            call("running"),
            output("done"),
            ChatMessage(role="user", content="and?"),
            call("alone"),  # nothing else in its assistant message
            ChatMessage(role="user", content="hm"),
        ]
    )
    messages = to_openai_messages(ctx)
    assert roles_and_ids(messages) == ["user", "assistant[done]", "tool:done", "user", "user"]
    assert messages[1]["content"] == "On it."
    assert message_errors(messages) == []


def test_orphan_and_repeated_outputs_are_left_out():
    ctx = ChatContext(
        [
            output("trimmed"),  # its call was cut from the chat
            ChatMessage(role="user", content="go"),
            call("a"),
            output("a"),
            output("a"),
        ]
    )
    messages = to_openai_messages(ctx)
    assert roles_and_ids(messages) == ["user", "assistant[a]", "tool:a"]
    assert message_errors(messages) == []


def test_outputs_follow_in_the_order_of_the_calls():
    ctx = ChatContext([ChatMessage(role="user", content="go"), call("a"), call("b")])
    ctx.items += [ChatMessage(role="user", content="wait"), output("b"), output("a")]
    assert roles_and_ids(to_openai_messages(ctx)) == [
        "user",
        "assistant[a,b]",
        "tool:a",
        "tool:b",
        "user",
    ]


_ITEM = st.one_of(
    st.sampled_from(["user", "assistant", "system", "developer"]).map(
        lambda role: ChatMessage(role=role, content=f"{role} text")
    ),
    st.sampled_from("abcd").map(call),
    st.sampled_from("abcdz").map(output),
    st.just(AgentHandoff(new_agent_id="other")),
)


@given(st.lists(_ITEM, max_size=14))
def test_any_recorded_order_gives_messages_a_strict_provider_accepts(items):
    ctx = ChatContext(items)
    messages = to_openai_messages(ctx)
    if messages:
        assert message_errors(messages) == []
    # Every call with an output is sent, exactly once, with that output.
    answered = {i.call_id for i in items if isinstance(i, FunctionCallOutput)}
    called = [i.call_id for i in items if isinstance(i, FunctionCall)]
    sent = [c["id"] for m in messages for c in m.get("tool_calls", [])]
    assert sorted(sent) == sorted({c for c in called if c in answered})
    # Nothing else is lost: every message is there, in its order.
    texts = [m["content"] for m in messages if m["role"] != "tool" and m.get("content")]
    assert texts == [i.text_content for i in items if isinstance(i, ChatMessage)]
