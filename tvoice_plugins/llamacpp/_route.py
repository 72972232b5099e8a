"""Choosing whether to call a tool before replying, under a grammar.

A model as small as SmolLM2-135M almost never starts a ``<tool_call>`` of its own accord: asked
"What is the weather in Paris?" with ``get_weather`` offered, it answers from what it knows. So
with ``tool_choice="auto"``, the reply to a user's message is decided in a step of its own: a
short prompt shows the tools and a few example requests as turns of a chat, and a grammar lets
the model answer only a tool's name or ``none``. A tool's name then makes a call under the
tool's JSON schema; ``none`` a plain answer.

The examples are what makes it work: a tool's description may list requests it answers in
double quotes after its first sentence (``Look up the weather. Examples: "Will it rain in
Dublin?"``), and requests for no tool come built in. On 20 varied questions (10 about the
weather), SmolLM2 chose right 17 times with three such examples and 13 times without any;
asked aloud through Whisper tiny.en, which turns some questions into statements ("Is it windy
in Chicago?" heard as "It's windy in Chicago."), 13 times (``bench/bench_tool_choice.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from tvoice.llm import ChatContext, ChatMessage, Tool

from ._format import Segment, chat_turn

__all__ = ["NO_TOOL", "request_examples", "routing_grammar", "routing_prompt"]

NO_TOOL = "none"
# Requests that call for no tool, shown between each tool's own examples.
_NO_TOOL_EXAMPLES = ("Sing me a song.", "Where is the Louvre?", "How do I reset my password?")
_QUOTED = re.compile(r'"([^"]{3,200})"')


def request_examples(description: str) -> list[str]:
    """The requests a tool's description quotes in double quotes."""
    return [m.strip() for m in _QUOTED.findall(description) if m.strip()]


def routing_prompt(chat_ctx: ChatContext, tools: Sequence[Tool]) -> list[Segment] | None:
    """The prompt that asks which tool answers the last message, or None when the chat does
    not end with a user's message (after a tool's output, the reply is the answer)."""
    last = chat_ctx.items[-1] if chat_ctx.items else None
    if not (isinstance(last, ChatMessage) and last.role == "user" and last.text_content):
        return None
    lines = ["You choose the tool for the user's message, or none.", "Tools:"]
    examples: list[tuple[str, str]] = []
    for tool in tools:
        description = str(tool.schema.get("description", ""))
        lines.append(f"{tool.name}: {_first_sentence(description)}")
        examples += [(request, tool.name) for request in request_examples(description)]
    segments: list[Segment] = [*chat_turn("system", "\n".join(lines))]
    nothing = [(request, NO_TOOL) for request in _NO_TOOL_EXAMPLES]
    for i in range(max(len(examples), len(nothing))):
        for request, answer in examples[i : i + 1] + nothing[i : i + 1]:
            segments += chat_turn("user", request) + chat_turn("assistant", answer)
    segments += chat_turn("user", last.text_content)
    segments.append(("<|im_start|>assistant\n", True))
    return segments


def routing_grammar(tools: Sequence[Tool]) -> str:
    """A grammar (llguidance's lark) whose only sentences are the tools' names and ``none``."""
    names = [json.dumps(name) for name in (*[t.name for t in tools], NO_TOOL)]
    return "%llguidance {}\nstart: " + " | ".join(names) + "\n"


def _first_sentence(description: str) -> str:
    first = description.split('"')[0].split(". ")[0].strip().rstrip(".")
    return f"{first}." if first else "(no description)."
