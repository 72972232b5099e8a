"""llama.cpp failures, translated into tvoice's error tree in one place."""

from __future__ import annotations

from tvoice import APIConnectionError, APIError

__all__ = ["generation_error", "model_error"]


def model_error(path: object, error: BaseException) -> APIError:
    """The model file could not be loaded."""
    return APIError(f"cannot load the llama.cpp model {path}: {error}", retryable=False)


def generation_error(error: BaseException) -> APIError:
    """Generation broke off (retryable: the next request may work)."""
    if isinstance(error, ValueError):
        # llama.cpp raises ValueError for a prompt longer than the context window.
        return APIError(f"llama.cpp rejected the request: {error}", retryable=False)
    return APIConnectionError(f"llama.cpp generation failed: {error}")
