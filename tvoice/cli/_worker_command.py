"""``tvoice worker``: serve an agent file's jobs for a LiveKit server; ``tvoice connect``: run
one job in a named room, no dispatch."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from types import ModuleType

import attrs
import trio

from .._errors import APIConnectionError
from .._utils import short_id
from ..job import JobContext, JobInfo, JobProcess, WorkerOptions
from ..job._lifetime import run_job

__all__ = ["agent_target", "run_connect", "run_worker", "worker_options"]

logger = logging.getLogger("tvoice.worker")


def worker_options(options: WorkerOptions, args: argparse.Namespace) -> WorkerOptions:
    """``options`` with what the command line of ``worker`` or ``connect`` sets."""
    changes = {
        "ws_url": args.url,
        "api_key": args.api_key,
        "api_secret": args.api_secret,
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "agent_name": getattr(args, "agent_name", None),
        "num_idle_processes": getattr(args, "num_idle_processes", None),
        "fallback_urls": getattr(args, "fallback_url", None),
    }
    return attrs.evolve(options, **{k: v for k, v in changes.items() if v is not None})


def run_worker(options: WorkerOptions, target: str, *, log_level: int) -> int:
    """Serve until drained (SIGTERM or Ctrl-C); returns the exit code."""
    _check_credentials(options)
    # Imported here: the worker pulls the LiveKit protocol in, which `import tvoice` must not.
    from ..job._serve_worker import serve_worker
    from ..livekit.protocol import agent_url

    try:
        for url in (options.ws_url, *options.fallback_urls):
            agent_url(url)
    except ValueError as e:
        raise SystemExit(f"tvoice worker: {e}") from None

    failures: list[BaseException] = []
    try:
        trio.run(lambda: serve_worker(options, target, log_level=log_level))
    except* APIConnectionError as group:
        failures.extend(group.exceptions)
    for exc in _leaves(failures):
        print(f"tvoice worker: {exc}", file=sys.stderr)
    return 1 if failures else 0


def _leaves(errors: list[BaseException]) -> list[BaseException]:
    """The errors themselves, out of the exception groups the nurseries wrapped them in."""
    found: list[BaseException] = []
    for exc in errors:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(_leaves(list(exc.exceptions)))
        else:
            found.append(exc)
    return found


def run_connect(
    options: WorkerOptions, *, room: str, identity: str | None, participant: str | None
) -> int:
    """Run one job in ``room`` in this process: prewarm, join with a token made from the API
    key, run the entrypoint until the job ends."""
    _check_credentials(options)
    try:
        from ..livekit import LiveKitRoom, RoomOptions, run_with_asyncio_host
        from ..livekit._tokens import room_token
    except ImportError as exc:
        raise SystemExit(
            f"tvoice connect needs the livekit extra: pip install 'tvoice[livekit]' ({exc})"
        ) from None
    proc = JobProcess()
    if options.prewarm_fnc is not None:
        options.prewarm_fnc(proc)
    agent_identity = identity or short_id("agent")
    token = room_token(
        options.api_key,
        options.api_secret,
        room=room,
        identity=agent_identity,
        name=options.agent_name or "agent",
    )
    job = JobInfo(id=short_id("connect"), room_name=room, agent_name=options.agent_name)
    lk_room = LiveKitRoom(
        url=options.ws_url, token=token, options=RoomOptions(participant_identity=participant)
    )
    ctx = JobContext(proc=proc, job=job, room=lk_room)
    print(f"joining room {room!r} on {options.ws_url} as {agent_identity}", flush=True)
    run_with_asyncio_host(run_job, options, ctx)
    return 0


def _check_credentials(options: WorkerOptions) -> None:
    if not options.api_key or not options.api_secret:
        raise SystemExit(
            "the LiveKit API key and secret are missing: set LIVEKIT_API_KEY and"
            " LIVEKIT_API_SECRET (or pass --api-key and --api-secret)"
        )


def agent_target(options: WorkerOptions) -> str:
    """The ``PATH:name`` a job process imports to find ``options`` again (``run_app``): the
    module-level name bound to ``options`` in the script, else its entrypoint function."""
    module = sys.modules.get(options.entrypoint_fnc.__module__)
    path = getattr(module, "__file__", None)
    if module is None or path is None:
        raise SystemExit(
            f"the entrypoint {options.entrypoint_fnc!r} is not defined in a file: a worker's job"
            " processes import the agent file, so define it at module level in one"
        )
    name = _bound_name(module, options) or options.entrypoint_fnc.__name__
    if getattr(module, name, None) is None:
        raise SystemExit(f"{path}: the entrypoint must be a module-level function")
    prewarm = options.prewarm_fnc
    by_name = name == options.entrypoint_fnc.__name__
    if by_name and prewarm is not None and getattr(module, "prewarm", None) is not prewarm:
        raise SystemExit(
            f"{path}: job processes find the prewarm function by its name: call it"
            " `prewarm`, or bind the WorkerOptions to a module-level name"
        )
    return f"{Path(path).resolve()}:{name}"


def _bound_name(module: ModuleType, options: WorkerOptions) -> str | None:
    for name, value in vars(module).items():
        if value is options:
            return name
    return None
