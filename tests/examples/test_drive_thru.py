"""examples/drive_thru.py: tools generated from the menu, their checks, and orders end to end."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from tests.examples.test_restaurant import TimelineRoom
from tvoice import JobContext, JobProcess, ToolError
from tvoice.job import JobInfo
from tvoice.llm import FunctionCall, RawFunctionTool
from tvoice.testing import Timeline

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

import drive_thru
from drive_thru import MENU, DriveThruAgent, Item, Menu, OrderState, build_tools


def call(tool, call_id, /, **arguments):
    return FunctionCall(call_id=call_id, name=tool, arguments=json.dumps(arguments))


def tools_by_name(menu=MENU):
    return {tool.name: tool for tool in build_tools(menu)}


def properties(tool):
    return tool.schema["parameters"]["properties"]


SINGLE_ITEMS = [
    "classic_burger",
    "double_cheeseburger",
    "crispy_chicken",
    "nuggets",
    "fries",
    "milkshake",
    "apple_pie",
    "cola",
    "lemonade",
    "orange_juice",
    "water",
    "ketchup",
    "bbq",
    "honey_mustard",
]


def test_the_schemas_take_their_enums_from_the_menu():
    tools = tools_by_name()
    assert list(tools) == [
        "order_combo_meal",
        "order_happy_meal",
        "order_regular_item",
        "remove_order_item",
        "list_order_items",
        "checkout",
    ]
    assert all(isinstance(tools[name], RawFunctionTool) for name in list(tools)[:3])
    combo = tools["order_combo_meal"]
    assert {k: v["enum"] for k, v in properties(combo).items()} == {
        "meal_id": ["1", "2", "3", "4"],
        "drink_id": ["cola", "lemonade", "orange_juice", "water"],
        "drink_size": ["S", "M", "L", None],
        "fries_size": ["M", "L"],
        "sauce_id": ["ketchup", "bbq", "honey_mustard", None],
    }
    assert properties(combo)["drink_size"]["type"] == ["string", "null"]
    assert combo.schema["parameters"]["required"] == [
        "meal_id",
        "drink_id",
        "drink_size",
        "fries_size",
    ]
    happy = tools["order_happy_meal"]
    assert {k: v["enum"] for k, v in properties(happy).items()} == {
        "meal_id": ["happy_burger", "happy_nuggets"],
        "drink_id": ["cola", "lemonade", "orange_juice", "water"],
        "sauce_id": ["ketchup", "bbq", "honey_mustard", None],
    }
    regular = properties(tools["order_regular_item"])
    assert regular["item_id"]["enum"] == SINGLE_ITEMS
    assert regular["size"]["enum"] == ["S", "M", "L", None]
    assert regular["quantity"] == {
        "type": "integer",
        "minimum": 1,
        "default": 1,
        "description": "How many.",
    }
    assert properties(tools["remove_order_item"]) == {
        "order_id": {"type": "string", "description": "The order id, like o1."}
    }
    assert properties(tools["checkout"]) == {}


def test_another_menu_makes_other_tools():
    menu = Menu(
        combo_meals={"7": Item("Fish Meal", 799)},
        combo_fries={"S": 0, "XL": 150},
        combo_drink={"M": 0},
        happy_meals={},
        regular_items={"fish": Item("Fish Sandwich", 499)},
        drinks={"tea": Item("Iced Tea", sizes={"M": 150, "XL": 250})},
        sauces={"tartar": Item("Tartar Sauce", 0)},
    )
    tools = tools_by_name(menu)
    combo = properties(tools["order_combo_meal"])
    assert (combo["meal_id"]["enum"], combo["fries_size"]["enum"]) == (["7"], ["S", "XL"])
    assert combo["drink_size"]["enum"] == ["M", None]
    regular = properties(tools["order_regular_item"])
    assert regular["item_id"]["enum"] == ["fish", "tea", "tartar"]
    assert regular["size"]["enum"] == ["M", "XL", None]
    agent = DriveThruAgent(menu)
    assert "- 7: Fish Meal, $7.99" in agent.instructions
    assert "- tea: Iced Tea, M $1.50, XL $2.50" in agent.instructions
    assert "Fries: S included, XL +$1.50." in agent.instructions


def test_the_instructions_hold_the_menu():
    instructions = DriveThruAgent().instructions
    assert instructions.startswith(drive_thru.INSTRUCTIONS)
    for line in (
        "COMBO MEALS (meal_id), with fries and a drink. "
        "Fries: M included, L +$0.80. Drink: S included, M included, L +$0.60.",
        "- 2: Double Cheeseburger Meal, $9.99",
        "- fries: Fries, S $1.99, M $2.79, L $3.29",
        "- milkshake: Vanilla Milkshake, M $3.49, L $3.99",
        "- ketchup: Ketchup, free",
    ):
        assert f"\n{line}\n" in instructions
    assert [t.name for t in DriveThruAgent().tools] == list(tools_by_name())


def test_a_menu_item_has_a_price_or_sizes():
    with pytest.raises(ValueError, match="exactly one of price and sizes"):
        Item("Mystery")
    with pytest.raises(ValueError, match="exactly one of price and sizes"):
        Item("Both", 100, sizes={"M": 100})


def run_ctx(order):
    # What a raw tool reads of its RunContext: the userdata.
    return SimpleNamespace(userdata=order)


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        # Beyond the schema: the tools' own checks.
        (
            "order_regular_item",
            {"item_id": "apple_pie", "size": "M"},
            "apple_pie comes in one size only: call order_regular_item again with size null.",
        ),
        (
            "order_regular_item",
            {"item_id": "fries", "size": None},
            "fries comes in sizes S, M, L: ask the customer which size, then call "
            "order_regular_item with size set.",
        ),
        (
            "order_regular_item",
            {"item_id": "milkshake", "size": "S"},
            "milkshake comes only in sizes M, L, not S: ask the customer which of those they want.",
        ),
        (
            "order_regular_item",
            {"item_id": "nuggets", "size": None, "quantity": 0},
            "The quantity must be at least 1, not 0; to take something off the order, use "
            "remove_order_item.",
        ),
        (
            "order_combo_meal",
            {"meal_id": "1", "drink_id": "cola", "drink_size": None, "fries_size": "M"},
            "cola comes in sizes S, M, L: ask the customer which size, then call "
            "order_combo_meal with drink_size set.",
        ),
        (
            "order_combo_meal",
            {"meal_id": "1", "drink_id": "water", "drink_size": "L", "fries_size": "M"},
            "water comes in one size only: call order_combo_meal again with drink_size null.",
        ),
        (
            "remove_order_item",
            {"order_id": "o7"},
            "There is no item 'o7' in the order (its ids: none, the order is empty).",
        ),
        ("checkout", {}, "The order is empty: ask the customer what they would like."),
        # The schema: checked before the tool runs.
        (
            "order_regular_item",
            {"item_id": "pizza", "size": None},
            "order_regular_item: argument 'item_id': must be one of "
            + ", ".join(repr(i) for i in SINGLE_ITEMS)
            + ", got 'pizza'",
        ),
        (
            "order_combo_meal",
            {"meal_id": "5", "drink_id": "cola", "drink_size": "XL", "fries_size": "M"},
            "order_combo_meal: argument 'meal_id': must be one of '1', '2', '3', '4', got '5'; "
            "argument 'drink_size': must be one of 'S', 'M', 'L', None, got 'XL'",
        ),
        (
            "order_regular_item",
            {"item_id": "fries", "quantity": "two", "extra": True},
            "order_regular_item: missing required argument 'size'; argument 'quantity': "
            "expected an integer, got 'two'; unexpected argument 'extra'",
        ),
    ],
)
async def test_what_the_tools_turn_away(tool, arguments, message):
    order = OrderState()
    with pytest.raises(ToolError) as raised:
        await tools_by_name()[tool].call(arguments, context=run_ctx(order))
    assert raised.value.message == message
    assert order.items == {}


async def test_orders_add_up_and_can_be_changed():
    tools = tools_by_name()
    order = OrderState()
    ctx = run_ctx(order)
    outputs = [
        await tools["order_combo_meal"].call(
            {
                "meal_id": "1",
                "drink_id": "cola",
                "drink_size": "L",
                "fries_size": "L",
                "sauce_id": "bbq",
            },
            context=ctx,
        ),
        await tools["order_happy_meal"].call(
            {"meal_id": "happy_nuggets", "drink_id": "orange_juice"}, context=ctx
        ),
        await tools["order_regular_item"].call(
            {"item_id": "fries", "size": "L", "quantity": 2}, context=ctx
        ),
        await tools["order_regular_item"].call({"item_id": "bbq", "size": None}, context=ctx),
    ]
    assert outputs == [
        "Added o1: 1x Number 1 Classic Burger Meal (large fries, large Cola, BBQ Sauce), $9.89. "
        "The order total is $9.89.",
        "Added o2: 1x 4-piece Nuggets Happy Meal (Orange Juice), $4.79. The order total is $14.68.",
        "Added o3: 2x large Fries, $6.58. The order total is $21.26.",
        "Added o4: 1x BBQ Sauce, $0.25. The order total is $21.51.",
    ]
    # 849 + 80 + 60 (the combo's sauce is free), 479, 2 x 329, 25
    assert order.total == 2151
    assert await tools["list_order_items"].call({}, context=ctx) == (
        "o1: 1x Number 1 Classic Burger Meal (large fries, large Cola, BBQ Sauce), $9.89\n"
        "o2: 1x 4-piece Nuggets Happy Meal (Orange Juice), $4.79\n"
        "o3: 2x large Fries, $6.58\n"
        "o4: 1x BBQ Sauce, $0.25\n"
        "Total: $21.51."
    )
    assert await tools["remove_order_item"].call({"order_id": "o4"}, context=ctx) == (
        "Removed o4: 1x BBQ Sauce, $0.25. The order total is $21.26."
    )
    assert await tools["checkout"].call({}, context=ctx) == (
        "The order is complete: 1x Number 1 Classic Burger Meal (large fries, large Cola, "
        "BBQ Sauce); 1x 4-piece Nuggets Happy Meal (Orange Juice); 2x large Fries. "
        "Total: $21.26. Ask the customer to drive to the next window."
    )
    assert order.checked_out
    with pytest.raises(ToolError, match="already paid for"):
        await tools["order_regular_item"].call({"item_id": "water", "size": None}, context=ctx)
    with pytest.raises(ToolError, match="already complete"):
        await tools["checkout"].call({}, context=ctx)
    assert [i.order_id for i in order.items.values()] == ["o1", "o2", "o3"]


COMBO_2 = "Number 2 Double Cheeseburger Meal (large fries, medium Lemonade)"


async def test_a_drive_thru_call_on_a_timeline(autojump_clock):
    tl = Timeline()
    tl.tts(input=drive_thru.GREETING, audio_duration=2.0)  # 0.2 - 2.2
    said = "A number two with large fries and a medium lemonade."
    tl.user_speech(start=3.0, end=5.0, transcript=said)
    tl.llm(
        input=said,
        tool_calls=[
            call(
                "order_combo_meal",
                "c1",
                meal_id="2",
                drink_id="lemonade",
                drink_size="M",
                fries_size="L",
            )
        ],
    )
    added = f"Added o1: 1x {COMBO_2}, $10.79. The order total is $10.79."
    tl.llm(input=added, content="One number two meal. Anything else?")
    tl.tts(input="One number two meal. Anything else?", audio_duration=2.0)
    tl.user_speech(start=9.0, end=10.0, transcript="And a pie. That's all.")
    tl.llm(
        input="And a pie. That's all.",
        tool_calls=[call("order_regular_item", "c2", item_id="apple_pie", size="M")],
    )
    no_size = "apple_pie comes in one size only: call order_regular_item again with size null."
    tl.llm(
        input=no_size,
        tool_calls=[call("order_regular_item", "c3", item_id="apple_pie", size=None)],
    )
    pie = "Added o2: 1x Apple Pie, $1.49. The order total is $12.28."
    tl.llm(input=pie, tool_calls=[call("checkout", "c4")])
    done = (
        f"The order is complete: 1x {COMBO_2}; 1x Apple Pie. Total: $12.28. "
        "Ask the customer to drive to the next window."
    )
    tl.llm(input=done, content="That's twelve twenty-eight. Please pull forward.")
    tl.tts(input="That's twelve twenty-eight. Please pull forward.", audio_duration=3.0)

    order = OrderState()
    states = []
    async with tl.session(userdata=order) as session:
        session.on("agent_state_changed", lambda e: states.append((e.new_state, e.created_at)))
        await session.start(DriveThruAgent())
        await tl.wait_done()

    assert order.total == 1079 + 149
    assert order.checked_out
    outputs = [
        (i.output, i.is_error) for i in session.history.items if i.type == "function_call_output"
    ]
    assert outputs == [(added, False), (no_size, True), (pie, False), (done, False)]
    # Three LLM steps after "That's all" (tool error, retry, checkout), then the read-back.
    assert tl.llm_requests == [said, added, "And a pie. That's all.", no_size, pie, done]
    approx = pytest.approx
    assert states == [
        ("listening", 0.0),
        ("speaking", approx(0.2)),
        ("listening", approx(2.2)),
        ("thinking", approx(5.5)),  # end of speech 5.0 + endpointing 0.5
        ("speaking", approx(6.3)),  # two LLM steps of 0.3, TTS first byte 0.2
        ("listening", approx(8.3)),
        ("thinking", approx(10.5)),
        ("speaking", approx(11.9)),  # four LLM steps of 0.3, TTS first byte 0.2
        ("listening", approx(14.9)),
    ]
    assert [p.position for p in tl.audio_output.playbacks] == [2.0, 2.0, 3.0]


async def test_text_mode_invalid_values_then_an_order(autojump_clock):
    tl = Timeline()
    bad = {"meal_id": "5", "drink_id": "cola", "drink_size": "XL", "fries_size": "M"}
    tl.llm(
        input="Number five, extra large cola.", tool_calls=[call("order_combo_meal", "c1", **bad)]
    )
    invalid = (
        "order_combo_meal: argument 'meal_id': must be one of '1', '2', '3', '4', got '5'; "
        "argument 'drink_size': must be one of 'S', 'M', 'L', None, got 'XL'"
    )
    tl.llm(input=invalid, content="We have combos one to four, and cola up to large.")
    tl.llm(
        input="Number three, large cola, medium fries, ketchup.",
        content="Number three coming up.",
        tool_calls=[
            call(
                "order_combo_meal",
                "c2",
                meal_id="3",
                drink_id="cola",
                drink_size="L",
                fries_size="M",
                sauce_id="ketchup",
            )
        ],
    )
    added = (
        "Added o1: 1x Number 3 Crispy Chicken Meal (medium fries, large Cola, Ketchup), $9.59. "
        "The order total is $9.59."
    )
    tl.llm(input=added, content="Anything else?")
    tl.llm(input="No, that's it.", tool_calls=[call("checkout", "c3")])
    done = (
        "The order is complete: 1x Number 3 Crispy Chicken Meal (medium fries, large Cola, "
        "Ketchup). Total: $9.59. Ask the customer to drive to the next window."
    )
    tl.llm(input=done, content="$9.59 at the next window.")
    order = OrderState()
    async with tl.session(userdata=order, stt=None, vad=None, tts=None) as session:
        await session.start(DriveThruAgent(), text_only=True)
        await session.wait_for_idle()
        assert [m.text_content for m in session.history.messages()] == [drive_thru.GREETING]
        first = await session.run(user_input="Number five, extra large cola.")
        assert order.items == {}
        second = await session.run(user_input="Number three, large cola, medium fries, ketchup.")
        third = await session.run(user_input="No, that's it.")

    expect = first.expect
    expect.next_event().is_function_call(name="order_combo_meal", arguments=bad)
    expect.next_event().is_function_call_output(output=invalid, is_error=True)
    expect.next_event().is_message(role="assistant")
    expect.no_more_events()

    expect = second.expect
    expect.next_event().is_message(role="assistant")  # said with the tool call
    expect.next_event().is_function_call(
        name="order_combo_meal", arguments={"meal_id": "3", "sauce_id": "ketchup"}
    )
    expect.next_event().is_function_call_output(output=added, is_error=False)
    expect.next_event().is_message(role="assistant")
    expect.no_more_events()

    expect = third.expect
    expect.next_event().is_function_call(name="checkout", arguments={})
    expect.next_event().is_function_call_output(output=done, is_error=False)
    assert third.final_output == "$9.59 at the next window."
    assert order.total == 959  # 899 + 60 for the large drink; medium fries and the sauce included
    assert order.checked_out


async def test_entrypoint_runs_the_call_with_the_prewarmed_models(autojump_clock):
    tl = Timeline()
    tl.tts(input=drive_thru.GREETING, audio_duration=1.0)
    tl.user_speech(start=2.0, end=3.0, transcript="Just a bottle of water.")
    tl.llm(
        input="Just a bottle of water.",
        tool_calls=[call("order_regular_item", "c1", item_id="water", size=None)],
    )
    added = "Added o1: 1x Bottled Water, $1.29. The order total is $1.29."
    tl.llm(input=added, content="One water. Anything else?")
    tl.tts(input="One water. Anything else?", audio_duration=1.0)
    proc = JobProcess()  # as if prewarmed: the models are already in its userdata
    proc.userdata.update(vad=tl.fake_vad, stt=tl.fake_stt, llm=tl.fake_llm, tts=tl.fake_tts)
    room = TimelineRoom(tl)
    ctx = JobContext(proc=proc, job=JobInfo(id="job_1", room_name="lane-1"), room=room)
    with trio.fail_after(60):
        await drive_thru.entrypoint(ctx)
    order = room.session.userdata
    assert isinstance(order, OrderState)
    assert [(i.description, i.price) for i in order.items.values()] == [("Bottled Water", 129)]
    assert isinstance(room.session.current_agent, DriveThruAgent)
    # End of turn 3.5; the first LLM step was prepared from the final words at 3.2 (the
    # offline stack's preemptive generation), so only the second's 0.3 is after it; TTS first
    # byte 0.2, 1 s of audio.
    assert trio.current_time() == pytest.approx(3.5 + 0.3 + 0.2 + 1.0)
