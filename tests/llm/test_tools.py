import dataclasses
import enum
from collections.abc import Sequence
from typing import Annotated, Any, Generic, Literal, NewType, NotRequired, Optional, TypedDict, TypeVar

import attrs
import pytest

from tvoice.llm._arg_types import AnyOf, AnyType, Nullable, Primitive
from tvoice.llm._tools import (
    FunctionTool,
    RawFunctionTool,
    StopResponse,
    ToolArgumentsError,
    ToolError,
    find_function_tools,
    function_tool,
    is_run_context_type,
)

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


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0
    label: str = dataclasses.field(default_factory=str)


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


def test_nullable_types_and_defaults():
    @function_tool
    async def f(
        a: str | None,
        b: Optional[int] = None,  # noqa: UP045 - both spellings are supported
        c: list[str] | None = None,
        d: Size | None = Size.SMALL,
        e: float = 1.5,
        f: tuple[int, int] = (1, 2),  # type: ignore[assignment]
        g: str = "x",
    ) -> None:
        pass

    # tuple is not a supported type; use a supported one with a non-JSON default instead.
    del f


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
        (set[int], "parameter 'x': unsupported type set[int]"),
        (int | str, "parameter 'x': unsupported type int | str: the only union allowed is T | N"),
        (list, "parameter 'x': list needs its item type, e.g. list[str]"),
        (dict[int, str], "parameter 'x': unsupported type dict[int, str]: JSON object keys are"),
        (Literal[1.5j], "parameter 'x': unsupported type typing.Literal[1.5j]: 1.5j is not a"),
        (Any, "parameter 'x': unsupported type typing.Any"),
        (Node, "parameter 'x': Node.child: recursive type Node is not supported"),
        (list[Point | set[int]], "parameter 'x': unsupported type tests.llm.test_tools.Point |"),
    ],
)
def test_unsupported_annotations_name_the_parameter(annotation, message):
    async def f(x) -> None:  # noqa: ANN001
        pass

    f.__annotations__["x"] = annotation
    with pytest.raises(TypeError) as info:
        function_tool(f)
    assert f"function_tool {f.__qualname__}: {message}" in str(info.value)


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
    @dataclasses.dataclass
    class Bad:
        pass

    Bad.__dataclass_fields__["x"] = dataclasses.field()
    Bad.__dataclass_fields__["x"].name = "x"
    Bad.__dataclass_fields__["x"]._field_type = dataclasses._FIELD  # type: ignore[attr-defined]

    async def f(x: Bad) -> None:
        pass

    with pytest.raises(TypeError, match=r"Bad\.x: needs a type annotation"):
        function_tool(f)


def test_signature_problems_are_rejected():
    async def no_annotation(x) -> None:  # noqa: ANN001
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
