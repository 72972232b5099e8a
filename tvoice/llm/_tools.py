"""Function tools: async functions and methods the LLM can call, with checked arguments.

::

    @function_tool
    async def get_weather(location: str, unit: Literal["C", "F"] = "C") -> str:
        \"\"\"Look up the weather.

        Args:
            location: The city, e.g. Paris.
        \"\"\"

    get_weather.schema          # {"name": "get_weather", "description": ..., "parameters": {...}}
    await get_weather.call('{"location": "Paris"}', context=run_ctx)

The schema comes from the signature when the function is decorated, so a type the schema cannot
express is a TypeError at import time, not a surprise in the middle of a call.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import re
import types
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Self, TypeAlias, overload

import attrs

from ._arg_types import MISSING, ArgType, Field, Object
from ._schema import parse_docstring, type_from_annotation, type_from_json_schema, type_hints

__all__ = [
    "FunctionTool",
    "RawFunctionTool",
    "StopResponse",
    "ToolArgumentsError",
    "ToolError",
    "find_function_tools",
    "function_tool",
    "is_run_context_type",
]

AsyncFunction: TypeAlias = Callable[..., Awaitable[Any]]

# What OpenAI accepts as a function name; other providers are no looser.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ToolError(Exception):
    """Raise from a tool to tell the LLM it failed; ``message`` becomes the error output.

    Any other exception from a tool becomes a generic error output, so no internal details leak
    to the model (or, through it, to the user).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ToolArgumentsError(ToolError):
    """The LLM called a tool with arguments that do not fit its schema.

    The message names the tool and every problem at once (joined with "; "), so the LLM can fix
    them all in its next attempt: ``get_weather: argument 'location': expected a string, got 42``.
    """

    def __init__(self, tool_name: str, errors: Iterable[str]) -> None:
        self.tool_name = tool_name
        self.errors = list(errors)
        super().__init__(f"{tool_name}: " + "; ".join(self.errors))


class StopResponse(Exception):
    """Raise from ``Agent.on_user_turn_completed`` to skip replying to this user turn."""


def is_run_context_type(annotation: object) -> bool:
    """Whether a parameter annotated so receives the run context instead of an LLM argument.

    True for a class with a truthy ``__tvoice_run_context__`` attribute, or a generic alias of
    one (``RunContext[MyData]``). The runtime's ``RunContext`` sets it; the tool layer below it
    never imports the runtime.
    """
    # Annotated[X, ...] and X[T] both keep X in __origin__; a Union's origin is not a class.
    while (origin := getattr(annotation, "__origin__", None)) is not None:
        annotation = origin
    marked = getattr(annotation, "__tvoice_run_context__", False)
    return isinstance(annotation, type) and bool(marked)


def _qualname(fn: object) -> str:
    return getattr(fn, "__qualname__", repr(fn))


def _check_async(fn: object) -> None:
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"function_tool needs an async function: make {_qualname(fn)} 'async def'")


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"tool name {name!r} must be 1-64 letters, digits, '_' or '-'")
    return name


def _is_method(fn: Callable[..., Any], params: list[inspect.Parameter]) -> bool:
    # A function written in a class body has the class as the last part of its qualified name
    # before its own ("Agent.lookup", "test.<locals>.Agent.lookup"); that is the only way to
    # tell a method from a function at decoration time, before the class exists.
    if inspect.ismethod(fn):  # already bound: its signature has no self
        return False
    parts = _qualname(fn).split(".")
    in_class = len(parts) >= 2 and parts[-2] != "<locals>"
    return in_class and bool(params) and params[0].kind is not inspect.Parameter.KEYWORD_ONLY


class _Tool:
    """What `FunctionTool` and `RawFunctionTool` share: naming, binding, checking, calling."""

    def __init__(self, fn: AsyncFunction, *, name: str, schema: dict[str, Any]) -> None:
        _check_async(fn)
        self._fn = fn
        self._name = _check_name(name)
        self._schema = schema
        self._instance: object = None
        params = list(inspect.signature(fn).parameters.values())
        self._is_method = _is_method(fn, params)
        self._params = params[1:] if self._is_method else params
        self._hints = type_hints(fn)
        self._context_params = [
            p.name
            for p in self._params
            if is_run_context_type(self._hints.get(p.name, p.annotation))
        ]
        self._arguments: ArgType = Object()
        functools.update_wrapper(self, fn)

    @property
    def name(self) -> str:
        """The name the LLM calls the tool by."""
        return self._name

    @property
    def description(self) -> str:
        """What the tool does, as the LLM reads it."""
        return str(self._schema["description"])

    @property
    def schema(self) -> dict[str, Any]:
        """The OpenAI-style ``{"name", "description", "parameters"}`` dict (a fresh copy)."""
        return copy.deepcopy(self._schema)

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> Self: ...
    def __get__(self, instance: object, owner: type | None = None) -> Self:
        """On an instance, the tool bound to it (like a bound method); on the class, itself."""
        if instance is None or not self._is_method:
            return self
        bound = copy.copy(self)
        bound._instance = instance
        return bound

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Tool):
            return NotImplemented
        return self._fn is other._fn and self._instance is other._instance

    def __hash__(self) -> int:
        return hash((self._fn, id(self._instance)))

    def __repr__(self) -> str:
        bound = "" if self._instance is None else f" bound to {self._instance!r}"
        return f"<{type(self).__name__} {self._name!r}{bound}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly, with no checks (returns its coroutine)."""
        return self._target()(*args, **kwargs)

    def _target(self) -> AsyncFunction:
        if not self._is_method:
            return self._fn
        if self._instance is None:
            raise TypeError(f"tool {self._name!r} is a method: use it from an instance")
        return types.MethodType(self._fn, self._instance)

    def parse_arguments(self, raw: str | dict[str, Any]) -> dict[str, Any]:
        """Check the LLM's arguments (JSON text or a dict) and convert them to Python values.

        Missing optional arguments get their defaults. Raises `ToolArgumentsError` naming every
        problem.
        """
        value: Any = raw
        if isinstance(raw, str):
            try:
                value = json.loads(raw, parse_constant=_refuse_constant) if raw.strip() else {}
            except json.JSONDecodeError as exc:
                problem = f"{exc.msg}: line {exc.lineno} column {exc.colno}"
                raise ToolArgumentsError(
                    self._name, [f"arguments are not valid JSON ({problem})"]
                ) from None
            except RecursionError:
                raise ToolArgumentsError(
                    self._name, ["arguments are not valid JSON (nested too deeply)"]
                ) from None
            except ValueError as exc:  # NaN and the like, an integer of thousands of digits
                raise ToolArgumentsError(
                    self._name, [f"arguments are not valid JSON ({_first_clause(exc)})"]
                ) from None
        if not isinstance(value, dict):
            got = "None" if value is None else type(value).__name__
            raise ToolArgumentsError(self._name, [f"arguments must be a JSON object, got {got}"])
        errors: list[str] = []
        arguments: dict[str, Any] = self._arguments.convert(value, "", errors)
        if errors:
            raise ToolArgumentsError(self._name, errors)
        return arguments

    async def call(self, raw_arguments: str | dict[str, Any], *, context: object = None) -> Any:
        """Check the arguments, then run the tool; ``context`` fills its run-context parameter.

        Raises `ToolArgumentsError` before running anything if the arguments do not fit.
        """
        return await self._invoke(self.parse_arguments(raw_arguments), context)

    async def _invoke(self, arguments: dict[str, Any], context: object) -> Any:
        values = {**arguments, **dict.fromkeys(self._context_params, context)}
        positional = [values.pop(p.name) for p in self._params if p.kind is p.POSITIONAL_ONLY]
        return await self._target()(*positional, **values)


def _refuse_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which JSON does not have: a tool never gets them.
    raise ValueError(f"{name} is not a number")


def _first_clause(exc: ValueError) -> str:
    """The error's text up to its first colon: Python's advice (set_int_max_str_digits) is
    not for the LLM."""
    return str(exc).split(":")[0]


class FunctionTool(_Tool):
    """A tool made by `function_tool` from an async function or method and its signature.

    Use it like the function (calling it runs the function unchecked), or through `call`, which
    checks the LLM's arguments first. Defined in a class, it binds to instances like a method.
    """

    def __init__(
        self, fn: AsyncFunction, *, name: str | None = None, description: str | None = None
    ) -> None:
        super().__init__(fn, name=name or fn.__name__, schema={})
        summary, arg_docs = parse_docstring(fn.__doc__)
        fields = []
        for p in self._params:
            where = f"function_tool {_qualname(fn)}: parameter {p.name!r}"
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"{where}: *args and **kwargs are not supported")
            annotation = self._hints.get(p.name, p.annotation)
            if annotation is p.empty:
                raise TypeError(f"{where}: needs a type annotation")
            if p.name in self._context_params:
                continue
            try:
                arg_type = type_from_annotation(annotation)
            except TypeError as exc:
                raise TypeError(f"{where}: {exc}") from None
            if arg_type.description is None and p.name in arg_docs:
                arg_type = attrs.evolve(arg_type, description=arg_docs[p.name])
            required = p.default is p.empty
            default = MISSING if required else p.default
            fields.append(Field(name=p.name, type=arg_type, required=required, default=default))
        self._arguments = Object(fields=tuple(fields), fill_defaults=True)
        self._schema = {
            "name": self._name,
            "description": summary if description is None else description,
            "parameters": self._arguments.schema(),
        }


class RawFunctionTool(_Tool):
    """A tool whose JSON schema is given as data, for tools built at run time.

    The function receives the checked arguments as one dict, ``raw_arguments``, plus the run
    context if it has a parameter for it.
    """

    def __init__(self, fn: AsyncFunction, *, raw_schema: dict[str, Any]) -> None:
        where = f"function_tool {_qualname(fn)}"
        name = raw_schema.get("name") if isinstance(raw_schema, dict) else None
        if not isinstance(name, str):
            raise TypeError(f"{where}: raw_schema needs a 'name' string")
        parameters = raw_schema.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
            raise TypeError(f"{where}: raw_schema 'parameters' must be an object schema")
        description = str(raw_schema.get("description", ""))
        schema = {**raw_schema, "description": description, "parameters": parameters}
        super().__init__(fn, name=name, schema=copy.deepcopy(schema))
        others = {p.name for p in self._params} - {"raw_arguments", *self._context_params}
        if "raw_arguments" not in {p.name for p in self._params} or others:
            raise TypeError(
                f"{where}: a raw tool takes 'raw_arguments' and optionally a run context, "
                f"not {sorted(others)}"
            )
        self._arguments = type_from_json_schema(parameters)

    async def _invoke(self, arguments: dict[str, Any], context: object) -> Any:
        values = dict.fromkeys(self._context_params, context)
        return await self._target()(raw_arguments=arguments, **values)


@overload
def function_tool(fn: AsyncFunction, /, *, raw_schema: dict[str, Any]) -> RawFunctionTool: ...
@overload
def function_tool(
    fn: None = None, /, *, raw_schema: dict[str, Any]
) -> Callable[[AsyncFunction], RawFunctionTool]: ...
@overload
def function_tool(
    fn: AsyncFunction, /, *, name: str | None = None, description: str | None = None
) -> FunctionTool: ...
@overload
def function_tool(
    fn: None = None, /, *, name: str | None = None, description: str | None = None
) -> Callable[[AsyncFunction], FunctionTool]: ...
def function_tool(
    fn: AsyncFunction | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    raw_schema: dict[str, Any] | None = None,
) -> Any:
    """Turn an async function or method into a tool the LLM can call.

    Use as ``@function_tool``, ``@function_tool()`` or ``@function_tool(name=, description=)``.
    The name defaults to the function's, the description to its docstring's first paragraph,
    and each argument's description comes from ``Annotated[T, "..."]`` or the docstring's
    ``Args:`` section. ``function_tool(fn, raw_schema={"name", "description", "parameters"})``
    makes a `RawFunctionTool` from a schema given as data. A parameter annotated with the run
    context type receives the context rather than an argument from the LLM.
    """
    if raw_schema is not None and (name is not None or description is not None):
        raise TypeError("function_tool: with raw_schema, put name and description inside it")

    def decorate(fn: AsyncFunction) -> FunctionTool | RawFunctionTool:
        if raw_schema is not None:
            return RawFunctionTool(fn, raw_schema=raw_schema)
        return FunctionTool(fn, name=name, description=description)

    return decorate if fn is None else decorate(fn)


def find_function_tools(obj: object) -> list[FunctionTool | RawFunctionTool]:
    """The tools defined on ``obj``'s class and its bases, bound to ``obj``, in definition order.

    A subclass attribute of the same name wins (keeping the base's position); overriding a tool
    with something that is not a tool removes it.
    """
    found: dict[str, FunctionTool | RawFunctionTool] = {}
    for cls in reversed(type(obj).__mro__):
        for attribute, value in vars(cls).items():
            if isinstance(value, FunctionTool | RawFunctionTool):
                found[attribute] = value
            else:
                found.pop(attribute, None)
    return [tool.__get__(obj, type(obj)) for tool in found.values()]
