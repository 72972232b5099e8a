"""The offline stack's latency, stage by stage: end of speech -> first audio of the reply.

Plays examples/question.wav to examples/assistant.py through the console's simulated call,
several times, and reports the median and spread of each stage of the turn (end-of-turn delay,
Whisper, SmolLM2's first token, Piper's first audio, end of speech to first audio). The first
call on a machine starts the local models server and fills its prompt cache; it is reported
apart, and the median is over the calls after it.

    python bench/bench_offline.py [--runs 10] [--write]

``--write`` puts the table into bench/results/latest.md, in its own marked section.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from _report_file import write_section  # noqa: E402

from tvoice.job import ConsoleRoom, TurnRow  # noqa: E402
from tvoice.job._loader import load_agent_file  # noqa: E402

STAGES = {
    "end-of-turn delay": "eou_delay",
    "Whisper transcription": "stt",
    "LLM first token": "llm_first_token",
    "TTS first audio (after first token)": "tts_first_byte",
    "end of speech -> first audio": "first_audio",
}


def one_call(options: object) -> list[TurnRow]:
    import trio

    from tvoice.cli._console_command import _run_job
    from tvoice.job import JobContext, JobInfo, JobProcess

    proc = JobProcess(progress=lambda line: None)
    options.prewarm_fnc(proc)  # type: ignore[attr-defined]
    room = ConsoleRoom(input_wav=ROOT / "examples" / "question.wav", printer=lambda line: None)
    ctx = JobContext(
        proc=proc,
        job=JobInfo(id="bench", room_name="bench"),
        room=room,
    )
    trio.run(_run_job, options, ctx)
    return room.rows


def machine() -> str:
    """The CPU and its vector instructions: the models' int8 and 4-bit kernels run several
    times faster with AVX-512 (VNNI) than with AVX2 alone, so figures from two machines
    compare only beside this (Whisper took 396 ms on one machine and 1528 ms on an AVX2-only
    one, with the same code)."""
    name, flags = platform.processor() or platform.machine(), set[str]()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    wanted = ("avx512f", "avx512_vnni", "avx_vnni", "avx2", "fma")
    vector = ", ".join(flag.upper() for flag in wanted if flag in flags) or "none known"
    return f"{name}, {vector}"


def table(first: list[TurnRow], rows: list[TurnRow], runs: int, cpu: str) -> str:
    """The report: each stage's median and spread over ``rows``, and the first call's."""
    lines = [
        f"{len(rows)} turns over {runs - 1} calls after the first "
        f"({os.cpu_count()} cores of {cpu}); "
        "the first call in its own column (on a models server it started: empty prompt cache).",
        "",
        "| stage | median | min - max | first call |",
        "|---|---|---|---|",
    ]

    def ms(value: float) -> str:
        return f"{value * 1000:.0f} ms"

    for label, field in STAGES.items():
        values = [getattr(r, field) for r in rows if getattr(r, field) is not None]
        cold = [getattr(r, field) for r in first if getattr(r, field) is not None]
        spread = f"{ms(min(values))} - {ms(max(values))}" if values else "-"
        median = ms(statistics.median(values)) if values else "-"
        lines.append(f"| {label} | {median} | {spread} | {ms(cold[0]) if cold else '-'} |")
    return "\n".join(lines)


def section(report: str) -> str:
    """The report as the offline section of latest.md."""
    return (
        "## Offline stack: end of speech to first audio\n\n"
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
        f"`python bench/bench_offline.py --runs N --write`: examples/question.wav to "
        f"examples/assistant.py (Whisper tiny.en, SmolLM2-135M, Piper, all local).\n\n"
        f"{report}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--write", action="store_true", help="into bench/results/latest.md")
    args = parser.parse_args()
    if args.runs < 2:
        parser.error("--runs must be at least 2: the first call is reported apart")
    with contextlib.redirect_stdout(io.StringIO()):
        options = load_agent_file(str(ROOT / "examples" / "assistant.py"))
    first = [r for r in one_call(options) if r.first_audio is not None]
    rows: list[TurnRow] = []
    for _ in range(args.runs - 1):
        rows += [r for r in one_call(options) if r.first_audio is not None]
    report = table(first, rows, args.runs, machine())
    print(report)
    if args.write:
        write_section(ROOT / "bench" / "results" / "latest.md", "offline", section(report))


if __name__ == "__main__":
    main()
