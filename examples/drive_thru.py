"""A burger drive-thru whose ordering tools are generated from its menu.

    tvoice console examples/drive_thru.py --text
    python examples/drive_thru.py worker

The menu is data. ``build_tools(menu)`` writes each tool's JSON schema from it when the agent
is made (``function_tool(raw_schema=...)``), so the ids and sizes the LLM may use are enums taken
from the menu: change the menu and the tools follow. The schema check turns away an unknown id
before a tool runs, telling the LLM the allowed values; the tools then check what a schema
cannot say (a size for an item that comes in one size, a quantity of 0) and raise ``ToolError``
with what to do instead. The order lives in the session's userdata, an ``OrderState``.
"""

from __future__ import annotations

from typing import Any, Literal

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
from tvoice.llm import FunctionTool, RawFunctionTool

SIZE_NAMES = {"S": "small", "M": "medium", "L": "large"}


@attrs.frozen
class Item:
    """Something on the menu: one ``price``, or a price for each of its ``sizes`` (in cents)."""

    name: str
    price: int | None = None
    sizes: dict[str, int] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if (self.price is None) == (not self.sizes):
            raise ValueError(f"{self.name}: give exactly one of price and sizes")

    def price_for(self, size: str | None) -> int:
        """The price of the item in ``size`` (None for an item with one size)."""
        if self.price is not None:
            return self.price
        if size is None:
            raise ValueError(f"{self.name} comes in sizes {', '.join(self.sizes)}")
        return self.sizes[size]

    def check_size(self, item_id: str, size: str | None, *, tool: str, field: str) -> None:
        """ToolError unless ``size`` fits the item: one of its sizes, or None if it has none."""
        if self.sizes and size is None:
            raise ToolError(
                f"{item_id} comes in sizes {', '.join(self.sizes)}: "
                f"ask the customer which size, then call {tool} with {field} set."
            )
        if self.sizes and size not in self.sizes:
            raise ToolError(
                f"{item_id} comes only in sizes {', '.join(self.sizes)}, not {size}: "
                "ask the customer which of those they want."
            )
        if not self.sizes and size is not None:
            raise ToolError(
                f"{item_id} comes in one size only: call {tool} again with {field} null."
            )


@attrs.frozen(kw_only=True)
class Menu:
    """The whole menu; every dict maps the id the tools use to the item."""

    combo_meals: dict[str, Item]
    # A combo comes with fries and a drink; these are the sizes and what each adds, in cents.
    combo_fries: dict[str, int]
    combo_drink: dict[str, int]
    happy_meals: dict[str, Item]
    regular_items: dict[str, Item]
    drinks: dict[str, Item]
    sauces: dict[str, Item]

    def single_items(self) -> dict[str, Item]:
        """What can be ordered on its own: regular items, drinks and sauces."""
        return {**self.regular_items, **self.drinks, **self.sauces}


MENU = Menu(
    combo_meals={
        "1": Item("Classic Burger Meal", 849),
        "2": Item("Double Cheeseburger Meal", 999),
        "3": Item("Crispy Chicken Meal", 899),
        "4": Item("10-piece Nuggets Meal", 949),
    },
    combo_fries={"M": 0, "L": 80},
    combo_drink={"S": 0, "M": 0, "L": 60},
    happy_meals={
        "happy_burger": Item("Hamburger Happy Meal", 449),
        "happy_nuggets": Item("4-piece Nuggets Happy Meal", 479),
    },
    regular_items={
        "classic_burger": Item("Classic Burger", 499),
        "double_cheeseburger": Item("Double Cheeseburger", 649),
        "crispy_chicken": Item("Crispy Chicken Sandwich", 599),
        "nuggets": Item("6-piece Nuggets", 399),
        "fries": Item("Fries", sizes={"S": 199, "M": 279, "L": 329}),
        "milkshake": Item("Vanilla Milkshake", sizes={"M": 349, "L": 399}),
        "apple_pie": Item("Apple Pie", 149),
    },
    drinks={
        "cola": Item("Cola", sizes={"S": 149, "M": 189, "L": 229}),
        "lemonade": Item("Lemonade", sizes={"S": 169, "M": 209, "L": 249}),
        "orange_juice": Item("Orange Juice", 249),
        "water": Item("Bottled Water", 129),
    },
    sauces={
        "ketchup": Item("Ketchup", 0),
        "bbq": Item("BBQ Sauce", 25),
        "honey_mustard": Item("Honey Mustard", 25),
    },
)


def dollars(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"


def menu_text(menu: Menu) -> str:
    """The menu as the LLM reads it in the instructions."""

    def line(item_id: str, item: Item) -> str:
        if item.price is not None:
            return f"- {item_id}: {item.name}, {dollars(item.price) if item.price else 'free'}"
        prices = ", ".join(f"{size} {dollars(cents)}" for size, cents in item.sizes.items())
        return f"- {item_id}: {item.name}, {prices}"

    def upgrades(sizes: dict[str, int]) -> str:
        return ", ".join(
            f"{size} {f'+{dollars(extra)}' if extra else 'included'}"
            for size, extra in sizes.items()
        )

    combos = (
        "COMBO MEALS (meal_id), with fries and a drink. "
        f"Fries: {upgrades(menu.combo_fries)}. Drink: {upgrades(menu.combo_drink)}."
    )
    sections = [
        (combos, menu.combo_meals),
        ("HAPPY MEALS (meal_id), with a small drink and a sauce.", menu.happy_meals),
        ("REGULAR ITEMS (item_id).", menu.regular_items),
        ("DRINKS (drink_id, or item_id on their own).", menu.drinks),
        ("SAUCES (sauce_id, or item_id on their own).", menu.sauces),
    ]
    return "\n\n".join(
        "\n".join([title, *(line(i, item) for i, item in items.items())])
        for title, items in sections
    )


# -- the order --------------------------------------------------------------------------------


@attrs.define
class OrderedItem:
    order_id: str
    kind: Literal["combo_meal", "happy_meal", "regular_item"]
    description: str
    quantity: int
    price: int  # cents, for the whole quantity

    def line(self) -> str:
        return f"{self.order_id}: {self.quantity}x {self.description}, {dollars(self.price)}"


@attrs.define
class OrderState:
    """The car's order: ``items`` by order id, ``total`` in cents."""

    items: dict[str, OrderedItem] = attrs.field(factory=dict)
    checked_out: bool = False
    _next_id: int = 1

    @property
    def total(self) -> int:
        return sum(item.price for item in self.items.values())

    def add(
        self,
        kind: Literal["combo_meal", "happy_meal", "regular_item"],
        description: str,
        *,
        unit_price: int,
        quantity: int = 1,
    ) -> OrderedItem:
        if self.checked_out:
            raise ToolError("The order is already paid for: it cannot change now.")
        order_id = f"o{self._next_id}"
        self._next_id += 1
        item = OrderedItem(order_id, kind, description, quantity, unit_price * quantity)
        self.items[order_id] = item
        return item

    def added(self, item: OrderedItem) -> str:
        return f"Added {item.line()}. The order total is {dollars(self.total)}."


# -- the tools, built from the menu -----------------------------------------------------------


def _enum(ids: Any, *, nullable: bool = False, description: str) -> dict[str, Any]:
    values = list(ids)
    if nullable:
        return {"type": ["string", "null"], "enum": [*values, None], "description": description}
    return {"type": "string", "enum": values, "description": description}


def _schema(name: str, description: str, properties: dict[str, Any], required: list[str]) -> Any:
    return {
        "name": name,
        "description": description,
        "parameters": {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        },
    }


def build_tools(menu: Menu) -> list[FunctionTool | RawFunctionTool]:
    """The ordering tools for ``menu``: every id and size the LLM may pass is an enum."""
    single_items = menu.single_items()
    item_sizes = list(dict.fromkeys(s for item in single_items.values() for s in item.sizes))

    @function_tool(
        raw_schema=_schema(
            "order_combo_meal",
            "Order a combo meal by its number, with its fries and drink. Ask for the drink and "
            "the sizes if the customer did not say them; never guess.",
            {
                "meal_id": _enum(menu.combo_meals, description="The combo's number."),
                "drink_id": _enum(menu.drinks, description="The drink that comes with it."),
                "drink_size": _enum(
                    menu.combo_drink,
                    nullable=True,
                    description="The drink's size; null for a drink that has one size.",
                ),
                "fries_size": _enum(menu.combo_fries, description="The fries' size."),
                "sauce_id": _enum(menu.sauces, nullable=True, description="A sauce, if wanted."),
            },
            ["meal_id", "drink_id", "drink_size", "fries_size"],
        )
    )
    async def order_combo_meal(
        raw_arguments: dict[str, Any], context: RunContext[OrderState]
    ) -> str:
        meal_id, drink_id = raw_arguments["meal_id"], raw_arguments["drink_id"]
        drink_size, fries_size = raw_arguments["drink_size"], raw_arguments["fries_size"]
        sauce_id = raw_arguments.get("sauce_id")
        drink = menu.drinks[drink_id]
        drink.check_size(drink_id, drink_size, tool="order_combo_meal", field="drink_size")
        price = menu.combo_meals[meal_id].price_for(None) + menu.combo_fries[fries_size]
        parts = [f"{SIZE_NAMES.get(fries_size, fries_size)} fries"]
        if drink_size is None:
            parts.append(drink.name)
        else:
            price += menu.combo_drink[drink_size]
            parts.append(f"{SIZE_NAMES.get(drink_size, drink_size)} {drink.name}")
        if sauce_id is not None:
            parts.append(menu.sauces[sauce_id].name)  # one sauce comes with the meal
        description = f"Number {meal_id} {menu.combo_meals[meal_id].name} ({', '.join(parts)})"
        order = context.userdata
        return order.added(order.add("combo_meal", description, unit_price=price))

    @function_tool(
        raw_schema=_schema(
            "order_happy_meal",
            "Order a Happy Meal for a child: the meal, its drink (always small) and a sauce.",
            {
                "meal_id": _enum(menu.happy_meals, description="The Happy Meal."),
                "drink_id": _enum(menu.drinks, description="The drink that comes with it."),
                "sauce_id": _enum(menu.sauces, nullable=True, description="A sauce, if wanted."),
            },
            ["meal_id", "drink_id"],
        )
    )
    async def order_happy_meal(
        raw_arguments: dict[str, Any], context: RunContext[OrderState]
    ) -> str:
        meal_id, drink_id = raw_arguments["meal_id"], raw_arguments["drink_id"]
        sauce_id = raw_arguments.get("sauce_id")
        drink = menu.drinks[drink_id]
        parts = [f"small {drink.name}" if drink.sizes else drink.name]
        if sauce_id is not None:
            parts.append(menu.sauces[sauce_id].name)
        meal = menu.happy_meals[meal_id]
        description = f"{meal.name} ({', '.join(parts)})"
        order = context.userdata
        return order.added(order.add("happy_meal", description, unit_price=meal.price_for(None)))

    @function_tool(
        raw_schema=_schema(
            "order_regular_item",
            "Order an item on its own, not as part of a meal: a burger, fries, a drink, a "
            "sauce... Ask for the size of an item that has sizes; never guess.",
            {
                "item_id": _enum(single_items, description="The item."),
                "size": _enum(
                    item_sizes,
                    nullable=True,
                    description="The item's size; null for an item that has one size.",
                ),
                "quantity": {
                    "type": "integer",
                    "minimum": 1,
                    "default": 1,
                    "description": "How many.",
                },
            },
            ["item_id", "size"],
        )
    )
    async def order_regular_item(
        raw_arguments: dict[str, Any], context: RunContext[OrderState]
    ) -> str:
        item_id, size = raw_arguments["item_id"], raw_arguments["size"]
        quantity = raw_arguments["quantity"]
        if quantity < 1:
            raise ToolError(
                f"The quantity must be at least 1, not {quantity}; "
                "to take something off the order, use remove_order_item."
            )
        item = single_items[item_id]
        item.check_size(item_id, size, tool="order_regular_item", field="size")
        name = item.name if size is None else f"{SIZE_NAMES.get(size, size)} {item.name}"
        order = context.userdata
        added = order.add("regular_item", name, unit_price=item.price_for(size), quantity=quantity)
        return order.added(added)

    @function_tool
    async def remove_order_item(order_id: str, context: RunContext[OrderState]) -> str:
        """Take an item off the order, by the order id that list_order_items shows.

        Args:
            order_id: The order id, like o1.
        """
        order = context.userdata
        if order.checked_out:
            raise ToolError("The order is already paid for: it cannot change now.")
        item = order.items.pop(order_id.strip(), None)
        if item is None:
            known = ", ".join(order.items) or "none, the order is empty"
            raise ToolError(f"There is no item {order_id!r} in the order (its ids: {known}).")
        return f"Removed {item.line()}. The order total is {dollars(order.total)}."

    @function_tool
    async def list_order_items(context: RunContext[OrderState]) -> str:
        """What the order holds so far, with each item's order id and the total."""
        order = context.userdata
        if not order.items:
            return "The order is empty."
        lines = [item.line() for item in order.items.values()]
        return "\n".join([*lines, f"Total: {dollars(order.total)}."])

    @function_tool
    async def checkout(context: RunContext[OrderState]) -> str:
        """Finish the order once the customer says that is all: gives the summary to read back."""
        order = context.userdata
        if not order.items:
            raise ToolError("The order is empty: ask the customer what they would like.")
        if order.checked_out:
            raise ToolError("The order is already complete: send the car to the window.")
        order.checked_out = True
        lines = [f"{item.quantity}x {item.description}" for item in order.items.values()]
        return (
            f"The order is complete: {'; '.join(lines)}. Total: {dollars(order.total)}. "
            "Ask the customer to drive to the next window."
        )

    return [
        order_combo_meal,
        order_happy_meal,
        order_regular_item,
        remove_order_item,
        list_order_items,
        checkout,
    ]


# -- the agent --------------------------------------------------------------------------------

GREETING = "Welcome to Burger Barn! What can I get for you today?"

INSTRUCTIONS = (
    "You take orders at the Burger Barn drive-thru, by voice: short sentences, no lists, no "
    "formatting, prices spoken as words. Use the ordering tools for every item; if a tool "
    "reports an error, fix the call or ask the customer. When the customer is done, call "
    "checkout and read the total back."
)


class DriveThruAgent(Agent):
    def __init__(self, menu: Menu = MENU) -> None:
        super().__init__(
            instructions=f"{INSTRUCTIONS}\n\nTHE MENU\n\n{menu_text(menu)}",
            tools=build_tools(menu),
        )

    async def on_enter(self) -> None:
        self.session.say(GREETING)


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    async with AgentSession[OrderState](userdata=OrderState(), **models(ctx.proc)) as session:
        await session.start(DriveThruAgent(), room=ctx.room)
        await session.wait_closed()


options = WorkerOptions(
    entrypoint_fnc=entrypoint, prewarm_fnc=prewarm, initialize_process_timeout=PREWARM_TIMEOUT
)

if __name__ == "__main__":
    run_app(options)
