"""examples/restaurant.py: a whole call through four agents, on the autojump clock."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tvoice import JobContext, JobProcess, function_tool
from tvoice.io import RoomIO, SessionRoom
from tvoice.job import JobInfo
from tvoice.llm import FunctionCall
from tvoice.testing import Timeline

EXAMPLES = Path(__file__).parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import restaurant  # noqa: E402
from restaurant import Checkout, Greeter, Reservation, Takeaway, UserData  # noqa: E402


def call(tool, call_id, /, **arguments):
    return FunctionCall(call_id=call_id, name=tool, arguments=json.dumps(arguments))


def note(agent, **fields):
    """What an agent's LLM answers to on entering: its note, with the caller's details so far."""
    return restaurant.handoff_note(agent, UserData(**fields))


def handoff_targets(session):
    return [
        type(session.agent_by_id(i.new_agent_id)).__name__
        for i in session.history.items
        if i.type == "agent_handoff"
    ]


def outputs(session):
    return {
        i.call_id: (i.output, i.is_error)
        for i in session.history.items
        if i.type == "function_call_output"
    }


BOOKED = {
    "customer_name": "Ada Lovelace",
    "customer_phone": "555 123 4567",
    "reservation_time": "tonight at 7:30",
}
CARD = {"number": "4242 4242 4242 4242", "expiry": "12/27", "cvv": "123", "brand": "visa"}


def test_importing_the_examples_loads_no_model():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import restaurant, drive_thru; "
        "heavy = ('xllamacpp', 'faster_whisper', 'piper', 'onnxruntime', 'tvoice_plugins'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(EXAMPLES)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_summary_lists_the_details_and_hides_the_card():
    assert UserData().summarize() == (
        "customer_name: unknown\n"
        "customer_phone: unknown\n"
        "reservation_time: unknown\n"
        "order: none\n"
        "expense: 0.00\n"
        "customer_credit_card: unknown\n"
        "checked_out: no"
    )
    userdata = UserData(
        customer_name="Ada",
        order=["lasagna", "soda"],
        expense=16.0,
        customer_credit_card="4242424242424242",
        customer_credit_card_brand="visa",
        checked_out=True,
    )
    summary = userdata.summarize()
    assert "order: lasagna, soda\nexpense: 16.00\n" in summary
    assert "customer_credit_card: visa ending 4242\nchecked_out: yes" in summary
    assert "42424242" not in summary


def test_tools_and_schemas():
    userdata = restaurant.new_userdata()
    names = {key: [t.name for t in agent.tools] for key, agent in userdata.agents.items()}
    assert names == {
        "greeter": ["to_reservation", "to_takeaway"],
        "reservation": [
            "update_name",
            "update_phone",
            "to_greeter",
            "update_reservation_time",
            "confirm_reservation",
        ],
        "takeaway": ["to_greeter", "update_order", "to_checkout"],
        "checkout": [
            "update_name",
            "update_phone",
            "to_greeter",
            "update_credit_card",
            "confirm_checkout",
        ],
    }
    card = {t.name: t for t in userdata.agents["checkout"].tools}["update_credit_card"]
    parameters = card.schema["parameters"]
    assert parameters["required"] == ["number", "expiry", "cvv", "brand"]
    assert parameters["properties"]["brand"]["enum"] == ["visa", "mastercard", "amex"]
    phone = restaurant.update_phone.schema["parameters"]["properties"]["phone"]
    assert phone == {
        "type": "string",
        "description": "The customer's phone number, with all its digits",
    }
    order = {t.name: t for t in userdata.agents["takeaway"].tools}["update_order"]
    assert order.schema["parameters"]["properties"]["items"]["type"] == "array"


async def test_a_whole_call_greeter_reservation_checkout(autojump_clock):
    """Greeting, booking (with a phone number too short), a card to hold the table, done."""
    tl = Timeline()
    # 0.0: the greeter enters and speaks first; its LLM answers the note it adds.
    tl.llm(input=note("Greeter"), content="Welcome to Bella Vista! How can I help?")
    tl.tts(input="Welcome to Bella Vista! How can I help?", audio_duration=2.0)
    # 3.0-4.5: end of turn at 5.0, the greeter hands over at 5.3.
    tl.user_speech(start=3.0, end=4.5, transcript="I'd like to book a table.")
    tl.llm(input="I'd like to book a table.", tool_calls=[call("to_reservation", "c1")])
    tl.llm(input=note("Reservation"), content="Gladly. For when, and under what name?")
    tl.tts(input="Gladly. For when, and under what name?", audio_duration=2.0)
    # 9.0-11.0: three details at once, run side by side; the phone number is too short.
    said = "Tonight at 7:30, Ada Lovelace, my number is 555 12."
    tl.user_speech(start=9.0, end=11.0, transcript=said)
    tl.llm(
        input=said,
        tool_calls=[
            call("update_reservation_time", "c2", time="tonight at 7:30"),
            call("update_name", "c3", name="Ada Lovelace"),
            call("update_phone", "c4", phone="555 12"),
        ],
    )
    short_phone = "The phone number '555 12' has only 5 digits: ask the caller for the full number."
    tl.llm(input=short_phone, content="Sorry, what is your full phone number?")
    tl.tts(input="Sorry, what is your full phone number?", audio_duration=2.0)
    tl.user_speech(start=15.0, end=16.5, transcript="555 123 4567.")
    tl.llm(input="555 123 4567.", tool_calls=[call("update_phone", "c5", phone="555 123 4567")])
    phone_ok = "The phone number is updated to 555 123 4567."
    tl.llm(input=phone_ok, content="Tonight at 7:30 for Ada. Shall I confirm?")
    tl.tts(input="Tonight at 7:30 for Ada. Shall I confirm?", audio_duration=2.0)
    # 21.0-22.0: confirmed, the reservation agent hands over to checkout.
    tl.user_speech(start=21.0, end=22.0, transcript="Yes, please.")
    tl.llm(input="Yes, please.", tool_calls=[call("confirm_reservation", "c6")])
    tl.llm(input=note("Checkout", **BOOKED), content="A card holds the table. Your card?")
    tl.tts(input="A card holds the table. Your card?", audio_duration=2.0)
    said_card = "Visa, 4242 4242 4242 4242, 12/27, 123."
    tl.user_speech(start=27.0, end=30.0, transcript=said_card)
    tl.llm(input=said_card, tool_calls=[call("update_credit_card", "c7", **CARD)])
    tl.llm(input="The visa card ending 4242 is saved.", content="Thanks. Confirm?")
    tl.tts(input="Thanks. Confirm?", audio_duration=1.0)
    tl.user_speech(start=33.0, end=34.0, transcript="Yes.")
    tl.llm(input="Yes.", tool_calls=[call("confirm_checkout", "c8")])
    held = "The table is held for tonight at 7:30; nothing was charged."
    tl.llm(input=held, content="You're all set. See you tonight!")
    tl.tts(input="You're all set. See you tonight!", audio_duration=2.0)

    userdata = restaurant.new_userdata()
    entered = []
    async with tl.session(userdata=userdata) as session:
        session.on(
            "conversation_item_added",
            lambda e: e.item.type == "agent_handoff" and entered.append(e.item.created_at),
        )
        await session.start(userdata.agents["greeter"])
        await tl.wait_done()
        assert isinstance(session.current_agent, Checkout)
        assert session.current_agent is userdata.agents["checkout"]
        end = trio.current_time()

    assert handoff_targets(session) == ["Greeter", "Reservation", "Checkout"]
    # End of turn 5.0 + LLM 0.3; end of turn 22.5 + LLM 0.3.
    assert entered == [0.0, pytest.approx(5.3), pytest.approx(22.8)]
    assert end == pytest.approx(37.3)  # end of turn 34.5, LLM 0.6, TTS first byte 0.2, 2 s
    assert outputs(session) == {
        "c1": ("Transferring to reservation.", False),
        "c2": ("The reservation time is updated to tonight at 7:30.", False),
        "c3": ("The name is updated to Ada Lovelace.", False),
        "c4": (short_phone, True),
        "c5": (phone_ok, False),
        "c6": ("Transferring to checkout.", False),
        "c7": ("The visa card ending 4242 is saved.", False),
        "c8": (held, False),
    }
    assert userdata.customer_name == "Ada Lovelace"
    assert userdata.customer_phone == "555 123 4567"
    assert userdata.reservation_time == "tonight at 7:30"
    assert (userdata.customer_credit_card, userdata.customer_credit_card_expiry) == (
        "4242424242424242",
        "12/27",
    )
    assert userdata.checked_out
    assert userdata.prev_agent is userdata.agents["reservation"]
    # Every reply was heard in full: nothing interrupted, nothing left unsaid.
    assert [p.interrupted for p in tl.audio_output.playbacks] == [False] * 7
    assert [m.text_content for m in session.history.messages() if m.role == "assistant"] == [
        "Welcome to Bella Vista! How can I help?",
        "Gladly. For when, and under what name?",
        "Sorry, what is your full phone number?",
        "Tonight at 7:30 for Ada. Shall I confirm?",
        "A card holds the table. Your card?",
        "Thanks. Confirm?",
        "You're all set. See you tonight!",
    ]
    # Each agent answered its own note; the notes stay out of the session's history.
    assert tl.llm_requests == [
        note("Greeter"),
        "I'd like to book a table.",
        note("Reservation"),
        said,
        short_phone,
        "555 123 4567.",
        phone_ok,
        "Yes, please.",
        note("Checkout", **BOOKED),
        said_card,
        "The visa card ending 4242 is saved.",
        "Yes.",
        held,
    ]
    assert not [m for m in session.history.messages() if m.role == "system"]
    # The checkout agent has the whole call in its chat, and only its own note.
    checkout_chat = userdata.agents["checkout"].chat_ctx
    notes = [m.text_content for m in checkout_chat.messages() if m.role == "system"]
    assert notes == [note("Checkout", **BOOKED)]
    assert checkout_chat.messages()[1].text_content == "I'd like to book a table."


def text_timeline():
    tl = Timeline()
    tl.llm(input=note("Greeter"), content="Welcome to Bella Vista! How can I help?")
    return tl


async def test_text_mode_booking_hands_over_to_reservation(autojump_clock):
    tl = text_timeline()
    tl.llm(
        input="Can I book a table for tonight?",
        content="Of course.",
        tool_calls=[call("to_reservation", "c1")],
    )
    tl.llm(input=note("Reservation"), content="What time tonight, and your name?")
    tl.llm(input="Yes, confirm it.", tool_calls=[call("confirm_reservation", "c2")])
    missing = (
        "Cannot confirm yet: ask the caller for their name, phone number and reservation time."
    )
    tl.llm(input=missing, content="First, what name should I put it under?")
    tl.llm(
        input="Ada. Actually, I'd rather order takeaway.",
        tool_calls=[call("update_name", "c3", name="Ada"), call("to_greeter", "c4")],
    )
    tl.llm(input=note("Greeter", customer_name="Ada"), content="Back at the desk, Ada.")
    userdata = restaurant.new_userdata()
    async with tl.session(userdata=userdata, stt=None, vad=None, tts=None) as session:
        await session.start(userdata.agents["greeter"], text_only=True)
        await session.wait_for_idle()
        assert session.history.messages()[-1].text_content == (
            "Welcome to Bella Vista! How can I help?"
        )
        result = await session.run(user_input="Can I book a table for tonight?")
        assert isinstance(session.current_agent, Reservation)
        second = await session.run(user_input="Yes, confirm it.")
        third = await session.run(user_input="Ada. Actually, I'd rather order takeaway.")
        assert session.current_agent is userdata.agents["greeter"]

    expect = result.expect
    expect.next_event().is_message(role="assistant")
    expect.next_event().is_function_call(name="to_reservation", arguments={})
    expect.next_event().is_function_call_output(
        output="Transferring to reservation.", is_error=False
    )
    expect.next_event().is_agent_handoff(new_agent_type=Reservation)
    expect.next_event().is_message(role="assistant")
    expect.no_more_events()
    assert result.final_output == "What time tonight, and your name?"

    expect = second.expect
    expect.next_event().is_function_call(name="confirm_reservation")
    expect.next_event().is_function_call_output(output=missing, is_error=True)
    expect.next_event().is_message(role="assistant")
    expect.no_more_events()

    expect = third.expect
    expect.next_event().is_function_call(name="update_name", arguments={"name": "Ada"})
    expect.next_event().is_function_call_output(is_error=False)
    expect.next_event().is_function_call(name="to_greeter")
    expect.next_event().is_function_call_output(output="Transferring to greeter.")
    expect.next_event().is_agent_handoff(new_agent_type=Greeter)
    expect.next_event().is_message(role="assistant")
    expect.no_more_events()
    assert userdata.prev_agent is userdata.agents["reservation"]
    assert handoff_targets(session) == ["Greeter", "Reservation", "Greeter"]
    # Back at the greeter: its first note is replaced by one with what it now knows.
    greeter_notes = [
        m.text_content for m in userdata.agents["greeter"].chat_ctx.messages() if m.role == "system"
    ]
    assert greeter_notes == [note("Greeter", customer_name="Ada")]


async def test_text_mode_takeaway_order_and_payment(autojump_clock):
    tl = text_timeline()
    tl.llm(input="I want to order takeaway.", tool_calls=[call("to_takeaway", "c1")])
    tl.llm(input=note("Takeaway"), content="What would you like?")
    order = ["pepperoni pizza", "unicorn burger"]
    tl.llm(
        input="A pepperoni pizza and a unicorn burger.",
        tool_calls=[call("update_order", "c2", items=order)],
    )
    unknown = (
        "Not on the menu: unicorn burger. Offer something from the menu: margherita pizza, "
        "pepperoni pizza, lasagna, caesar salad, tiramisu, soda."
    )
    tl.llm(input=unknown, content="We have no unicorn burger. Something else?")
    tl.llm(
        input="Then lasagna, and two sodas.",
        tool_calls=[
            call("update_order", "c3", items=["Pepperoni Pizza", "lasagna", "soda", "soda"])
        ],
    )
    total = "The order is pepperoni pizza, lasagna, soda, soda; the total is $32.50."
    tl.llm(input=total, content="That's $32.50. Anything else?")
    tl.llm(input="That's all.", tool_calls=[call("to_checkout", "c4")])
    taken = {"order": ["pepperoni pizza", "lasagna", "soda", "soda"], "expense": 32.5}
    tl.llm(input=note("Checkout", **taken), content="Your name, phone and card, please.")
    # Two card mistakes: the brand from the schema's enum, then the checksum.
    said = "Bob, 555 987 6543, Discover 4242 4242 4242 4241, 01/28, 999."
    tl.llm(
        input=said,
        tool_calls=[
            call("update_name", "c5", name="Bob"),
            call("update_phone", "c6", phone="555 987 6543"),
            call("update_credit_card", "c7", **{**CARD, "brand": "discover"}),
        ],
    )
    bad_brand = (
        "update_credit_card: argument 'brand': must be one of 'visa', 'mastercard', 'amex', "
        "got 'discover'"
    )
    tl.llm(input=bad_brand, content="We take Visa, Mastercard or Amex.")
    tl.llm(
        input="Visa then.",
        tool_calls=[call("update_credit_card", "c8", **{**CARD, "number": "4242424242424241"})],
    )
    bad_number = "That card number is not valid: ask the caller to read it again."
    tl.llm(input=bad_number, content="Could you read the number again?")
    # Dependent calls in separate steps: the tools of one step run side by side, in no order.
    tl.llm(input="4242 4242 4242 4242.", tool_calls=[call("update_credit_card", "c9", **CARD)])
    tl.llm(input="The visa card ending 4242 is saved.", content="Saved. Pay $32.50 now?")
    tl.llm(input="Yes.", tool_calls=[call("confirm_checkout", "c10")])
    charged = "Charged $32.50; the order will be ready in 20 minutes."
    tl.llm(input=charged, content="Done! Ready in 20 minutes.")

    userdata = restaurant.new_userdata()
    async with tl.session(userdata=userdata, stt=None, vad=None, tts=None) as session:
        await session.start(userdata.agents["greeter"], text_only=True)
        await session.wait_for_idle()
        to_takeaway = await session.run(user_input="I want to order takeaway.")
        unicorn = await session.run(user_input="A pepperoni pizza and a unicorn burger.")
        assert userdata.order == []
        ordered = await session.run(user_input="Then lasagna, and two sodas.")
        assert userdata.expense == 32.5
        to_checkout = await session.run(user_input="That's all.")
        await session.run(user_input=said)
        await session.run(user_input="Visa then.")
        assert userdata.customer_credit_card is None
        card = await session.run(user_input="4242 4242 4242 4242.")
        paid = await session.run(user_input="Yes.")

    # One cursor per result: each next_event() moves it on.
    expect = to_takeaway.expect
    expect.next_event().is_function_call(name="to_takeaway")
    expect.next_event().is_function_call_output()
    expect.next_event().is_agent_handoff(new_agent_type=Takeaway)
    expect = unicorn.expect
    expect.next_event().is_function_call(name="update_order", arguments={"items": order})
    expect.next_event().is_function_call_output(output=unknown, is_error=True)
    expect = ordered.expect
    expect.next_event().is_function_call(name="update_order")
    expect.next_event().is_function_call_output(output=total, is_error=False)
    to_checkout.expect[2].is_agent_handoff(new_agent_type=Checkout)
    assert to_checkout.final_output == "Your name, phone and card, please."

    expect = card.expect
    expect.next_event().is_function_call(name="update_credit_card", arguments=CARD)
    expect.next_event().is_function_call_output(
        output="The visa card ending 4242 is saved.", is_error=False
    )
    expect = paid.expect
    expect.next_event().is_function_call(name="confirm_checkout")
    expect.next_event().is_function_call_output(output=charged, is_error=False)
    assert paid.final_output == "Done! Ready in 20 minutes."
    assert (userdata.customer_name, userdata.customer_phone) == ("Bob", "555 987 6543")
    assert userdata.order == ["pepperoni pizza", "lasagna", "soda", "soda"]
    assert userdata.checked_out
    assert handoff_targets(session) == ["Greeter", "Takeaway", "Checkout"]


class TimelineRoom(SessionRoom):
    """A room for the entrypoint: the timeline's audio, ended once the script is done."""

    def __init__(self, tl):
        self.tl = tl
        self.session = None

    async def run_session_io(self, session, *, task_status=trio.TASK_STATUS_IGNORED):
        self.session = session
        async with trio.open_nursery() as nursery:
            await nursery.start(self.tl.audio_output.run)
            self.tl.start()
            self.tl.attach(session)
            task_status.started(
                RoomIO(
                    audio_input=self.tl.audio_input,
                    audio_output=self.tl.audio_output,
                    text_output=self.tl.text_output,
                )
            )
            await self.tl.wait_done()
            session.shutdown("participant_disconnected")


async def test_entrypoint_runs_the_call_with_the_prewarmed_models(autojump_clock):
    tl = Timeline()
    tl.llm(input=note("Greeter"), content="Welcome to Bella Vista!")
    tl.tts(input="Welcome to Bella Vista!", audio_duration=1.0)
    tl.user_speech(start=2.0, end=3.0, transcript="Takeaway, please.")
    tl.llm(input="Takeaway, please.", tool_calls=[call("to_takeaway", "c1")])
    tl.llm(input=note("Takeaway"), content="What would you like?")
    tl.tts(input="What would you like?", audio_duration=1.0)
    proc = JobProcess()  # as if prewarmed: the models are already in its userdata
    proc.userdata.update(vad=tl.fake_vad, stt=tl.fake_stt, llm=tl.fake_llm, tts=tl.fake_tts)
    room = TimelineRoom(tl)
    ctx = JobContext(proc=proc, job=JobInfo(id="job_1", room_name="bella-vista"), room=room)
    with trio.fail_after(60):
        await restaurant.entrypoint(ctx)
    session = room.session
    assert isinstance(session.userdata, UserData)
    assert isinstance(session.current_agent, Takeaway)
    assert handoff_targets(session) == ["Greeter", "Takeaway"]
    assert [p.position for p in tl.audio_output.playbacks] == [1.0, 1.0]
    # End of turn 3.5; the Greeter's LLM step was prepared from the final words at 3.2 (the
    # offline stack's preemptive generation), the Takeaway's 0.3 comes after it; TTS first
    # byte 0.2, 1 s of audio; then the call ends.
    assert trio.current_time() == pytest.approx(3.5 + 0.3 + 0.2 + 1.0)


# -- regressions: runtime bugs met while writing the example -------------------------------


async def test_state_is_thinking_while_the_greeting_is_generated(autojump_clock):
    # The order of the two state changes at t=0 depends on trio's scheduling (about even odds);
    # twenty sessions make the outcome certain either way.
    for _ in range(20):
        tl = text_timeline()
        tl.tts(input="Welcome to Bella Vista! How can I help?", audio_duration=1.0)
        userdata = restaurant.new_userdata()
        async with tl.session(userdata=userdata) as session:
            start = trio.current_time()
            await session.start(userdata.agents["greeter"])
            await trio.sleep(0.25)  # LLM 0.3 + TTS first byte 0.2: speaking from 0.5
            assert session.agent_state == "thinking"
            await trio.sleep(0.5)
            assert session.agent_state == "speaking"
            assert trio.current_time() - start == pytest.approx(0.75)


async def test_run_includes_the_reply_of_an_on_enter_that_awaits(autojump_clock):
    class LookupReservation(Reservation):
        async def on_enter(self) -> None:
            await trio.sleep(0.5)  # look up the caller's past bookings
            await super().on_enter()

    tl = text_timeline()
    tl.llm(input="Book a table.", tool_calls=[call("to_reservation", "c1")])
    tl.llm(input=note("LookupReservation"), content="For when?")
    userdata = restaurant.new_userdata()
    userdata.agents["reservation"] = LookupReservation()
    async with tl.session(userdata=userdata, stt=None, vad=None, tts=None) as session:
        await session.start(userdata.agents["greeter"], text_only=True)
        await session.wait_for_idle()
        result = await session.run(user_input="Book a table.")
    expect = result.expect
    expect.next_event().is_function_call(name="to_reservation")
    expect.next_event().is_function_call_output()
    expect.next_event().is_agent_handoff(new_agent_type=LookupReservation)
    expect.next_event().is_message(role="assistant")


async def test_handing_off_to_the_running_agent_does_not_crash_the_session(autojump_clock):
    class Unguarded(Greeter):
        @function_tool
        async def stay(self):
            """Hand the call to the greeter (this agent)."""
            return self, "Staying."

    tl = text_timeline()
    tl.llm(input="Stay with me.", tool_calls=[call("stay", "c1")])
    userdata = restaurant.new_userdata()
    userdata.agents["greeter"] = greeter = Unguarded()
    errors = []
    async with tl.session(userdata=userdata, stt=None, vad=None, tts=None) as session:
        session.on("error", errors.append)
        await session.start(greeter, text_only=True)
        await session.wait_for_idle()
        await session.run(user_input="Stay with me.")
        assert session.current_agent is greeter
    assert errors or outputs(session)["c1"][1]


async def test_result_expect_keeps_its_place(autojump_clock):
    tl = text_timeline()
    tl.llm(input="Book a table.", tool_calls=[call("to_reservation", "c1")])
    tl.llm(input=note("Reservation"), content="For when?")
    userdata = restaurant.new_userdata()
    async with tl.session(userdata=userdata, stt=None, vad=None, tts=None) as session:
        await session.start(userdata.agents["greeter"], text_only=True)
        await session.wait_for_idle()
        result = await session.run(user_input="Book a table.")
    result.expect.next_event().is_function_call(name="to_reservation")
    result.expect.next_event().is_function_call_output()
    result.expect.next_event().is_agent_handoff(new_agent_type=Reservation)
    result.expect.next_event().is_message(role="assistant")
    result.expect.no_more_events()
