from typing import Any

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
