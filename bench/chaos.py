"""`nox -s chaos`: calls through faults on a real LiveKit server, for several minutes.

Runs the chaos driver of the test suite (``tests/livekit/_chaos.py``: one livekit-server, one
`tvoice worker` of the tones agent behind a loopback proxy, callers speaking tones, a fault
every few seconds: SIGKILL and SIGSTOP of job processes, server restarts, the worker's
WebSocket cut, a failing STT, a stalled TTS, malformed pre-connect audio, oversized metadata)
and writes its table into ``bench/results/latest.md`` between ``<!-- chaos -->`` and
``<!-- /chaos -->`` (replaced on each run, appended the first time; the rest of the file is
left as it is). ``tests/livekit/test_chaos.py`` is the short version.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _report_file import write_section  # noqa: E402

from tests.livekit._chaos import FAULTS, ChaosReport, run_chaos  # noqa: E402


def _machine() -> str:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return (
        f"{model} ({os.cpu_count()} cores), Linux {platform.release()}, Python"
        f" {platform.python_version()}, tvoice commit {commit or '?'}"
    )


def section(report: ChaosReport) -> str:
    """The report as the chaos section of latest.md (its markers added by write_section)."""
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "## Chaos: calls through faults on a real LiveKit server",
            "",
            f"Run {when} on {_machine()}: {report.calls_concurrent} calls at a time for"
            f" {report.duration:.0f} s, each {report.turns} spoken turns (a tone per turn, the"
            f" agent's models tvoice.testing's scripted fakes), a fault every"
            f" {report.fault_every:.0f} s in turn: {', '.join(FAULTS)}. Written by"
            " `nox -s chaos` (bench/chaos.py, driver tests/livekit/_chaos.py).",
            "",
            report.table(),
            "",
            "A call completes when every turn is answered (a turn is said up to three times);"
            " one a fault ends (its job process killed, its server restarted) counts as failed,"
            " with the reason. A fault is survived when the worker process lives and is"
            " registered again, and: the call it aimed at completes (STT error, TTS stall,"
            " SIGSTOP, malformed pre-connect audio, oversized metadata), or a call started"
            " after it completes (SIGKILL, server restart). Chat history items lost: turns the"
            " caller heard answered whose user message or reply is missing from the items the"
            " agent recorded as the session added them. RSS: the worker process's own VmRSS"
            " once registered, and at the end.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of faults")
    parser.add_argument("--calls", type=int, default=4, help="calls at a time")
    parser.add_argument("--turns", type=int, default=6, help="turns per call")
    parser.add_argument("--fault-every", type=float, default=8.0, help="seconds between faults")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.md")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="The HMAC key is")
    with tempfile.TemporaryDirectory(prefix="tvoice-chaos-") as folder:
        report = run_chaos(
            Path(folder),
            duration=args.duration,
            calls=args.calls,
            turns=args.turns,
            fault_every=args.fault_every,
        )
    text = section(report)
    print(text)
    write_section(args.out, "chaos", text)
    print(f"written to {args.out}")
    if report.worker_restarts or report.history_lost:
        raise SystemExit("worker restarts or chat history lost: see the table")


if __name__ == "__main__":
    main()
