"""How espeak-ng's failures become tvoice errors: the one place they are translated.

A missing binary or a bad voice stays that way, so none of these is retryable: a
``tts.FallbackAdapter`` moves on to the next TTS at once.
"""

from __future__ import annotations

from tvoice import APIConnectionError, APIError

__all__ = ["bad_output", "not_found", "process_failed", "start_failed"]


def not_found(executable: str) -> APIConnectionError:
    """The executable is not installed (or not on ``PATH``)."""
    return APIConnectionError(
        f"espeak-ng not found: apt-get install espeak-ng (looked for {executable!r})",
        retryable=False,
    )


def start_failed(executable: str, error: OSError) -> APIConnectionError:
    """The executable exists but could not be started (permissions, not a program...)."""
    return APIConnectionError(f"could not start {executable!r}: {error}", retryable=False)


def process_failed(returncode: int, stderr: bytes) -> APIError:
    """espeak-ng exited with an error; its stderr says why (an unknown voice, usually)."""
    said = stderr.decode("utf-8", "replace").strip() or "no message on stderr"
    return APIError(f"espeak-ng exited with status {returncode}: {said}", retryable=False)


def bad_output(reason: str) -> APIError:
    """espeak-ng's stdout is not the 16-bit PCM WAV stream it should be."""
    return APIError(f"espeak-ng gave unexpected output: {reason}", retryable=False)
