"""``tvoice console``: run an agent file locally, on a WAV file or the keyboard."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import trio

from ..audio import read_wav
from ..job import ConsoleRoom, JobContext, JobInfo, JobProcess, WorkerOptions
from ..job._lifetime import run_job

__all__ = ["run_console"]

logger = logging.getLogger("tvoice.console")


def _say(line: str) -> None:
    print(line, flush=True)


def run_console(
    options: WorkerOptions,
    *,
    input_wav: Path | None,
    output_wav: Path | None,
    text: bool,
    fast: bool = False,
) -> int:
    """Run the call; print the conversation and the latency table. Returns an exit code."""
    if input_wav is not None:
        # Before any model loads: a bad file is one line, at once.
        try:
            read_wav(input_wav)
        except (ValueError, OSError) as e:
            raise SystemExit(f"tvoice console: {e}") from None
    proc = JobProcess(progress=lambda line: _say(f"[{line}]"))
    if options.prewarm_fnc is not None:
        options.prewarm_fnc(proc)
    room = ConsoleRoom(
        input_wav=input_wav, text=text, printer=_say, fast=fast, output_wav=output_wav
    )
    ctx = JobContext(
        proc=proc,
        job=JobInfo(id="console", room_name="console", agent_name=options.agent_name),
        room=room,
    )
    trio.run(_run_job, options, ctx)
    if not text:
        _say("")
        _say(room.latency_table())
    if output_wav is not None:
        heard = room.write_recording(output_wav)
        _say(f"\nwrote {output_wav} ({heard:.1f} s of agent audio)")
    return 0


async def _run_job(options: WorkerOptions, ctx: JobContext) -> None:
    try:
        await run_job(options, ctx)
    finally:
        sys.stdout.flush()
