import dataclasses
import enum
from collections.abc import Sequence
from typing import (
    Annotated,
    Any,
    Generic,
    Literal,
    NewType,
    NotRequired,
    Optional,
    TypedDict,
    TypeVar,
)

import attrs
import pytest

from tvoice.llm import (
    FunctionTool,
    RawFunctionTool,
    StopResponse,
    ToolArgumentsError,
    ToolError,
    find_function_tools,
    function_tool,
    is_run_context_type,
)
from tvoice.llm._arg_types import AnyOf, AnyType, Nullable, Primitive

T = TypeVar("T")


class RunCtx(Generic[T]):
    """Stands in for the runtime's RunContext."""

    __tvoice_run_context__ = True


class NotACtx:
    __tvoice_run_context__ = False


class Size(enum.Enum):
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@attrs.define
class Item:
    name: str
    size: Literal["small", "medium", "large"]
    count: int = 1
    tags: list[str] = attrs.Factory(list)
    cached: int = attrs.field(init=False, default=0)


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0
    label: str = dataclasses.field(default_factory=str)
    derived: int = dataclasses.field(init=False, default=0)


class Address(TypedDict):
    street: str
    zip: NotRequired[str]


class Partial(TypedDict, total=False):
    note: str


@attrs.define
class Node:
    child: "Node | None" = None


@attrs.define
class Positive:
    value: int = attrs.field(validator=attrs.validators.gt(0))


class FieldLike:
    def __init__(self, description):
        self.description = description


def params(tool):
    return tool.schema["parameters"]


def obj(properties, required=(), **extra):
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
        **extra,
    }


def error_of(tool, raw):
    with pytest.raises(ToolArgumentsError) as info:
        tool.parse_arguments(raw)
    return str(info.value)


# --- decorating ---


def test_decorator_forms():
    @function_tool
    async def plain() -> None:
        """Do it."""

    @function_tool()
    async def called() -> None:
        pass

    @function_tool(name="renamed", description="Custom.")
    async def named() -> None:
        """Ignored."""

    assert isinstance(plain, FunctionTool)
    assert plain.schema == {"name": "plain", "description": "Do it.", "parameters": obj({})}
    assert (called.name, called.description) == ("called", "")
    assert (named.name, named.description) == ("renamed", "Custom.")
    assert named.__name__ == "named"
    assert named.__doc__ == "Ignored."


def test_sync_functions_are_rejected():
    def sync(x: int) -> int:
        return x

    with pytest.raises(TypeError, match=r"needs an async function: make .*sync 'async def'"):
        function_tool(sync)


def test_bad_names_are_rejected():
    async def f() -> None:
        pass

    with pytest.raises(ValueError, match="tool name 'has space' must be 1-64 letters"):
        function_tool(name="has space")(f)


def test_schema_is_a_fresh_copy():
    @function_tool
    async def f(x: int) -> None:
        pass

    f.schema["parameters"]["properties"].clear()
    assert params(f)["properties"] == {"x": {"type": "integer"}}


# --- schemas ---


def test_scalar_types():
    @function_tool
    async def f(s: str, i: int, n: float, b: bool) -> None:
        pass

    assert params(f) == obj(
        {
            "s": {"type": "string"},
            "i": {"type": "integer"},
            "n": {"type": "number"},
            "b": {"type": "boolean"},
        },
        ["s", "i", "n", "b"],
    )


def test_literal_and_enum_types():
    @function_tool
    async def f(
        word: Literal["a", "b"],
        number: Literal[1, 2],
        mixed: Literal["a", 1],
        size: Size,
        level: Level,
        flag: Literal[True],
        maybe: Literal["x", None],
        member: Literal[Size.SMALL],
    ) -> None:
        pass

    assert params(f)["properties"] == {
        "word": {"type": "string", "enum": ["a", "b"]},
        "number": {"type": "integer", "enum": [1, 2]},
        "mixed": {"type": ["string", "integer"], "enum": ["a", 1]},
        "size": {"type": "string", "enum": ["small", "medium", "large"]},
        "level": {"type": "integer", "enum": [1, 2]},
        "flag": {"type": "boolean", "enum": [True]},
        "maybe": {"type": ["string", "null"], "enum": ["x", None]},
        "member": {"type": "string", "enum": ["small"]},
    }


def test_container_types():
    @function_tool
    async def f(
        names: list[str],
        seq: Sequence[int],
        scores: dict[str, float],
        nested: list[dict[str, list[bool]]],
    ) -> None:
        pass

    assert params(f) == obj(
        {
            "names": {"type": "array", "items": {"type": "string"}},
            "seq": {"type": "array", "items": {"type": "integer"}},
            "scores": {"type": "object", "additionalProperties": {"type": "number"}},
            "nested": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "boolean"}},
                },
            },
        },
        ["names", "seq", "scores", "nested"],
    )


def test_defaults_appear_in_schema_and_leave_required():
    sentinel = object()

    @function_tool
    async def f(
        a: str | None,
        b: Optional[int] = None,  # noqa: UP045 - both spellings are supported
        c: list[str] | None = None,
        d: Size | None = Size.SMALL,
        e: float = 1.5,
        odd: str = sentinel,  # type: ignore[assignment]
        grid: list[list[int]] = [[1], [2]],  # noqa: B006 - a default is never mutated
        opts: dict[str, int] = {"a": 1},  # noqa: B006
    ) -> None:
        pass

    assert params(f) == obj(
        {
            "a": {"type": ["string", "null"]},
            "b": {"type": ["integer", "null"], "default": None},
            "c": {"type": ["array", "null"], "items": {"type": "string"}, "default": None},
            "d": {
                "type": ["string", "null"],
                "enum": ["small", "medium", "large", None],
                "default": "small",
            },
            "e": {"type": "number", "default": 1.5},
            "odd": {"type": "string"},  # not JSON data: filled in, but not shown
            "grid": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "integer"}},
                "default": [[1], [2]],
            },
            "opts": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "default": {"a": 1},
            },
        },
        ["a"],
    )
    assert f.parse_arguments({"a": None}) == {
        "a": None,
        "b": None,
        "c": None,
        "d": Size.SMALL,
        "e": 1.5,
        "odd": sentinel,
        "grid": [[1], [2]],
        "opts": {"a": 1},
    }


def test_descriptions_from_annotated_and_the_docstring():
    @function_tool
    async def get_weather(
        location: Annotated[str, "The city."],
        unit: Annotated[Literal["C", "F"], FieldLike("Temperature unit.")] = "C",
        days: int = 1,
        hourly: Annotated[bool, 42] = False,
        when: Annotated[str, "Annotated wins."] | None = None,
    ) -> str:
        """Look up the weather
        for a city.

        Longer text that is not part of the summary.

        Args:
            location: Ignored, Annotated wins.
            days (int): How many days,
                counting today.
            hourly: Hour by hour.
            when: Ignored too.

        Returns:
            The forecast.
        """
        return ""

    assert get_weather.description == "Look up the weather for a city."
    assert params(get_weather)["properties"] == {
        "location": {"type": "string", "description": "The city."},
        "unit": {
            "type": "string",
            "enum": ["C", "F"],
            "description": "Temperature unit.",
            "default": "C",
        },
        "days": {"type": "integer", "description": "How many days, counting today.", "default": 1},
        "hourly": {"type": "boolean", "description": "Hour by hour.", "default": False},
        "when": {"type": ["string", "null"], "description": "Annotated wins.", "default": None},
    }


def test_docstring_summary_stops_at_a_section_and_odd_args_lines_are_skipped():
    @function_tool
    async def f(a: int, b: int) -> None:
        """Summary.
        Args:
            not an entry line
                and its continuation
            a: First.
        """

    assert f.description == "Summary."
    assert params(f)["properties"] == {
        "a": {"type": "integer", "description": "First."},
        "b": {"type": "integer"},
    }


def test_nested_record_types():
    @function_tool
    async def f(items: list[Item], at: Point, address: Address, extra: Partial) -> None:
        pass

    assert params(f)["properties"] == {
        "items": {
            "type": "array",
            "items": obj(
                {
                    "name": {"type": "string"},
                    "size": {"type": "string", "enum": ["small", "medium", "large"]},
                    "count": {"type": "integer", "default": 1},
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
                ["name", "size"],
            ),
        },
        "at": obj(
            {
                "x": {"type": "number"},
                "y": {"type": "number", "default": 0.0},
                "label": {"type": "string"},
            },
            ["x"],
        ),
        "address": obj({"street": {"type": "string"}, "zip": {"type": "string"}}, ["street"]),
        "extra": obj({"note": {"type": "string"}}),
    }


def test_new_type_uses_its_base():
    UserId = NewType("UserId", str)

    @function_tool
    async def f(user: UserId) -> None:
        pass

    assert params(f)["properties"] == {"user": {"type": "string"}}


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (set[int], "unsupported type set[int]"),
        (int | str, "unsupported type int | str: the only union allowed is T | None"),
        (list, "list needs its item type, e.g. list[str]"),
        (dict[int, str], "unsupported type dict[int, str]: JSON object keys are strings"),
        (Literal[1.5j], "unsupported type typing.Literal[1.5j]: 1.5j is not a JSON value"),
        (Any, "unsupported type typing.Any"),
        (Node, "Node.child: recursive type Node is not supported"),
        (
            list[Point | set[int]],
            "unsupported type tests.llm.test_tools.Point | set[int]: "
            "the only union allowed is T | None",
        ),
    ],
)
def test_unsupported_annotations_name_the_parameter(annotation, message):
    async def f(x) -> None:
        pass

    f.__annotations__["x"] = annotation
    with pytest.raises(TypeError) as info:
        function_tool(f)
    assert str(info.value) == f"function_tool {f.__qualname__}: parameter 'x': {message}"


def test_unsupported_field_of_a_record_names_it():
    @attrs.define
    class Bad:
        ok: int
        bad: set[int]

    async def f(x: Bad) -> None:
        pass

    with pytest.raises(TypeError, match=r"parameter 'x': .*Bad\.bad: unsupported type set\[int\]"):
        function_tool(f)


def test_record_field_without_annotation_is_rejected():
    @attrs.define
    class Bad:
        x = attrs.field()

    async def f(x: Bad) -> None:
        pass

    with pytest.raises(TypeError, match=r"Bad\.x: needs a type annotation"):
        function_tool(f)


def test_signature_problems_are_rejected():
    async def no_annotation(x) -> None:
        pass

    async def star_args(*args: int) -> None:
        pass

    async def forward(x: "Missing") -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(TypeError, match="parameter 'x': needs a type annotation"):
        function_tool(no_annotation)
    with pytest.raises(TypeError, match=r"parameter 'args': \*args and \*\*kwargs are not"):
        function_tool(star_args)
    with pytest.raises(TypeError, match=r"cannot resolve the type hints of .*forward"):
        function_tool(forward)


# --- checking arguments ---


@function_tool
async def get_weather(location: str, days: int = 1, hourly: bool = False) -> str:
    """Look up the weather."""
    return f"{location} {days} {hourly}"


@function_tool
async def order(items: list[Item], size: Size = Size.SMALL, scale: float = 1.0) -> Any:
    """Order things."""
    return items, size, scale


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"location": 42}, "argument 'location': expected a string, got 42"),
        ({"location": "x", "days": 2.5}, "argument 'days': expected an integer, got 2.5"),
        ({"location": "x", "days": True}, "argument 'days': expected an integer, got True"),
        ({"location": "x", "days": "3"}, "argument 'days': expected an integer, got '3'"),
        ({"location": "x", "hourly": 1}, "argument 'hourly': expected a boolean, got 1"),
        ({"location": "x", "hourly": "true"}, "argument 'hourly': expected a boolean, got 'true'"),
        ({}, "missing required argument 'location'"),
        ({"location": "x", "foo": 1}, "unexpected argument 'foo'"),
        ("", "missing required argument 'location'"),
        ("[1, 2]", "arguments must be a JSON object, got list"),
        ("null", "arguments must be a JSON object, got None"),
        (
            "{",
            "arguments are not valid JSON (Expecting property name enclosed in double quotes: "
            "line 1 column 2)",
        ),
        ("nope", "arguments are not valid JSON (Expecting value: line 1 column 1)"),
        ({"location": None}, "argument 'location': expected a string, got None"),
    ],
)
def test_each_kind_of_error_is_reported_exactly(raw, message):
    assert error_of(get_weather, raw) == f"get_weather: {message}"


def test_nested_errors_name_the_path_and_all_are_reported_together():
    raw = {
        "items": [
            {"name": "a", "size": "small"},
            {"name": 1, "size": "small", "colour": "red"},
            {"name": "c", "size": "huge", "tags": ["ok", 2]},
            "d",
        ],
        "size": "tiny",
        "scale": "big",
    }
    assert error_of(order, raw) == (
        "order: argument 'items[1].name': expected a string, got 1; "
        "unexpected argument 'items[1].colour'; "
        "argument 'items[2].size': must be one of 'small', 'medium', 'large', got 'huge'; "
        "argument 'items[2].tags[1]': expected a string, got 2; "
        "argument 'items[3]': expected an object, got 'd'; "
        "argument 'size': must be one of 'small', 'medium', 'large', got 'tiny'; "
        "argument 'scale': expected a number, got 'big'"
    )
    assert error_of(order, {"items": {"a": 1}}) == (
        "order: argument 'items': expected an array, got {'a': 1}"
    )
    assert error_of(order, {"items": [{"size": "small"}]}) == (
        "order: missing required argument 'items[0].name'"
    )


def test_long_values_are_shortened_in_messages():
    message = error_of(get_weather, {"location": list(range(100))})
    assert message == (
        "get_weather: argument 'location': expected a string, got "
        "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16..."
    )


def test_errors_name_the_tool_and_keep_the_list():
    with pytest.raises(ToolArgumentsError) as info:
        get_weather.parse_arguments('{"location": 1, "x": 2}')
    assert isinstance(info.value, ToolError)
    assert info.value.tool_name == "get_weather"
    assert info.value.errors == [
        "argument 'location': expected a string, got 1",
        "unexpected argument 'x'",
    ]
    assert info.value.message == str(info.value)


def test_map_errors_name_the_key():
    @function_tool
    async def f(scores: dict[str, int]) -> None:
        pass

    assert error_of(f, {"scores": {"a": 1, "b c": "x"}}) == (
        "f: argument 'scores['b c']': expected an integer, got 'x'"
    )
    assert error_of(f, {"scores": [1]}) == "f: argument 'scores': expected an object, got [1]"


def test_coercions_and_defaults():
    assert get_weather.parse_arguments('{"location": "Paris", "days": 3.0}') == {
        "location": "Paris",
        "days": 3,
        "hourly": False,
    }
    assert isinstance(get_weather.parse_arguments({"location": "", "days": 3.0})["days"], int)
    converted = order.parse_arguments({"items": [], "scale": 2})
    assert converted == {"items": [], "size": Size.SMALL, "scale": 2.0}
    assert isinstance(converted["scale"], float)


def test_values_are_converted_to_python_types():
    @function_tool
    async def f(
        items: Sequence[Item],
        at: Point,
        address: Address,
        level: Level,
        member: Literal[Size.LARGE],
        maybe: Point | None = None,
    ) -> None:
        pass

    raw = {
        "items": ({"name": "a", "size": "large", "tags": ["x"]},),
        "at": {"x": 1},
        "address": {"street": "Main"},
        "level": 2,
        "member": "large",
        "maybe": None,
    }
    converted = f.parse_arguments(raw)
    assert converted == {
        "items": [Item(name="a", size="large", count=1, tags=["x"])],
        "at": Point(x=1.0),
        "address": {"street": "Main"},
        "level": Level.HIGH,
        "member": Size.LARGE,
        "maybe": None,
    }
    assert error_of(f, {**raw, "level": True}) == (
        "f: argument 'level': must be one of 1, 2, got True"
    )


def test_a_record_class_may_still_refuse_a_value():
    @function_tool
    async def f(p: Positive) -> None:
        pass

    assert error_of(f, {"p": {"value": 0}}).startswith("f: argument 'p': 'value' must be > 0")


# --- calling ---


async def test_call_checks_then_runs():
    assert await get_weather.call('{"location": "Oslo", "days": 2}') == "Oslo 2 False"
    assert await get_weather("Rome") == "Rome 1 False"  # direct call, no checks
    with pytest.raises(ToolArgumentsError, match="missing required argument 'location'"):
        await get_weather.call({})


async def test_run_context_is_injected_and_left_out_of_the_schema():
    seen = []

    @function_tool
    async def f(ctx: RunCtx[int], city: str, /, plain: RunCtx, *, n: int = 0) -> str:
        seen.append((ctx, plain))
        return f"{city} {n}"

    assert params(f) == obj(
        {"city": {"type": "string"}, "n": {"type": "integer", "default": 0}}, ["city"]
    )
    context = RunCtx()
    assert await f.call({"city": "Oslo"}, context=context) == "Oslo 0"
    assert seen == [(context, context)]


def test_is_run_context_type():
    assert is_run_context_type(RunCtx)
    assert is_run_context_type(RunCtx[int])
    assert is_run_context_type(Annotated[RunCtx[int], "x"])
    assert not is_run_context_type(NotACtx)
    assert not is_run_context_type(RunCtx | None)
    assert not is_run_context_type(int)
    assert not is_run_context_type("RunCtx")


class Base:
    def __init__(self, name: str) -> None:
        self.name = name

    @function_tool
    async def greet(self, who: str) -> str:
        """Say hello."""
        return f"{self.name} greets {who}"

    @function_tool(name="farewell")
    async def leave(self, ctx: RunCtx) -> Any:
        return self, ctx

    @function_tool
    async def hidden(self) -> None:
        pass

    async def not_a_tool(self) -> None:
        pass


class Child(Base):
    @function_tool
    async def greet(self, who: str, loud: bool = False) -> str:
        """Say hello louder."""
        return f"{self.name} GREETS {who}" if loud else f"{self.name} greets {who}"

    hidden = None  # type: ignore[assignment]

    @function_tool
    async def extra(self) -> str:
        return "extra"


async def test_methods_bind_like_methods():
    agent = Base("ann")
    assert Base.greet is Base.__dict__["greet"]
    bound = agent.greet
    assert isinstance(bound, FunctionTool)
    assert bound.schema == Base.greet.schema
    assert params(bound) == obj({"who": {"type": "string"}}, ["who"])
    assert await bound.call({"who": "bob"}) == "ann greets bob"
    assert await bound("eve") == "ann greets eve"
    assert await agent.leave.call("", context="ctx") == (agent, "ctx")
    assert bound == agent.greet
    assert hash(bound) == hash(agent.greet)
    assert bound != Base("ann").greet
    assert bound != Base.greet
    assert bound != "greet"
    assert repr(Base.greet) == "<FunctionTool 'greet'>"
    assert repr(bound).startswith("<FunctionTool 'greet' bound to <")
    with pytest.raises(TypeError, match="tool 'greet' is a method: use it from an instance"):
        await Base.greet.call({"who": "x"})


async def test_a_bound_method_can_be_made_a_tool():
    class Service:
        async def lookup(self, key: str) -> str:
            return key.upper()

    tool = function_tool(Service().lookup)
    assert params(tool) == obj({"key": {"type": "string"}}, ["key"])
    assert await tool.call({"key": "k"}) == "K"


def test_a_function_tool_stored_on_a_class_stays_unbound():
    class Holder:
        tool = get_weather

    assert Holder().tool is get_weather


async def test_find_function_tools_in_definition_order_with_overrides():
    child = Child("cy")
    tools = find_function_tools(child)
    assert [tool.name for tool in tools] == ["greet", "farewell", "extra"]
    assert tools[0].description == "Say hello louder."
    assert await tools[0].call({"who": "x", "loud": True}) == "cy GREETS x"
    assert [tool.name for tool in find_function_tools(Base("b"))] == [
        "greet",
        "farewell",
        "hidden",
    ]
    assert find_function_tools(object()) == []


# --- raw tools ---


WEATHER_SCHEMA = {
    "name": "lookup",
    "description": "Look something up.",
    "parameters": {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What to look up."},
            "limit": {"type": "integer", "default": 5},
            "kind": {"enum": ["web", "news"]},
            "lang": {"type": ["string", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "meta": {"type": "object", "additionalProperties": {"type": "number"}},
            "either": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]},
            "several": {"type": ["integer", "string", "null"]},
            "fixed": {"const": "x"},
            "free": {"description": "anything"},
            "loose": {"type": "object"},
            "odd": {"type": "date"},
            "bare": {"type": "array"},
        },
        "required": ["query"],
        "additionalProperties": False,
    },
}


async def test_raw_tools_check_against_the_schema_and_get_a_dict():
    received = []

    @function_tool(raw_schema=WEATHER_SCHEMA)
    async def lookup(raw_arguments: dict[str, Any], context: RunCtx) -> str:
        received.append((raw_arguments, context))
        return "done"

    assert isinstance(lookup, RawFunctionTool)
    assert lookup.schema == WEATHER_SCHEMA
    assert lookup.schema is not WEATHER_SCHEMA
    assert (lookup.name, lookup.description) == ("lookup", "Look something up.")
    args = {
        "query": "trio",
        "kind": "news",
        "lang": None,
        "tags": ["a"],
        "meta": {"x": 1},
        "either": True,
        "several": "s",
        "fixed": "x",
        "free": [1],
        "loose": {"any": "thing"},
        "odd": 3,
        "bare": [None],
    }
    assert await lookup.call(args, context="ctx") == "done"
    assert received == [({**args, "limit": 5, "meta": {"x": 1.0}}, "ctx")]


def test_raw_tool_errors():
    tool = function_tool(lambda_tool, raw_schema=WEATHER_SCHEMA)
    assert error_of(
        tool,
        {
            "limit": "5",
            "kind": "blog",
            "lang": 3,
            "tags": "a",
            "meta": {"x": "1"},
            "either": "no",
            "several": 1.5,
            "fixed": "y",
            "other": 1,
        },
    ) == (
        "lookup: missing required argument 'query'; "
        "argument 'limit': expected an integer, got '5'; "
        "argument 'kind': must be one of 'web', 'news', got 'blog'; "
        "argument 'lang': expected a string, got 3; "
        "argument 'tags': expected an array, got 'a'; "
        "argument 'meta['x']': expected a number, got '1'; "
        "argument 'either': expected an integer or a boolean, got 'no'; "
        "argument 'several': expected an integer or a string or null, got 1.5; "
        "argument 'fixed': must be one of 'x', got 'y'; "
        "unexpected argument 'other'"
    )


async def lambda_tool(raw_arguments: dict[str, Any]) -> dict[str, Any]:
    return raw_arguments


async def test_raw_tool_defaults_and_methods():
    tool = function_tool(lambda_tool, raw_schema={"name": "bare"})
    assert tool.schema == {
        "name": "bare",
        "description": "",
        "parameters": {"type": "object", "properties": {}},
    }
    assert await tool.call('{"anything": [1]}') == {"anything": [1]}

    class Agent:
        @function_tool(raw_schema={"name": "m", "strict": True, "parameters": {"type": "object"}})
        async def m(self, raw_arguments: dict[str, Any]) -> Any:
            return self, raw_arguments

    agent = Agent()
    assert agent.m.schema == {
        "name": "m",
        "description": "",
        "parameters": {"type": "object"},
        "strict": True,
    }
    assert await agent.m.call("") == (agent, {})
    assert find_function_tools(agent) == [agent.m]


def test_raw_schema_problems_are_rejected():
    with pytest.raises(TypeError, match="raw_schema needs a 'name' string"):
        function_tool(lambda_tool, raw_schema={"description": "x"})
    with pytest.raises(TypeError, match="raw_schema 'parameters' must be an object schema"):
        function_tool(lambda_tool, raw_schema={"name": "x", "parameters": {"type": "string"}})
    with pytest.raises(TypeError, match="put name and description inside it"):
        function_tool(lambda_tool, raw_schema={"name": "x"}, name="y")  # type: ignore[call-overload]

    async def wrong(args: dict[str, Any]) -> None:
        pass

    with pytest.raises(
        TypeError, match=r"takes 'raw_arguments' and optionally a run context, not \['args'\]"
    ):
        function_tool(wrong, raw_schema={"name": "x"})


# --- the type tree's corners ---


def test_type_tree_schemas_without_a_type():
    assert Nullable(inner=AnyType()).schema() == {"anyOf": [{}, {"type": "null"}]}
    either = AnyOf(options=(Primitive(kind="string"), Primitive(kind="null")), description="d")
    assert either.schema() == {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "description": "d",
    }
    assert AnyOf(options=(AnyType(), Nullable(inner=Primitive(kind="integer")))).describe() == (
        "any value or an integer or null"
    )


def test_stop_response_is_an_exception():
    with pytest.raises(StopResponse):
        raise StopResponse
    assert ToolError("nope").message == "nope"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # Python's json reads these; they are not JSON, and no tool wants them.
        ('{"location": "x", "scale": NaN}', "arguments are not valid JSON (NaN is not a number)"),
        (
            '{"location": "x", "scale": Infinity}',
            "arguments are not valid JSON (Infinity is not a number)",
        ),
        (
            '{"location": "x", "scale": -Infinity}',
            "arguments are not valid JSON (-Infinity is not a number)",
        ),
        ('{"location": "x", "days": ' + "9" * 5000 + "}", "arguments are not valid JSON"),
        ('{"location": "x", "extra": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        (
            {"location": "x", "scale": float("nan")},
            "argument 'scale': expected a finite number, got nan",
        ),
        (
            {"location": "x", "scale": float("inf")},
            "argument 'scale': expected a finite number, got inf",
        ),
        (
            '{"location": "x", "scale": 1' + "0" * 400 + "}",
            "argument 'scale': expected a number no larger than 1.8e308",
        ),
    ],
)
def test_hostile_numbers_and_nesting_are_argument_errors_the_llm_can_fix(raw, message):
    @function_tool
    async def forecast(location: str, days: int = 1, scale: float = 1.0) -> None:
        """Forecast."""

    assert message in error_of(forecast, raw)
