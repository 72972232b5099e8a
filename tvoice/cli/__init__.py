"""The ``tvoice`` command: ``tvoice console|worker|connect PATH`` (and ``python agent.py
console|worker|connect`` through ``run_app``), and ``tvoice models serve``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ..job import WorkerOptions
from ..job._loader import load_agent_file, split_target
from ._console_command import run_console
from ._models_command import serve_models
from ._worker_command import agent_target, run_connect, run_worker, worker_options

__all__ = ["main", "run_app", "run_with_options"]


def _parser(*, with_path: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tvoice", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", required=True)
    console = commands.add_parser("console", help="talk to the agent locally, no server")
    if with_path:
        console.add_argument("agent", help="the agent file, PATH[:entrypoint]")
    source = console.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", type=Path, help="a WAV file of the caller's side of a call")
    source.add_argument("--text", action="store_true", help="type messages, read replies")
    console.add_argument("--output", type=Path, help="write the call (both sides) to this WAV")
    console.add_argument(
        "--fast", action="store_true", help="feed the input file without waiting for its pace"
    )
    for command, help_text in [
        ("worker", "serve the agent's jobs for a LiveKit server (SIGTERM drains)"),
        ("start", "the same as worker (LiveKit Agents' name)"),
    ]:
        worker = commands.add_parser(command, help=help_text)
        if with_path:
            worker.add_argument("agent", help="the agent file, PATH[:entrypoint]")
        _server_arguments(worker)
        worker.add_argument(
            "--fallback-url",
            action="append",
            metavar="URL",
            help="another node of the same LiveKit deployment, tried when the server is lost"
            " (repeat for more)",
        )
        worker.add_argument(
            "--host", help="health and metrics HTTP address (default 127.0.0.1: this machine only)"
        )
        worker.add_argument("--port", type=int, help="health and metrics HTTP port (0: any free)")
        worker.add_argument("--agent-name", help="the name dispatches ask for")
        worker.add_argument("--num-idle-processes", type=int, help="warm job processes to keep")
    connect = commands.add_parser("connect", help="run one job in a room now, no dispatch")
    if with_path:
        connect.add_argument("agent", help="the agent file, PATH[:entrypoint]")
    connect.add_argument("--room", required=True, help="the room to join")
    connect.add_argument("--identity", help="the agent's participant identity")
    connect.add_argument("--participant-identity", help="the participant to talk to")
    _server_arguments(connect)
    models = commands.add_parser("models", help="the offline models, for every job process")
    models_commands = models.add_subparsers(dest="models_command", required=True)
    serve = models_commands.add_parser(
        "serve", help="serve the offline models over the OpenAI HTTP API on loopback"
    )
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    serve.add_argument("--port", type=int, default=8089, help="the port (0: any free port)")
    serve.add_argument("--state-file", type=Path, help="announce the server in this file")
    serve.add_argument(
        "--exit-when-unused",
        type=float,
        metavar="SECONDS",
        help="with --state-file: stop once no process has used the server this long",
    )
    return parser


def _server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the LiveKit server (default: $LIVEKIT_URL)")
    parser.add_argument("--api-key", help="default: $LIVEKIT_API_KEY")
    parser.add_argument("--api-secret", help="default: $LIVEKIT_API_SECRET")


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run_with_options(options: WorkerOptions, argv: Sequence[str]) -> int:
    """Run a command for an agent whose options are known (``run_app``)."""
    args = _parser(with_path=False).parse_args(argv)
    target = agent_target(options) if args.command in ("worker", "start") else ""
    return _dispatch(options, args, target)


def _dispatch(options: WorkerOptions, args: argparse.Namespace, target: str) -> int:
    _configure_logging(args.verbose)
    if args.command == "models":
        return _models(args)
    if args.command != "console":
        options = worker_options(options, args)
        if args.command == "connect":
            return run_connect(
                options,
                room=args.room,
                identity=args.identity,
                participant=args.participant_identity,
            )
        level = logging.DEBUG if args.verbose else logging.INFO
        logging.getLogger("tvoice").setLevel(level)
        return run_worker(options, target, log_level=level)
    if args.output is not None and args.text:
        raise SystemExit("--output needs --input (a call with audio)")
    if args.fast and args.text:
        raise SystemExit("--fast needs --input")
    return run_console(
        options, input_wav=args.input, output_wav=args.output, text=args.text, fast=args.fast
    )


def _models(args: argparse.Namespace) -> int:
    logging.getLogger("tvoice").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    return serve_models(
        host=args.host,
        port=args.port,
        state_file=args.state_file,
        exit_when_unused=args.exit_when_unused,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``tvoice console|worker|connect PATH[:entrypoint] ...`` (``tvoice -h`` lists them)."""
    args = _parser(with_path=True).parse_args(argv)
    if args.command == "models":
        _configure_logging(args.verbose)
        return _models(args)
    path, name = split_target(str(args.agent))
    target = f"{Path(path).resolve()}:{name}" if name else str(Path(path).resolve())
    return _dispatch(load_agent_file(args.agent), args, target)


def run_app(options: WorkerOptions, argv: Sequence[str] | None = None) -> None:
    """``python agent.py console ...``: the command line of one agent file."""
    sys.exit(run_with_options(options, list(sys.argv[1:] if argv is None else argv)))
