"""Finding an agent file's entrypoint: ``path/to/agent.py[:name]``."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

from ._options import WorkerOptions

__all__ = ["load_agent_file", "split_target"]


def split_target(target: str) -> tuple[str, str]:
    """``PATH[:name]`` as ``(PATH, name)``; ``name`` is "" when there is none. A path may hold
    colons itself: the last ``:identifier`` is the name only when it names no file."""
    path, sep, name = target.rpartition(":")
    if sep and path and name.isidentifier() and not Path(target).is_file():
        return path, name
    return target, ""


def load_agent_file(target: str) -> WorkerOptions:
    """Import ``agent.py[:name]`` and return its ``WorkerOptions``.

    ``name`` may be a WorkerOptions object or an entrypoint function. Without it: the file's
    module-level WorkerOptions if it has exactly one, else its ``entrypoint`` function (with
    ``prewarm`` and ``request`` functions if present).
    """
    path_text, name = split_target(target)
    path = Path(path_text)
    if not path.is_file():
        raise SystemExit(f"no such agent file: {path}")
    module_name = f"_tvoice_agent_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    sys.path.insert(0, str(path.parent.resolve()))
    spec.loader.exec_module(module)
    if name:
        if not hasattr(module, name):
            raise SystemExit(f"{path} has no {name!r}")
        found = getattr(module, name)
        return found if isinstance(found, WorkerOptions) else _options(module, found)
    options = [v for v in vars(module).values() if isinstance(v, WorkerOptions)]
    if len(options) == 1:
        return options[0]
    entrypoint = getattr(module, "entrypoint", None)
    if entrypoint is None:
        raise SystemExit(f"{path} has no `entrypoint` function: name one with {path}:<function>")
    return _options(module, entrypoint)


def _options(module: object, entrypoint: object) -> WorkerOptions:
    if not inspect.iscoroutinefunction(entrypoint):
        raise SystemExit(f"the entrypoint {entrypoint!r} must be an `async def` function")
    return WorkerOptions(
        entrypoint_fnc=entrypoint,
        prewarm_fnc=getattr(module, "prewarm", None),
        request_fnc=getattr(module, "request", None),
    )
