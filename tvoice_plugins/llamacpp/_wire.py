"""llama.cpp's own server API, as the llamacpp plugin speaks it.

::

    GET  /props        -> {"default_generation_settings": {"n_ctx": ...}, "total_slots", ...}
    POST /tokenize     {"content", "add_special", "parse_special"} -> {"tokens": [...]}
    POST /completion   {"prompt": [token ids], "stream": true, "n_predict", "temperature",
                        "top_p", "repeat_penalty", "seed", "json_schema", "logit_bias", ...}
                       -> server-sent events, one ``data: {...}`` line each:
                          {"content": "...", "stop": false}                  a piece of text
                          {"content": "", "stop": true, "tokens_predicted",
                           "tokens_evaluated", "stop_type", ...}             the end
                          {"error": {"code", "message", "type"}}             a failure

The prompt goes as token ids: text from the chat is tokenized with ``parse_special: false``,
so a user who types ``<|im_end|>`` cannot forge a turn, and only ChatML markup is parsed for
special tokens.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import attrs
import httpx

from tvoice import APIConnectionError

from ._errors import status_error, stream_error

__all__ = ["Completion", "ServerFacts", "server_facts", "stream_completion", "tokenize"]

# ChatML's turn opener: a reply must not start a new turn, and SmolLM2 does not count it among
# its end-of-generation tokens, so it is banned from replies.
TURN_START = "<|im_start|>"


@attrs.frozen
class ServerFacts:
    """What the llamacpp plugin needs to know of a server: its context window, and the token
    that opens a ChatML turn (None when the model has no such single token), and how many
    slots it serves requests in (each with ``n_ctx``)."""

    n_ctx: int
    turn_start: int | None
    slots: int = 1


@attrs.define
class Completion:
    """A reply so far: the text pieces arrive through :func:`stream_completion`; the token
    counts are final once it has ended."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


async def server_facts(client: httpx.AsyncClient) -> ServerFacts:
    """Ask the server at ``client``'s base URL for its context window and turn token."""
    props = await _get_json(client, "/props")
    settings = props.get("default_generation_settings") if isinstance(props, dict) else None
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    if not isinstance(n_ctx, int) or n_ctx <= 0:
        raise APIConnectionError(f"llama.cpp server: /props has no context size ({n_ctx!r})")
    opener = await tokenize(client, TURN_START, special=True)
    slots = props.get("total_slots")
    return ServerFacts(
        n_ctx=n_ctx,
        turn_start=opener[0] if len(opener) == 1 else None,
        slots=slots if isinstance(slots, int) and slots > 0 else 1,
    )


async def tokenize(client: httpx.AsyncClient, text: str, *, special: bool) -> list[int]:
    """``text`` as token ids; ``special``: markup whose special tokens count as such."""
    body = {"content": text, "add_special": False, "parse_special": special}
    data = await _post_json(client, "/tokenize", body)
    tokens = data.get("tokens") if isinstance(data, dict) else None
    if not (isinstance(tokens, list) and all(isinstance(t, int) for t in tokens)):
        raise APIConnectionError("llama.cpp server: /tokenize answered without token ids")
    return tokens


async def stream_completion(
    client: httpx.AsyncClient, request: dict[str, Any], completion: Completion
) -> AsyncGenerator[str]:
    """The reply to ``request`` (a /completion body), piece by piece as it is generated.

    Leaving the iteration early closes the response, and the server stops generating at its
    next token. A stream that ends before its last event, or that carries something other than
    JSON events, raises ``APIConnectionError``.
    """
    async with client.stream("POST", "/completion", json={**request, "stream": True}) as response:
        if response.status_code != 200:
            raise status_error(response.status_code, await response.aread())
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue  # blank separators and keep-alive comments
            event = _event(line[6:])
            if "error" in event:
                raise stream_error(event["error"])
            content = event.get("content")
            if isinstance(content, str) and content:
                yield content
            if event.get("stop") is True:
                completion.prompt_tokens = _count(event, "tokens_evaluated")
                completion.completion_tokens = _count(event, "tokens_predicted")
                return
    raise APIConnectionError("llama.cpp server: the reply broke off before its end")


def _event(data: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        raise APIConnectionError(f"llama.cpp server: not a JSON event: {data[:200]!r}")
    return event


def _count(event: dict[str, Any], key: str) -> int:
    value = event.get(key)
    if not isinstance(value, int) or value < 0:
        raise APIConnectionError(f"llama.cpp server: the last event has no {key}")
    return value


async def _get_json(client: httpx.AsyncClient, path: str) -> Any:
    response = await client.get(path)
    if response.status_code != 200:
        raise status_error(response.status_code, response.content)
    return _json(response)


async def _post_json(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
    response = await client.post(path, json=body)
    if response.status_code != 200:
        raise status_error(response.status_code, response.content)
    return _json(response)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise APIConnectionError(
            f"llama.cpp server: {response.request.url.path} did not answer JSON"
        ) from None
