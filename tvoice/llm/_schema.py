"""Building tool argument types: from Python annotations, from raw JSON schemas, and docstrings.

`type_from_annotation` supports ``str, int, float, bool``, ``Literal``, ``enum.Enum``,
``list[T]``/``Sequence[T]``, ``dict[str, T]``, ``T | None``, ``Annotated[T, "description"]`` and
nested attrs classes, dataclasses and TypedDicts; anything else is a TypeError naming the type.
`type_from_json_schema` reads the same subset of JSON schema and ignores keywords it does not know,
as JSON schema itself does.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import inspect
import re
import types
import typing
from typing import Annotated, Any, Literal, NotRequired, Required, Union

import attrs

from ._arg_types import (
    JSON_KINDS,
    MISSING,
    AnyOf,
    AnyType,
    ArgType,
    Array,
    Choice,
    Field,
    JsonKind,
    Nullable,
    Object,
    Primitive,
)

__all__ = ["parse_docstring", "type_from_annotation", "type_from_json_schema", "type_hints"]

_PRIMITIVES: dict[type, JsonKind] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
}


def type_hints(obj: Any) -> dict[str, Any]:
    """The resolved annotations of a function or class, extras kept; TypeError if unresolvable."""
    try:
        return typing.get_type_hints(obj, include_extras=True)
    except Exception as exc:  # NameError for a forward reference, TypeError for odd objects
        raise TypeError(f"cannot resolve the type hints of {obj.__qualname__} ({exc})") from None


def _annotated_description(metadata: tuple[Any, ...]) -> str | None:
    for item in metadata:
        if isinstance(item, str):
            return item
        description = getattr(item, "description", None)  # pydantic's Field(description=...)
        if isinstance(description, str):
            return description
    return None


def type_from_annotation(annotation: Any, *, _seen: frozenset[Any] = frozenset()) -> ArgType:
    """The `ArgType` for a Python annotation; TypeError names what is not supported."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        inner = type_from_annotation(annotation.__origin__, _seen=_seen)
        description = _annotated_description(annotation.__metadata__)
        return inner if description is None else attrs.evolve(inner, description=description)
    if isinstance(annotation, typing.NewType):
        return type_from_annotation(annotation.__supertype__, _seen=_seen)
    if origin is Union or origin is types.UnionType:
        others = [arg for arg in args if arg is not type(None)]
        if len(others) != 1 or len(args) != 2:
            raise TypeError(f"unsupported type {annotation!r}: the only union allowed is T | None")
        inner = type_from_annotation(others[0], _seen=_seen)
        # Lift Annotated[T, "..."] | None's description, so it reads as the whole type's.
        bare = attrs.evolve(inner, description=None)
        return Nullable(inner=bare, description=inner.description)
    if origin is Literal:
        return _literal(annotation, args)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _literal(annotation, tuple(annotation))
    kind = _PRIMITIVES.get(annotation) if isinstance(annotation, type) else None
    if kind is not None:
        return Primitive(kind=kind)
    if origin in (list, collections.abc.Sequence) and args:
        return Array(items=type_from_annotation(args[0], _seen=_seen))
    if origin in (dict, collections.abc.Mapping) and len(args) == 2:
        if args[0] is not str:
            raise TypeError(f"unsupported type {annotation!r}: JSON object keys are strings")
        return Object(extra=type_from_annotation(args[1], _seen=_seen))
    if annotation in (list, dict, collections.abc.Sequence, collections.abc.Mapping):
        raise TypeError(
            f"{annotation.__name__} needs its item type, e.g. {annotation.__name__}[str]"
        )
    if _is_record_class(annotation):
        if annotation in _seen:
            raise TypeError(f"recursive type {annotation.__qualname__} is not supported")
        return _class_object(annotation, _seen | {annotation})
    raise TypeError(f"unsupported type {annotation!r}")


def _is_record_class(annotation: Any) -> bool:
    return isinstance(annotation, type) and (
        attrs.has(annotation)
        or dataclasses.is_dataclass(annotation)
        or typing.is_typeddict(annotation)
    )


def _literal(annotation: Any, values: tuple[Any, ...]) -> ArgType:
    options = []
    for value in values:
        json_value = value.value if isinstance(value, enum.Enum) else value
        if not isinstance(json_value, str | int | float | bool) and json_value is not None:
            raise TypeError(f"unsupported type {annotation!r}: {value!r} is not a JSON value")
        options.append((json_value, value))
    non_null = tuple(option for option in options if option[0] is not None)
    choice = Choice(options=non_null)
    return choice if len(non_null) == len(options) else Nullable(inner=choice)


_FACTORY: type = type(attrs.Factory(list))


class _Spec(typing.NamedTuple):
    name: str  # the JSON key (an attrs field's init alias)
    attribute: str  # the name in the class, for error messages
    annotation: Any
    required: bool
    default: Any


def _attrs_specs(cls: type, hints: dict[str, Any]) -> list[_Spec]:
    specs = []
    for a in attrs.fields(cls):
        if a.init:
            required = a.default is attrs.NOTHING
            # A factory default is made per instance by the class; the schema cannot show it.
            factory = isinstance(a.default, _FACTORY)
            default = MISSING if required or factory else a.default
            specs.append(_Spec(a.alias, a.name, hints.get(a.name), required, default))
    return specs


def _dataclass_specs(cls: type, hints: dict[str, Any]) -> list[_Spec]:
    specs = []
    for f in dataclasses.fields(cls):
        if f.init:
            no_factory = f.default_factory is dataclasses.MISSING
            required = f.default is dataclasses.MISSING and no_factory
            default = MISSING if f.default is dataclasses.MISSING else f.default
            specs.append(_Spec(f.name, f.name, hints.get(f.name), required, default))
    return specs


def _typeddict_specs(cls: type, hints: dict[str, Any]) -> list[_Spec]:
    specs = []
    for name, hint in hints.items():
        required = name in cls.__required_keys__  # type: ignore[attr-defined]
        if typing.get_origin(hint) in (Required, NotRequired):
            required, hint = typing.get_origin(hint) is Required, typing.get_args(hint)[0]
        specs.append(_Spec(name, name, hint, required, MISSING))
    return specs


def _class_object(cls: type, seen: frozenset[Any]) -> Object:
    """An attrs class, a dataclass or a TypedDict, as a nested JSON object."""
    hints = type_hints(cls)
    if attrs.has(cls):
        specs = _attrs_specs(cls, hints)
    elif dataclasses.is_dataclass(cls):
        specs = _dataclass_specs(cls, hints)
    else:
        specs = _typeddict_specs(cls, hints)
    fields = []
    for spec in specs:
        try:
            if spec.annotation is None:
                raise TypeError("needs a type annotation")
            arg_type = type_from_annotation(spec.annotation, _seen=seen)
        except TypeError as exc:
            raise TypeError(f"{cls.__qualname__}.{spec.attribute}: {exc}") from None
        fields.append(
            Field(name=spec.name, type=arg_type, required=spec.required, default=spec.default)
        )
    return Object(fields=tuple(fields), build=None if typing.is_typeddict(cls) else cls)


def type_from_json_schema(schema: Any) -> ArgType:
    """A checking-only `ArgType` for a JSON schema; keywords it does not know are ignored."""
    if not isinstance(schema, dict):
        return AnyType()
    if isinstance(schema.get("enum"), list):
        return Choice(options=tuple((value, value) for value in schema["enum"]))
    if "const" in schema:
        return Choice(options=((schema["const"], schema["const"]),))
    for keyword in ("anyOf", "oneOf"):
        if isinstance(schema.get(keyword), list):
            return AnyOf(options=tuple(type_from_json_schema(s) for s in schema[keyword]))
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    options = [_type_of_kind(k, schema) for k in kinds]
    non_null = [option for k, option in zip(kinds, options, strict=True) if k != "null"]
    if len(options) == 1:
        return options[0]
    if len(options) == 2 and len(non_null) == 1:
        return Nullable(inner=non_null[0])
    return AnyOf(options=tuple(options))


def _type_of_kind(kind: Any, schema: dict[str, Any]) -> ArgType:
    if kind in JSON_KINDS:
        return Primitive(kind=kind)
    if kind == "array":
        return Array(items=type_from_json_schema(schema.get("items")))
    if kind != "object":
        return AnyType()
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = schema.get("required")
    required = required if isinstance(required, list) else []
    fields = tuple(
        Field(
            name=name,
            type=type_from_json_schema(sub),
            required=name in required,
            default=sub.get("default", MISSING) if isinstance(sub, dict) else MISSING,
        )
        for name, sub in properties.items()
    )
    additional = schema.get("additionalProperties", True)
    extra = None if additional is False else type_from_json_schema(additional)
    return Object(fields=fields, extra=extra, fill_defaults=True)


_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns?|Yields?|Raises|Examples?|Notes?):$")
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The summary (first paragraph) of a docstring, and its Google-style ``Args:`` entries."""
    lines = inspect.cleandoc(doc or "").splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line.strip()):
            break
        summary.append(line.strip())
    arg_docs: dict[str, str] = {}
    start = next((i for i, line in enumerate(lines) if line.strip() in _ARGS_HEADERS), None)
    if start is None:
        return " ".join(summary), arg_docs
    header_indent = _indent(lines[start])
    entry_indent: int | None = None
    current: str | None = None
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        indent = _indent(line)
        if indent <= header_indent:
            break  # the next section
        entry_indent = indent if entry_indent is None else entry_indent
        match = _ARG_LINE.match(line.strip()) if indent <= entry_indent else None
        if match:
            current = match[1]
            arg_docs[current] = match[2].strip()
        elif current is not None:  # a continuation line
            arg_docs[current] = f"{arg_docs[current]} {line.strip()}".strip()
    return " ".join(summary), arg_docs


_ARGS_HEADERS = ("Args:", "Arguments:", "Parameters:")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())
