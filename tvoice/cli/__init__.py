"""The ``tvoice`` command: ``tvoice console PATH`` (and ``python agent.py console``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ..job import WorkerOptions
from ._console import run_console
from ._loader import load_agent_file

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
    return parser


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run_with_options(options: WorkerOptions, argv: Sequence[str]) -> int:
    """Run a command for an agent whose options are known (``run_app``)."""
    args = _parser(with_path=False).parse_args(argv)
    return _dispatch(options, args)


def _dispatch(options: WorkerOptions, args: argparse.Namespace) -> int:
    _configure_logging(args.verbose)
    if args.output is not None and args.text:
        raise SystemExit("--output needs --input (a call with audio)")
    if args.fast and args.text:
        raise SystemExit("--fast needs --input")
    return run_console(
        options, input_wav=args.input, output_wav=args.output, text=args.text, fast=args.fast
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``tvoice console PATH[:entrypoint] (--input WAV [--output WAV] | --text)``."""
    args = _parser(with_path=True).parse_args(argv)
    return _dispatch(load_agent_file(args.agent), args)


def run_app(options: WorkerOptions, argv: Sequence[str] | None = None) -> None:
    """``python agent.py console ...``: the command line of one agent file."""
    sys.exit(run_with_options(options, list(sys.argv[1:] if argv is None else argv)))
