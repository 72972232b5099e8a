"""A call's opening, learnt from the model once and then given to it instead of generated.

A call to one tool, written under its schema, opens with text that only the model's whitespace
can vary: ``{"name": "get_weather", "arguments":``. SmolLM2 spends about 15 decode steps on it
(it writes ``{\\n  "name": "get_weather",\\n  "arguments":``), half of a call's 30. So the
first call the model writes for a tool is asked for its token ids, and its opening is kept: later
calls to that tool start with those tokens in the prompt (evaluated in one batch, cheaper than
generating them one by one) and a grammar lets the model write only the arguments and the
closing brace.

The opening is kept as the model's own tokens, not as text: tokenized anew, the same text
splits differently, and SmolLM2 then writes nonsense arguments. Measured on 12 spoken-style
weather questions with the example assistant's tool (2 cores): under the whole schema the city
was right 8 times, median 1088 ms per call (28-33 tokens generated); with the learnt opening 10
times, median 867 ms (13-16 tokens); with the schema's separators forced (``", "``, ``": "``),
never.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import attrs

from tvoice.llm import Tool

__all__ = ["Opening", "arguments_grammar", "learn_opening"]

_OPENING = re.compile(r'\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"arguments"\s*:')
# An opening is short: a reply that has not shown one by then never will.
_LONGEST = 200


@attrs.frozen
class Opening:
    """A call's opening as the model wrote it: its text and its token ids."""

    text: str
    tokens: tuple[int, ...]


def learn_opening(pieces: Sequence[tuple[str, tuple[int, ...]]], name: str) -> Opening | None:
    """The opening of a call to ``name`` that the model wrote as ``pieces`` (each piece's text
    and token ids), ending where a piece ends right after ``"arguments":``; None if the call
    does not open so (another tool, another key order, or an opening that ends inside a
    token)."""
    text, tokens = "", list[int]()
    for piece, ids in pieces:
        text += piece
        tokens += ids
        match = _OPENING.fullmatch(text)
        if match is not None:
            return Opening(text, tuple(tokens)) if json.loads(match[1]) == name else None
        if _OPENING.match(text) is not None or len(text) > _LONGEST:
            return None  # the opening ended inside this piece, or never came
    return None


def arguments_grammar(tool: Tool) -> str:
    """The rest of a call after its opening (llguidance's lark): the arguments under the
    tool's JSON schema, then the call's closing brace."""
    schema = json.dumps(tool.schema["parameters"])
    return f'%llguidance {{}}\nstart: arguments /[ \\t\\n]*/ "}}"\narguments: %json {schema}\n'
