"""One inference server per machine, shared by every process that needs it.

The first process that asks (:func:`local_models_url`, in a worker's prewarm or the console)
starts ``tvoice models serve`` as a process of its own; every later one finds it through a state
file and reuses it, so the models are loaded once per machine, not once per job process. Each
process that uses the server holds a shared lock on a file for as long as it lives; the server
stops by itself once nobody has held it for a while. The kernel drops a process's locks when it
dies, so a crashed job never keeps the server alive, and a crashed server is started again by
the next process that asks.

::

    runtime dir ($XDG_RUNTIME_DIR or the temp dir)/tvoice-<uid>/
        models.json    {"url": "http://127.0.0.1:<port>/v1", "pid": ...}, written when serving
        models.users   shared-locked by every process using the server
        models.start   exclusive-locked while one process looks for or starts the server
        models.log     the server's log
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import http.client
import json
import logging
import os
import selectors
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import trio

from ._server import InferenceServer

__all__ = ["local_models_url", "runtime_dir", "serve_shared"]

logger = logging.getLogger("tvoice.inference")

_ANNOUNCEMENT = "serving the models on "

# This process's shared locks on models.users (one per folder), held until it exits.
_user_locks: dict[Path, IO[bytes]] = {}
# The servers this process started. They outlive it by design; holding on to them keeps Python
# from warning that a child is still running when a Popen object is collected.
_started: list[subprocess.Popen[bytes]] = []


def runtime_dir() -> Path:
    """Where this user's shared server keeps its state file, locks and log."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"tvoice-{os.getuid()}"


def local_models_url(
    *,
    command: Sequence[str] | None = None,
    start_timeout: float = 180.0,
    exit_when_unused: float = 30.0,
    folder: Path | None = None,
) -> str:
    """The base URL (``.../v1``) of this machine's inference server, started now if none runs.

    Blocks while the server starts (its models load). From now on this process counts as a
    user of the server; a server started now stops ``exit_when_unused`` seconds after its last
    user is gone. ``command`` starts the server (default: ``python -m tvoice models serve``;
    it gets ``--port 0 --state-file ... --exit-when-unused ...`` appended); ``folder`` is
    where the state file and locks are (default: :func:`runtime_dir`). Raises
    ``RuntimeError`` with the end of the server's log if it cannot be started.
    """
    folder = folder if folder is not None else runtime_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder not in _user_locks:
        lock = _user_locks[folder] = open(folder / "models.users", "ab")  # noqa: SIM115
        fcntl.flock(lock, fcntl.LOCK_SH)
        atexit.register(lock.close)  # held until the process ends: that is the point
    state = folder / "models.json"
    with open(folder / "models.start", "ab") as start_lock:
        fcntl.flock(start_lock, fcntl.LOCK_EX)
        url = _serving_url(state)
        if url is not None:
            return url
        base = list(command) if command is not None else [sys.executable, "-m", "tvoice"]
        args = [*base, "models", "serve"] if command is None else base
        args += ["--port", "0", "--state-file", str(state)]
        args += ["--exit-when-unused", str(exit_when_unused)]
        with open(folder / "models.log", "ab") as log:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,  # it outlives the process that started it
            )
        url = _announced_url(process, start_timeout)
        if url is None:
            process.kill()
            process.wait()
            raise RuntimeError(
                f"the inference server did not start ({_log_tail(folder / 'models.log')})"
            )
        _started.append(process)
        return url


def _announced_url(process: subprocess.Popen[bytes], timeout: float) -> str | None:
    """The URL the server prints once it serves, or None if it exits or stays silent for
    ``timeout`` seconds first."""
    assert process.stdout is not None
    with process.stdout, selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while selector.select(timeout):
            line = process.stdout.readline().decode("utf-8", "replace")
            if not line:
                return None  # it exited
            if line.startswith(_ANNOUNCEMENT):
                return line[len(_ANNOUNCEMENT) :].strip()
    return None


def _serving_url(state: Path) -> str | None:
    """The URL in the state file, if a server answers there."""
    try:
        url = json.loads(state.read_text())["url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(url, str):
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or parts.port is None:
        return None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
    try:
        connection.request("GET", "/health")
        healthy = connection.getresponse().status == 200
    except OSError:
        healthy = False
    finally:
        connection.close()
    return url if healthy else None


def _log_tail(path: Path, size: int = 2000) -> str:
    try:
        return path.read_bytes()[-size:].decode("utf-8", "replace").strip()
    except OSError:
        return "(no log)"


async def serve_shared(
    server: InferenceServer,
    *,
    state_file: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    exit_when_unused: float | None = None,
    check_interval: float = 1.0,
) -> None:
    """Serve ``server`` as this machine's shared one: announce it in ``state_file``, and with
    ``exit_when_unused`` stop once no process has held the users' lock for that many seconds."""
    # A lock file: opening it never blocks.
    lock = open(state_file.with_name("models.users"), "ab")  # noqa: ASYNC230, SIM115
    with lock:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(functools.partial(server.run, host=host, port=port))
            url = f"http://{host}:{bound}/v1"
            temporary = state_file.with_suffix(".tmp")
            temporary.write_text(json.dumps({"url": url, "pid": os.getpid()}))
            temporary.replace(state_file)
            logger.info("inference server on %s", url)
            print(f"{_ANNOUNCEMENT}{url}", flush=True)
            if exit_when_unused is None:
                return
            unused_since: float | None = None
            while True:
                await trio.sleep(check_interval)
                if not _nobody_uses(lock):
                    unused_since = None
                    continue
                now = trio.current_time()
                unused_since = now if unused_since is None else unused_since
                if now - unused_since >= exit_when_unused and _retire(lock, state_file, url):
                    logger.info("inference server: unused for %.0f s, stopping", exit_when_unused)
                    nursery.cancel_scope.cancel()
                    return


def _nobody_uses(lock: IO[bytes]) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(lock, fcntl.LOCK_UN)
    return True


def _retire(lock: IO[bytes], state_file: Path, url: str) -> bool:
    """Take the state file down while no user can come (the exclusive lock is held), so a
    process that asks after this starts a new server instead of finding a dying one."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    try:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(state_file.read_text()).get("url") == url:
                state_file.unlink()
        return True
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
