"""The nodes of a tool's argument type tree: each writes its JSON schema and checks values.

One tree serves both directions. Built from a tool's signature it writes the schema the LLM sees
and converts checked values to Python ones (enum members, attrs instances); built from a raw JSON
schema it only checks (see `tvoice.llm._schema`). Checks never stop at the first problem: every
node appends to one error list, so the LLM learns everything it got wrong in a single reply.
"""

from __future__ import annotations

import abc
import contextlib
import enum
import math
from collections.abc import Callable
from typing import Any, Final, Literal

import attrs

__all__ = [
    "JSON_KINDS",
    "MISSING",
    "AnyOf",
    "AnyType",
    "ArgType",
    "Array",
    "Choice",
    "Field",
    "JsonKind",
    "Nullable",
    "Object",
    "Primitive",
]


class _Missing(enum.Enum):
    MISSING = enum.auto()


MISSING: Final = _Missing.MISSING
"""Marks a field with no default."""

JsonKind = Literal["string", "integer", "number", "boolean", "null"]
JSON_KINDS: Final[tuple[JsonKind, ...]] = ("string", "integer", "number", "boolean", "null")
"""The scalar ``type`` names of JSON schema, in the order a schema lists them."""
_ARTICLES: dict[str, str] = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _mismatch(path: str, expected: str, value: Any, errors: list[str]) -> None:
    errors.append(f"argument '{path}': expected {expected}, got {_show(value)}")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "null" if value is None else "other"


def _json_value(value: Any) -> Any:
    """``value`` as JSON data, or ValueError; used for the ``default`` keyword of a schema."""
    if isinstance(value, enum.Enum):
        return _json_value(value.value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _json_value(item) for key, item in value.items()}
    raise ValueError(f"{value!r} is not JSON data")


@attrs.frozen(kw_only=True)
class ArgType(abc.ABC):
    """A node of the type tree: writes its schema, checks and converts one value."""

    description: str | None = None

    def schema(self) -> dict[str, Any]:
        """The JSON schema of this type."""
        out = self._schema()
        if self.description:
            out["description"] = self.description
        return out

    @abc.abstractmethod
    def _schema(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def describe(self) -> str:
        """What this type expects, in words, for error messages ("a string")."""

    @abc.abstractmethod
    def convert(self, value: Any, path: str, errors: list[str]) -> Any:
        """The checked Python value; problems are appended to ``errors``, naming ``path``."""


@attrs.frozen(kw_only=True)
class AnyType(ArgType):
    """Anything goes: a raw schema that does not constrain the value."""

    def _schema(self) -> dict[str, Any]:
        return {}

    def describe(self) -> str:
        return "any value"

    def convert(self, value: Any, path: str, errors: list[str]) -> Any:
        return value


@attrs.frozen(kw_only=True)
class Primitive(ArgType):
    """A JSON scalar. int accepts integral floats; number accepts ints; nothing parses strings."""

    kind: JsonKind

    def _schema(self) -> dict[str, Any]:
        return {"type": self.kind}

    def describe(self) -> str:
        return _ARTICLES[self.kind]

    def convert(self, value: Any, path: str, errors: list[str]) -> Any:
        kind = _json_kind(value)
        if kind == "number" and not math.isfinite(value):
            # JSON has no NaN or Infinity; a dict of arguments may still hold them.
            _mismatch(path, "a finite number", value, errors)
            return value
        if kind == self.kind:
            return value
        # LLMs write 3.0 for 3 and 3 for 3.0; both are the same number. A bool is never a
        # number, although Python says True == 1.
        if self.kind == "number" and kind == "integer":
            try:
                return float(value)
            except OverflowError:
                _mismatch(path, "a number no larger than 1.8e308", value, errors)
                return value
        if self.kind == "integer" and kind == "number" and value.is_integer():
            return int(value)
        _mismatch(path, self.describe(), value, errors)
        return value


@attrs.frozen(kw_only=True)
class Choice(ArgType):
    """One of fixed values: a ``Literal`` or an ``enum.Enum``, as (JSON value, Python value)."""

    options: tuple[tuple[Any, Any], ...]

    def _schema(self) -> dict[str, Any]:
        values = [json_value for json_value, _ in self.options]
        kinds = sorted({_json_kind(value) for value in values}, key=JSON_KINDS.index)
        return {"type": kinds[0] if len(kinds) == 1 else kinds, "enum": values}

    def describe(self) -> str:
        return "one of " + ", ".join(_show(json_value) for json_value, _ in self.options)

    def convert(self, value: Any, path: str, errors: list[str]) -> Any:
        for json_value, python_value in self.options:
            if json_value == value and isinstance(json_value, bool) == isinstance(value, bool):
                return python_value
        errors.append(f"argument '{path}': must be {self.describe()}, got {_show(value)}")
        return value


@attrs.frozen(kw_only=True)
class Nullable(ArgType):
    """``T | None``: written as ``"type": [T, "null"]`` (and ``null`` added to an ``enum``)."""

    inner: ArgType

    def _schema(self) -> dict[str, Any]:
        out = self.inner.schema()
        kind = out.get("type")
        if kind is None:
            return {"anyOf": [out, {"type": "null"}]}
        out["type"] = [*kind, "null"] if isinstance(kind, list) else [kind, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        return out

    def describe(self) -> str:
        return f"{self.inner.describe()} or null"

    def convert(self, value: Any, path: str, errors: list[str]) -> Any:
        return None if value is None else self.inner.convert(value, path, errors)


@attrs.frozen(kw_only=True)
class AnyOf(ArgType):
    """The first of several types that accepts the value (raw schemas' ``anyOf`` and type lists)."""

    options: tuple[ArgType, ...]

    def _schema(self) -> dict[str, Any]:
        return {"anyOf": [option.schema() for option in self.options]}

    def describe(self) -> str:
        return " or ".join(option.describe() for option in self.options)

    def convert(self, value: Any, path: str, errors: list[str]) -> Any:
        for option in self.options:
            trial: list[str] = []
            result = option.convert(value, path, trial)
            if not trial:
                return result
        _mismatch(path, self.describe(), value, errors)
        return value


@attrs.frozen(kw_only=True)
class Array(ArgType):
    """``list[T]`` or ``Sequence[T]``: a JSON array, converted to a list."""

    items: ArgType

    def _schema(self) -> dict[str, Any]:
        return {"type": "array", "items": self.items.schema()}

    def describe(self) -> str:
        return "an array"

    def convert(self, value: Any, path: str, errors: list[str]) -> Any:
        if not isinstance(value, list | tuple):
            _mismatch(path, self.describe(), value, errors)
            return value
        return [self.items.convert(item, f"{path}[{i}]", errors) for i, item in enumerate(value)]


@attrs.frozen(kw_only=True)
class Field:
    """One property of an `Object`."""

    name: str
    type: ArgType
    required: bool
    default: Any = MISSING

    def schema(self) -> dict[str, Any]:
        """The property's schema, with its default when that is JSON data."""
        out = self.type.schema()
        if self.default is not MISSING:
            # A default that is not JSON data is still filled in at call time; the LLM is just
            # not told what it is.
            with contextlib.suppress(ValueError):
                out["default"] = _json_value(self.default)
        return out


@attrs.frozen(kw_only=True)
class Object(ArgType):
    """A JSON object: named ``fields``, and ``extra`` for any other key (None forbids them).

    ``build`` turns the checked dict into the Python value (an attrs instance); without it the
    value stays a dict. ``fill_defaults`` puts defaults in for missing optional fields.
    """

    fields: tuple[Field, ...] = ()
    extra: ArgType | None = None
    build: Callable[..., Any] | None = None
    fill_defaults: bool = False

    def _schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "object"}
        if self.fields or self.extra is None:  # a plain dict[str, T] has no properties
            out["properties"] = {field.name: field.schema() for field in self.fields}
            out["required"] = [field.name for field in self.fields if field.required]
        out["additionalProperties"] = False if self.extra is None else self.extra.schema()
        return out

    def describe(self) -> str:
        return "an object"

    def convert(self, value: Any, path: str, errors: list[str]) -> Any:
        if not isinstance(value, dict):
            _mismatch(path, self.describe(), value, errors)
            return value
        errors_before = len(errors)
        out: dict[str, Any] = {}
        for field in self.fields:
            where = f"{path}.{field.name}" if path else field.name
            if field.name in value:
                out[field.name] = field.type.convert(value[field.name], where, errors)
            elif field.required:
                errors.append(f"missing required argument '{where}'")
            elif self.fill_defaults and field.default is not MISSING:
                out[field.name] = field.default
        names = {field.name for field in self.fields}
        for key, item in value.items():
            if key in names:
                continue
            if self.extra is None:
                where = f"{path}.{key}" if path else str(key)
                errors.append(f"unexpected argument '{where}'")
            else:
                where = f"{path}[{key!r}]" if path else str(key)
                out[key] = self.extra.convert(item, where, errors)
        if self.build is None or len(errors) > errors_before:
            return out
        try:
            return self.build(**out)
        except (TypeError, ValueError) as exc:  # the class's own validators said no
            errors.append(f"argument '{path}': {exc}")
            return out
