import json

import pytest
import trio

from tvoice.llm import (
    AgentHandoff,
    ChatContext,
    ChatMessage,
    FunctionCall,
    FunctionCallOutput,
)


def msg(role, text, t):
    return ChatMessage(role=role, content=text, id=f"m{t}", created_at=t)


def call(call_id, t):
    return FunctionCall(call_id=call_id, name="f", arguments="{}", id=f"c{t}", created_at=t)


def output(call_id, t):
    return FunctionCallOutput(
        call_id=call_id, name="f", output="ok", is_error=False, id=f"o{t}", created_at=t
    )


def ids(ctx):
    return [item.id for item in ctx.items]


# --- items ---


def test_message_content_accepts_a_string_or_parts():
    assert ChatMessage(role="user", content="hi").content == ["hi"]
    parts = ["a", "b"]
    message = ChatMessage(role="user", content=parts)
    assert message.content == ["a", "b"]
    parts.append("c")
    assert message.content == ["a", "b"]  # the message owns its list
    assert message.text_content == "a\nb"
    assert ChatMessage(role="assistant", content=[]).text_content is None


def test_message_content_rejects_non_text_parts():
    with pytest.raises(TypeError, match="message content parts must be str, got int"):
        ChatMessage(role="user", content=["a", 1])  # type: ignore[list-item]


def test_items_have_type_tags_unique_ids_and_no_clock_outside_trio():
    items = [
        ChatMessage(role="user", content="x"),
        FunctionCall(call_id="1", name="f", arguments="{}"),
        FunctionCallOutput(call_id="1", output="", is_error=True),
        AgentHandoff(new_agent_id="b"),
    ]
    assert [item.type for item in items] == [
        "message",
        "function_call",
        "function_call_output",
        "agent_handoff",
    ]
    assert len({item.id for item in items}) == 4
    assert all(item.id.startswith("item_") for item in items)
    assert all(item.created_at == 0.0 for item in items)
    assert items[2].name == ""
    assert items[3].old_agent_id is None
    assert ChatMessage(role="user", content="x").interrupted is False


async def test_created_at_comes_from_the_trio_clock(autojump_clock):
    ctx = ChatContext.empty()
    await trio.sleep(1.5)
    message = ctx.add_message(role="user", content="hello")
    assert message.created_at == 1.5
    await trio.sleep(0.25)
    assert FunctionCall(call_id="1", name="f", arguments="").created_at == 1.75


# --- adding and finding ---


def test_add_message_appends_and_returns_the_message():
    ctx = ChatContext()
    first = ctx.add_message(role="system", content="be nice", id="sys")
    second = ctx.add_message(role="user", content=["a", "b"], interrupted=True)
    assert ctx.items == [first, second]
    assert first.id == "sys"
    assert second.interrupted is True
    assert len(ctx) == 2


def test_add_message_with_an_earlier_created_at_goes_in_time_order():
    ctx = ChatContext([msg("user", "a", 1.0), msg("user", "c", 3.0)])
    late = ctx.add_message(role="assistant", content="d", created_at=4.0)
    early = ctx.add_message(role="assistant", content="b", created_at=2.0)
    first = ctx.add_message(role="assistant", content="0", created_at=0.5)
    assert ctx.items[0] is first
    assert ctx.items[2] is early
    assert ctx.items[-1] is late


def test_insert_keeps_created_at_order_and_is_stable():
    ctx = ChatContext([msg("user", "a", 1.0), msg("user", "b", 2.0)])
    tie = ChatMessage(role="assistant", content="tie", id="tie", created_at=1.0)
    ctx.insert(tie)
    assert ids(ctx) == ["m1.0", "tie", "m2.0"]
    several = [
        ChatMessage(role="user", content="x", id="x", created_at=1.5),
        ChatMessage(role="user", content="y", id="y", created_at=1.5),
        ChatMessage(role="user", content="z", id="z", created_at=9.0),
    ]
    ctx.insert(several)
    assert ids(ctx) == ["m1.0", "tie", "x", "y", "m2.0", "z"]
    assert ctx.find_insertion_index(created_at=-1.0) == 0


def test_messages_and_lookups_by_id():
    ctx = ChatContext([msg("user", "a", 1.0), call("1", 2.0), output("1", 3.0)])
    assert [m.id for m in ctx.messages()] == ["m1.0"]
    assert ctx.get_by_id("c2.0") is ctx.items[1]
    assert ctx.index_by_id("o3.0") == 2
    assert ctx.get_by_id("nope") is None
    assert ctx.index_by_id("nope") is None


# --- copy ---


def test_copy_is_independent_of_the_original():
    ctx = ChatContext([msg("system", "s", 0.0), msg("user", "hello", 1.0)])
    dup = ctx.copy()
    assert dup == ctx
    dup.items[1].content.append("edited")
    dup.items[1].interrupted = True
    dup.add_message(role="assistant", content="new")
    assert ctx.items[1].content == ["hello"]
    assert ctx.items[1].interrupted is False
    assert len(ctx) == 2
    assert dup.items[1].id == ctx.items[1].id


def test_copy_can_leave_out_tool_items_instructions_and_handoffs():
    handoff = AgentHandoff(old_agent_id="a", new_agent_id="b", id="h", created_at=0.5)
    ctx = ChatContext(
        [
            msg("system", "s", 0.0),
            handoff,
            msg("developer", "d", 0.7),
            msg("user", "u", 1.0),
            call("1", 2.0),
            output("1", 3.0),
        ]
    )
    assert ids(ctx.copy(exclude_function_calls=True)) == ["m0.0", "h", "m0.7", "m1.0"]
    assert ids(ctx.copy(exclude_instructions=True)) == ["h", "m1.0", "c2.0", "o3.0"]
    assert ids(ctx.copy(exclude_handoffs=True)) == ["m0.0", "m0.7", "m1.0", "c2.0", "o3.0"]


# --- truncate ---


def test_truncate_keeps_the_tail_and_the_instructions():
    ctx = ChatContext([msg("system", "s", 0.0)] + [msg("user", str(i), i) for i in range(1, 6)])
    assert ctx.truncate(max_items=2) is ctx
    assert ids(ctx) == ["m0.0", "m4", "m5"]


def test_truncate_keeps_developer_instructions_and_does_not_duplicate_them():
    ctx = ChatContext([msg("developer", "d", 0.0), msg("user", "u", 1.0)])
    ctx.truncate(max_items=5)
    assert ids(ctx) == ["m0.0", "m1.0"]
    ctx.truncate(max_items=0)
    assert ids(ctx) == ["m0.0"]


def test_truncate_without_instructions():
    ctx = ChatContext([msg("user", str(i), i) for i in range(4)])
    ctx.truncate(max_items=1)
    assert ids(ctx) == ["m3"]


def test_truncate_drops_outputs_whose_call_was_cut_off():
    ctx = ChatContext(
        [
            msg("system", "s", 0.0),
            msg("user", "u", 1.0),
            call("a", 2.0),
            call("b", 2.5),
            output("a", 3.0),
            output("b", 3.5),
            msg("assistant", "done", 4.0),
        ]
    )
    kept = ctx.copy().truncate(max_items=4)
    assert ids(kept) == ["m0.0", "c2.5", "o3.5", "m4.0"]
    kept = ctx.copy().truncate(max_items=3)
    assert ids(kept) == ["m0.0", "m4.0"]


def test_truncate_keeps_a_leading_call_with_its_output():
    ctx = ChatContext([msg("user", "u", 1.0), call("a", 2.0), output("a", 3.0)])
    assert ids(ctx.truncate(max_items=2)) == ["c2.0", "o3.0"]


def test_truncate_rejects_a_negative_count():
    with pytest.raises(ValueError, match="max_items must be >= 0, got -1"):
        ChatContext().truncate(max_items=-1)


# --- merge ---


def test_merge_adds_missing_items_in_time_order():
    ours = ChatContext([msg("system", "old agent", 0.0), msg("user", "a", 1.0)])
    theirs = ours.copy()
    theirs.items[0] = msg("system", "new agent", 0.1)
    theirs.add_message(role="assistant", content="b", created_at=2.0, id="b")
    theirs.insert(call("x", 1.5))
    ours.add_message(role="user", content="c", created_at=3.0, id="c")
    assert ours.merge(theirs) is ours
    assert ids(ours) == ["m0.0", "m0.1", "m1.0", "c1.5", "b", "c"]
    ours.items[1].content.append("edited")
    assert theirs.items[0].content == ["new agent"]  # merged items are copies


def test_merge_can_leave_out_tool_items_and_instructions():
    other = ChatContext([msg("system", "s", 0.0), msg("user", "u", 1.0), call("1", 2.0)])
    other.insert(output("1", 3.0))
    assert ids(ChatContext().merge(other, exclude_function_calls=True)) == ["m0.0", "m1.0"]
    assert ids(ChatContext().merge(other, exclude_instructions=True)) == ["m1.0", "c2.0", "o3.0"]


# --- serialisation ---


def test_dict_round_trip_is_json_serialisable():
    ctx = ChatContext(
        [
            msg("system", "s", 0.0),
            AgentHandoff(old_agent_id=None, new_agent_id="a", id="h", created_at=0.5),
            ChatMessage(role="user", content=["x", "y"], interrupted=True, id="u", created_at=1.0),
            call("1", 2.0),
            FunctionCallOutput(call_id="1", name="f", output="no", is_error=True, id="o"),
        ]
    )
    data = json.loads(json.dumps(ctx.to_dict()))
    assert data["items"][2] == {
        "role": "user",
        "content": ["x", "y"],
        "interrupted": True,
        "id": "u",
        "created_at": 1.0,
        "type": "message",
    }
    assert ChatContext.from_dict(data) == ctx


def test_from_dict_ignores_unknown_keys_and_rejects_unknown_types():
    data = {"items": [{"type": "agent_handoff", "new_agent_id": "a", "id": "h", "extra": 1}]}
    assert ChatContext.from_dict(data).items == [
        AgentHandoff(new_agent_id="a", id="h", created_at=0.0)
    ]
    with pytest.raises(ValueError, match="unknown chat item type 'image'"):
        ChatContext.from_dict({"items": [{"type": "image"}]})
