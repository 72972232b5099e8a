"""A restaurant's phone line: a greeter hands callers to reservations or takeaway, and both to
checkout. The four agents share what they learn about the caller in a typed ``UserData``.

    tvoice console examples/restaurant.py --text
    python examples/restaurant.py worker

Each agent, on entering, reads a summary of the caller's details and the last few turns of the
agent before it, then speaks first. Tools check what the LLM gives them and raise ``ToolError``
with a message it can act on (ask again, say what is missing) rather than storing bad data.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import attrs
from offline import PREWARM_TIMEOUT, models, prewarm

from tvoice import (
    Agent,
    AgentSession,
    JobContext,
    RunContext,
    ToolError,
    WorkerOptions,
    function_tool,
    run_app,
)

RESTAURANT = "Bella Vista"

# Takeaway menu: item -> price in dollars.
MENU: dict[str, float] = {
    "margherita pizza": 12.0,
    "pepperoni pizza": 14.0,
    "lasagna": 13.5,
    "caesar salad": 9.0,
    "tiramisu": 6.5,
    "soda": 2.5,
}

CardBrand = Literal["visa", "mastercard", "amex"]


@attrs.define
class UserData:
    """What the agents know about the caller, shared through ``session.userdata``."""

    customer_name: str | None = None
    customer_phone: str | None = None
    reservation_time: str | None = None
    order: list[str] = attrs.field(factory=list)
    customer_credit_card: str | None = None
    customer_credit_card_brand: CardBrand | None = None
    customer_credit_card_expiry: str | None = None
    customer_credit_card_cvv: str | None = attrs.field(default=None, repr=False)
    expense: float = 0.0
    checked_out: bool = False
    agents: dict[str, Agent] = attrs.field(factory=dict, repr=False)
    prev_agent: Agent | None = attrs.field(default=None, repr=False)

    def summarize(self) -> str:
        """The caller's details as short YAML-ish lines, for the agents' chat (no card
        number: the LLM only needs to know that there is one)."""
        card = self.customer_credit_card
        fields = {
            "customer_name": self.customer_name or "unknown",
            "customer_phone": self.customer_phone or "unknown",
            "reservation_time": self.reservation_time or "unknown",
            "order": ", ".join(self.order) if self.order else "none",
            "expense": f"{self.expense:.2f}",
            "customer_credit_card": (
                f"{self.customer_credit_card_brand} ending {card[-4:]}" if card else "unknown"
            ),
            "checked_out": "yes" if self.checked_out else "no",
        }
        return "\n".join(f"{key}: {value}" for key, value in fields.items())


def handoff_note(agent_name: str, userdata: UserData) -> str:
    """The system note an agent adds to its chat when it takes the call."""
    return f"You are now the {agent_name} agent. The caller so far:\n{userdata.summarize()}"


def new_userdata() -> UserData:
    """Empty caller details, with the four agents the call can go through."""
    userdata = UserData()
    userdata.agents.update(
        greeter=Greeter(),
        reservation=Reservation(),
        takeaway=Takeaway(),
        checkout=Checkout(),
    )
    return userdata


# -- tools shared by several agents -----------------------------------------------------------


@function_tool
async def update_name(
    name: Annotated[str, "The customer's name"], context: RunContext[UserData]
) -> str:
    """Called when the caller gives their name. Confirm the spelling first."""
    name = name.strip()
    if not name:
        raise ToolError("The name is empty: ask the caller for their name.")
    context.userdata.customer_name = name
    return f"The name is updated to {name}."


@function_tool
async def update_phone(
    phone: Annotated[str, "The customer's phone number, with all its digits"],
    context: RunContext[UserData],
) -> str:
    """Called when the caller gives their phone number. Read it back to them first."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 7:
        raise ToolError(
            f"The phone number {phone!r} has only {len(digits)} digits: "
            "ask the caller for the full number."
        )
    context.userdata.customer_phone = phone.strip()
    return f"The phone number is updated to {phone.strip()}."


# -- agents -----------------------------------------------------------------------------------


class BaseAgent(Agent):
    """On entering: a note with the caller's details and the previous agent's last turns go
    into this agent's chat, then it speaks first."""

    recent_items = 6

    async def on_enter(self) -> None:
        userdata: UserData = self.session.userdata
        chat_ctx = self.chat_ctx
        # Notes from an earlier visit to this agent are out of date.
        chat_ctx.items = [
            item
            for item in chat_ctx.items
            if not (item.type == "message" and item.role == "system")
        ]
        previous = userdata.prev_agent
        if previous is not None:
            recent = previous.chat_ctx.copy(exclude_instructions=True)
            # merge() skips what is already here: tvoice carries the chat over on a handoff.
            chat_ctx.merge(recent.truncate(max_items=self.recent_items))
        chat_ctx.add_message(role="system", content=handoff_note(self.label, userdata))
        await self.update_chat_ctx(chat_ctx)
        self.session.generate_reply(tool_choice="none")

    def _transfer_to(self, name: str, context: RunContext[UserData]) -> tuple[Agent, str]:
        userdata = context.userdata
        next_agent = userdata.agents[name]
        if next_agent is self:
            raise ToolError(f"The caller is already talking to {name}.")
        userdata.prev_agent = self
        return next_agent, f"Transferring to {name}."


class Specialist(BaseAgent):
    """An agent that can send the caller back to the front desk."""

    @function_tool
    async def to_greeter(self, context: RunContext[UserData]) -> tuple[Agent, str]:
        """Called when the caller asks for something this agent does not handle."""
        return self._transfer_to("greeter", context)


class Greeter(BaseAgent):
    def __init__(self) -> None:
        menu = ", ".join(f"{item} ${price:.2f}" for item, price in MENU.items())
        super().__init__(
            instructions=(
                f"You are the friendly receptionist of {RESTAURANT}, an Italian restaurant. "
                f"Greet the caller and find out what they need. The takeaway menu: {menu}. "
                "Transfer to reservation to book a table, to takeaway to order food. "
                "Keep every answer to one or two short sentences."
            )
        )

    @function_tool
    async def to_reservation(self, context: RunContext[UserData]) -> tuple[Agent, str]:
        """Called when the caller wants to book a table."""
        return self._transfer_to("reservation", context)

    @function_tool
    async def to_takeaway(self, context: RunContext[UserData]) -> tuple[Agent, str]:
        """Called when the caller wants to order food to take away."""
        return self._transfer_to("takeaway", context)


class Reservation(Specialist):
    def __init__(self) -> None:
        super().__init__(
            instructions=(
                f"You take table reservations for {RESTAURANT}. Ask for the time, the "
                "caller's name and phone number, one at a time, then confirm the reservation. "
                "Be brief."
            ),
            tools=[update_name, update_phone],
        )

    @function_tool
    async def update_reservation_time(
        self,
        time: Annotated[str, "When the table is wanted, as the caller said it"],
        context: RunContext[UserData],
    ) -> str:
        """Called when the caller gives the time of the reservation."""
        time = time.strip()
        if not time:
            raise ToolError("The time is empty: ask the caller when they want the table.")
        context.userdata.reservation_time = time
        return f"The reservation time is updated to {time}."

    @function_tool
    async def confirm_reservation(self, context: RunContext[UserData]) -> tuple[Agent, str]:
        """Called when the caller confirms the reservation; a card then holds the table."""
        userdata = context.userdata
        _require(
            "confirm",
            name=userdata.customer_name,
            phone_number=userdata.customer_phone,
            reservation_time=userdata.reservation_time,
        )
        return self._transfer_to("checkout", context)


class Takeaway(Specialist):
    def __init__(self) -> None:
        menu = ", ".join(f"{item} ${price:.2f}" for item, price in MENU.items())
        super().__init__(
            instructions=(
                f"You take takeaway orders for {RESTAURANT}. The menu: {menu}. "
                "Record the whole order with update_order each time it changes, repeat it "
                "back with the total, then transfer to checkout. Be brief."
            )
        )

    @function_tool
    async def update_order(
        self,
        items: Annotated[list[str], "Every item of the order, once per portion"],
        context: RunContext[UserData],
    ) -> str:
        """Called when the caller orders, replacing the whole order."""
        wanted = [item.strip().lower() for item in items]
        unknown = [item for item in wanted if item not in MENU]
        if unknown:
            raise ToolError(
                f"Not on the menu: {', '.join(unknown)}. "
                f"Offer something from the menu: {', '.join(MENU)}."
            )
        if not wanted:
            raise ToolError("The order is empty: ask the caller what they would like.")
        userdata = context.userdata
        userdata.order = wanted
        userdata.expense = sum(MENU[item] for item in wanted)
        return f"The order is {', '.join(wanted)}; the total is ${userdata.expense:.2f}."

    @function_tool
    async def to_checkout(self, context: RunContext[UserData]) -> tuple[Agent, str]:
        """Called when the caller's order is complete and confirmed."""
        if not context.userdata.order:
            raise ToolError("The order is empty: take the order before checkout.")
        return self._transfer_to("checkout", context)


class Checkout(Specialist):
    def __init__(self) -> None:
        super().__init__(
            instructions=(
                f"You take payment for {RESTAURANT}. For a takeaway order, charge its total; "
                "for a reservation, a card holds the table and nothing is charged now. "
                "Ask for the caller's name and phone if unknown, then the card: brand, number, "
                "expiry and security code. Then confirm the checkout. Be brief."
            ),
            tools=[update_name, update_phone],
        )

    @function_tool
    async def update_credit_card(
        self,
        number: Annotated[str, "The card number, digits only"],
        expiry: Annotated[str, "The expiry date as MM/YY"],
        cvv: Annotated[str, "The security code on the card"],
        brand: Annotated[CardBrand, "The card's brand"],
        context: RunContext[UserData],
    ) -> str:
        """Called when the caller gives their credit card details."""
        digits = re.sub(r"[\s-]", "", number)
        if not digits.isdigit() or not 13 <= len(digits) <= 19:
            raise ToolError("A card number has 13 to 19 digits: ask the caller to repeat it.")
        if not _luhn_valid(digits):
            raise ToolError("That card number is not valid: ask the caller to read it again.")
        actual = _brand_of(digits)
        if actual != brand:
            raise ToolError(
                f"That number is not a {brand} card"
                + (f" but a {actual} one" if actual else ", and we take visa, mastercard, amex")
                + ": check the card with the caller."
            )
        if not re.fullmatch(r"(0[1-9]|1[0-2])/\d\d", expiry.strip()):
            raise ToolError(f"The expiry {expiry!r} is not MM/YY: ask the caller again.")
        cvv_digits = 4 if brand == "amex" else 3
        if not re.fullmatch(rf"\d{{{cvv_digits}}}", cvv.strip()):
            raise ToolError(f"A {brand} security code has {cvv_digits} digits: ask again.")
        userdata = context.userdata
        userdata.customer_credit_card = digits
        userdata.customer_credit_card_brand = brand
        userdata.customer_credit_card_expiry = expiry.strip()
        userdata.customer_credit_card_cvv = cvv.strip()
        return f"The {brand} card ending {digits[-4:]} is saved."

    @function_tool
    async def confirm_checkout(self, context: RunContext[UserData]) -> str:
        """Called when the caller confirms the payment."""
        userdata = context.userdata
        if userdata.checked_out:
            raise ToolError("The checkout is already done: say goodbye.")
        _require(
            "check out",
            name=userdata.customer_name,
            phone_number=userdata.customer_phone,
            credit_card=userdata.customer_credit_card,
        )
        if not userdata.order and not userdata.reservation_time:
            raise ToolError("There is nothing to pay for: transfer the caller to the greeter.")
        userdata.checked_out = True
        if userdata.order:
            return f"Charged ${userdata.expense:.2f}; the order will be ready in 20 minutes."
        return f"The table is held for {userdata.reservation_time}; nothing was charged."


def _require(action: str, **details: str | None) -> None:
    missing = [name.replace("_", " ") for name, value in details.items() if not value]
    if missing:
        listed = " and ".join([", ".join(missing[:-1]), missing[-1]] if missing[1:] else missing)
        raise ToolError(f"Cannot {action} yet: ask the caller for their {listed}.")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _brand_of(digits: str) -> CardBrand | None:
    if digits.startswith("4"):
        return "visa"
    if digits[:2] in ("34", "37"):
        return "amex"
    if 51 <= int(digits[:2]) <= 55 or 2221 <= int(digits[:4]) <= 2720:
        return "mastercard"
    return None


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    userdata = new_userdata()
    async with AgentSession[UserData](userdata=userdata, **models(ctx.proc)) as session:
        await session.start(userdata.agents["greeter"], room=ctx.room)
        await session.wait_closed()


options = WorkerOptions(
    entrypoint_fnc=entrypoint, prewarm_fnc=prewarm, initialize_process_timeout=PREWARM_TIMEOUT
)

if __name__ == "__main__":
    run_app(options)
