"""The offline stack's latency, stage by stage: end of speech -> first audio of the reply.

Plays examples/question.wav to examples/assistant.py through the console's simulated call,
several times, and reports the median and spread of each stage of the turn (end-of-turn delay,
Whisper, SmolLM2's first token, Piper's first audio, end of speech to first audio).

    python bench/bench_offline.py [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from tvoice.cli._loader import load_agent_file  # noqa: E402
from tvoice.job import ConsoleRoom, TurnRow  # noqa: E402

STAGES = {
    "end-of-turn delay": "eou_delay",
    "Whisper transcription": "stt",
    "LLM first token": "llm_first_token",
    "TTS first audio (after first token)": "tts_first_byte",
    "end of speech -> first audio": "first_audio",
}


def one_call(options: object) -> list[TurnRow]:
    import trio

    from tvoice.cli._console import _run_job
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with contextlib.redirect_stdout(io.StringIO()):
        options = load_agent_file(str(ROOT / "examples" / "assistant.py"))
    rows: list[TurnRow] = []
    for _ in range(args.runs):
        rows += [r for r in one_call(options) if r.first_audio is not None]
    print(f"offline stack, {len(rows)} turns over {args.runs} calls\n")
    print("| stage | median | min - max |")
    print("|---|---|---|")
    for label, field in STAGES.items():
        values = [getattr(r, field) for r in rows if getattr(r, field) is not None]
        if not values:
            print(f"| {label} | - | - |")
            continue
        print(
            f"| {label} | {statistics.median(values) * 1000:.0f} ms "
            f"| {min(values) * 1000:.0f} - {max(values) * 1000:.0f} ms |"
        )


if __name__ == "__main__":
    main()
