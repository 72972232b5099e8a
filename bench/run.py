"""tvoice vs LiveKit Agents: framework cost per turn, interruption latency, density, memory.

``nox -s bench`` runs this in tvoice's environment with ``--livekit-python`` pointing at a
separate environment holding ``livekit-agents==1.8.9`` and ``livekit-plugins-silero==1.8.9``,
each installed from its lock (``bench/requirements-*.txt``); the report says whether the installed
sets match them, and sets LiveKit's figures beside the previous full run's (``_anchor.py``).
Each scenario runs in a fresh process per framework (``tvoice_side.py``, ``livekit_side.py``),
pinned to one core, on real clocks, with the same inputs; the two sides are the same program
written against each framework's public interfaces. Results print as one markdown table and are
written to ``bench/results/latest.md`` (and the raw figures to ``bench/results/latest.json``).
The worker figures (dispatch latency and idle job-process memory, both workers on one real
loopback LiveKit server) come from ``bench_worker.py`` and end the report in a section of their
own (also written to ``bench/results/worker.md``).

How each figure is taken (both frameworks alike):

* every process starts as the framework's job processes do: its plugins imported, then
  ``gc.freeze()`` (tvoice after the prewarm, LiveKit Agents at the end of its forkserver's
  preload), so a full collection walks only the sessions' own objects. Until 2026-12-02 the
  sides skipped it, and LiveKit's density read 3 on some machines: full collections of its
  158,000 import-time objects paused its process 55-96 ms within the measured seconds.

* per-turn overhead: a streaming scripted STT sends FINAL_TRANSCRIPT then END_OF_SPEECH
  (``turn_detection="stt"``, no endpointing delay, no VAD); from the moment the framework commits
  the turn (its recognition calls the activity's ``on_end_of_turn`` hook, wrapped to take the
  time: ``session.activity`` in tvoice, ``session._activity`` in LiveKit, neither has a public
  "turn committed" event) to the reply's first frame reaching ``AudioOutput.capture_frame``; the
  LLM answers at once with one chunk, the TTS answers its first text at once with 100 ms of
  audio, the output "plays" a segment the moment it is flushed. All turns run in one session,
  10-30 ms apart, so the history grows to ~500 items;
* interruption: while the agent plays a 3 s reply in real time, a scripted VAD emits
  START_OF_SPEECH (+ INFERENCE_DONE, as a real VAD does on that window) 50-150 ms into the
  playback, at a noted ``perf_counter`` time; until the output's ``clear_buffer``.
  ``min_interruption_duration=0`` and ``resume_false_interruption=False`` (else both frameworks
  pause instead of clearing); then the user's words end the turn and the next reply starts;
* density: N sessions in one process on one core, each fed 16 kHz user audio (espeak-ng speech
  and silence, a different offset per session) in real-time 20 ms frames through each
  framework's own Silero VAD integration, ``turn_detection="vad"`` (endpointing 0.5 s), scripted
  STT following the audio, instant LLM, TTS replying with 2 s played in real time by a sink that
  takes 20 ms every 20 ms from a 200 ms buffer; the largest N whose p99 input and output frame
  lateness stay under 20 ms and whose VAD keeps up (its metrics cover the audio fed, within
  1.5 s); CPU per session-second (process CPU, all threads) at that N;
* memory: VmRSS of a fresh process with one idle session, then with N; each session heard one
  second of silence (so every per-stream buffer exists) and then no more audio.

Settings made equal: preemptive generation off (LiveKit's default is on), LiveKit's
``aec_warmup_duration=None`` (by default it ignores interruptions for 3 s after the agent starts
speaking) and interruption ``mode="vad"`` (no adaptive model), explicit turn detection (LiveKit
would load its turn-detector model); everything else is each framework's default. The fakes,
input feeders and output sinks are the same code written against each framework's public
interfaces, in ``tvoice_side.py`` and ``livekit_side.py``; a run whose core other processes
used more than 5 % is run again.

Both sides run the same onnxruntime, from the locks: a fresh LiveKit environment got 1.32.0 on
2026-12-02 and LiveKit's density read 3-4 that day. What 1.32.0 changes for both Silero
integrations on one core (nothing measurable), and what a busy machine does to the density
search, is in ``bench/results/onnxruntime.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import _anchor  # noqa: E402
import _common as C  # noqa: E402
from _machine import machine  # noqa: E402
from _report_file import write_keeping  # noqa: E402

LATENESS_LIMIT_MS = 20.0
FOREIGN_LIMIT = 0.05  # a run whose core other processes used more than this is run again
FOREIGN_TRIES = 3
FOREIGN_GIVE_UP = 4  # after this many contaminated runs in a row the machine is busy: stop retrying
VAD_BACKLOG_LIMIT_S = 1.5  # metrics come per 1.024 s of audio: below this the VAD keeps up
REFERENCE_N = 16  # the doubling search tries it: CPU per session-second compared at equal load


# The figure each target compares with LiveKit's: a target is not judged when that figure moved.
TARGET_FIGURES = {
    "turn": "turn_median",
    "interrupt": "int_median",
    "density": "density_n",
    "memory": "per_session",
}


class SideFailed(RuntimeError):
    pass


# -- running the sides ------------------------------------------------------------------------


class Runner:
    def __init__(self, *, livekit_python: str, cpu: int, log_path: Path, verbose: bool) -> None:
        self.pythons = {"tvoice": sys.executable, "livekit": livekit_python}
        self.scripts = {"tvoice": HERE / "tvoice_side.py", "livekit": HERE / "livekit_side.py"}
        self.cpu = cpu
        self.log = log_path.open("a")
        self.verbose = verbose
        self.foreign_seen: list[float] = []
        self.dirty_streak = 0
        self.dirty_kept: list[str] = []

    def quietest_core(self) -> int:
        """The allowed core other processes use least right now (sampled over 0.3 s)."""
        if self.cpu is not None:
            return self.cpu
        cores = sorted(os.sched_getaffinity(0))

        def busy() -> dict[int, int]:
            out = {}
            for line in Path("/proc/stat").read_text().splitlines():
                name = line.split(" ", 1)[0]
                if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
                    v = [int(x) for x in line.split()[1:]]
                    out[int(name[3:])] = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
            return out

        before = busy()
        time.sleep(0.3)
        after = busy()
        return min(cores, key=lambda c: (after.get(c, 0) - before.get(c, 0), -c))

    def run(
        self, side: str, scenario: str, params: dict[str, Any], timeout: float = 240
    ) -> dict[str, Any]:
        params = {"cpu": self.quietest_core(), **params}
        cmd = [
            self.pythons[side],
            str(self.scripts[side]),
            scenario,
            "--params",
            json.dumps(params),
        ]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        took = time.perf_counter() - started
        self.log.write(
            f"\n$ {side} {scenario} {json.dumps(params)} ({took:.1f} s, rc={proc.returncode})\n"
        )
        self.log.write(proc.stderr[-20000:])
        self.log.flush()
        for line in proc.stdout.splitlines():
            if line.startswith(C.RESULT_PREFIX):
                return json.loads(line[len(C.RESULT_PREFIX) :])
        raise SideFailed(
            f"{side} {scenario} gave no result (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        )

    def run_clean(
        self, side: str, scenario: str, params: dict[str, Any], timeout: float = 240
    ) -> dict[str, Any]:
        """``run``, again (up to FOREIGN_TRIES times) while other processes took more than
        FOREIGN_LIMIT of the core; the cleanest attempt is kept."""
        best: dict[str, Any] | None = None
        tries = FOREIGN_TRIES if self.dirty_streak < FOREIGN_GIVE_UP else 1
        for attempt in range(tries):
            r = self.run(side, scenario, params, timeout)
            r["foreign"] = r.get("foreign_share", r.get("foreign_share_run", 0.0))
            if best is None or r["foreign"] < best["foreign"]:
                best = r
            if r["foreign"] <= FOREIGN_LIMIT:
                self.dirty_streak = 0
                break
            self.dirty_streak += 1
            if attempt + 1 == tries:
                break
            say(
                f"    ({side} {scenario}: other processes used {r['foreign'] * 100:.0f}% "
                "of the core; running it again)"
            )
            time.sleep(2)
        assert best is not None
        self.foreign_seen.append(best["foreign"])
        if best["foreign"] > FOREIGN_LIMIT:
            what = f" N={params['n']}" if scenario == "density" else ""
            self.dirty_kept.append(f"{side} {scenario}{what} ({best['foreign'] * 100:.0f}%)")
        return best


def say(*parts: object) -> None:
    print(*parts, flush=True)


# -- scenarios --------------------------------------------------------------------------------


def per_rep_turns(r: dict[str, Any]) -> dict[str, float]:
    xs = r["commit_to_first_frame_ms"]
    k = max(1, min(25, len(xs) // 4))
    return {
        "median": C.percentile(xs, 50),
        "p95": C.percentile(xs, 95),
        "first": C.percentile(xs[:k], 50),
        "last": C.percentile(xs[-k:], 50),
        "eos_median": C.percentile(r["eos_to_first_frame_ms"], 50),
        "n": len(xs),
    }


def per_rep_interrupt(r: dict[str, Any]) -> dict[str, float]:
    xs = r["start_of_speech_to_clear_ms"]
    return {"median": C.percentile(xs, 50), "p95": C.percentile(xs, 95), "n": len(xs)}


def passes(r: dict[str, Any]) -> bool:
    return (
        r["input_lateness_ms"]["p99"] < LATENESS_LIMIT_MS
        and r["output_lateness_ms"]["p99"] < LATENESS_LIMIT_MS
        and r["vad_backlog_s_per_session"] < VAD_BACKLOG_LIMIT_S
        and r["replies"] > 0
    )


def density_search(
    trial: Callable[[int], dict[str, Any]], *, hint: int | None, max_n: int
) -> tuple[int, dict[int, dict[str, Any]]]:
    """The largest N that passes: doubling from 4 (or stepping from ``hint``), then bisecting
    to about 8 %."""
    tried: dict[int, dict[str, Any]] = {}

    def ok(n: int) -> bool:
        if n not in tried:
            tried[n] = trial(n)
        return passes(tried[n])

    lo, hi = 0, max_n + 1
    if hint is None:
        n = 4
        while n <= max_n:
            if ok(n):
                lo, n = n, n * 2
            else:
                hi = n
                break
    else:
        n = max(1, min(hint, max_n))
        if ok(n):
            lo = n
            while lo < max_n:
                up = min(max_n, max(lo + 1, math.ceil(lo * 1.2)))
                if ok(up):
                    lo = up
                else:
                    hi = up
                    break
        else:
            hi = n
            while hi > 1:
                down = max(1, min(hi - 1, math.floor(hi * 0.8)))
                if ok(down):
                    lo = down
                    break
                hi = down
    while hi - lo > max(1, lo // 12) and hi <= max_n:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo, tried


# -- the report -------------------------------------------------------------------------------


def spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def cell(values: list[float], fmt: str) -> str:
    if not values:
        return "n/a"
    mid, lo, hi = spread(values)
    if len(values) == 1 or lo == hi:
        return format(mid, fmt)
    return f"{format(mid, fmt)} [{format(lo, fmt)}–{format(hi, fmt)}]"


def ratio(tv: list[float], lk: list[float]) -> str:
    if not tv or not lk:
        return "n/a"
    a, b = statistics.median(tv), statistics.median(lk)
    return f"{a / b:.2f}x" if b else "n/a"


def _where(row: dict[str, Any] | None) -> str:
    return row["where"] if row else ""


def _pct(row: dict[str, Any] | None) -> str:
    return f"{row['share'] * 100:.1f}%" if row else ""


def build_report(data: dict[str, Any]) -> str:
    fig = data["figures"]
    tv, lk = fig["tvoice"], fig["livekit"]
    compared = (data.get("anchor") or {}).get("compared", {})
    rows: list[tuple[str, str, str, str, str, str]] = []
    shown: dict[str, tuple[str, str]] = {}

    def row(label: str, key: str, fmt: str, target: str = "") -> None:
        shown[key] = (label, fmt)
        before = compared.get(key)
        was = _anchor.cell_of(before["before"], fmt) if before else ""
        moved = bool(before and before["moved"])
        rows.append(
            (
                label,
                cell(tv.get(key, []), fmt),
                cell(lk.get(key, []), fmt) + (" **moved**" if moved else ""),
                was,
                "— (anchor moved)" if moved else ratio(tv.get(key, []), lk.get(key, [])),
                target,
            )
        )

    def verdict(target: str) -> str:
        if compared.get(TARGET_FIGURES[target], {}).get("moved"):
            return " — not judged: LiveKit's figure moved"
        ok = data["targets"].get(target)
        return "" if ok is None else (" — met" if ok else " — **missed**")

    row(
        "Per-turn overhead, median (ms)",
        "turn_median",
        ".2f",
        "tvoice ≤ 1 ms and < LiveKit" + verdict("turn"),
    )
    row("Per-turn overhead, p95 (ms)", "turn_p95", ".2f")
    row("  … median of the first 25 turns (ms)", "turn_first", ".2f")
    row("  … median of the last 25 turns (ms)", "turn_last", ".2f")
    row("STT end of speech → first frame, median (ms)", "eos_median", ".2f")
    row(
        "Interruption (VAD start → clear_buffer), median (ms)",
        "int_median",
        ".2f",
        "tvoice ≤ 20 ms and < LiveKit" + verdict("interrupt"),
    )
    row("Interruption, p95 (ms)", "int_p95", ".2f")
    row(
        "Density: sessions on one core (p99 lateness < 20 ms)",
        "density_n",
        ".0f",
        "tvoice ≥ 2x LiveKit" + verdict("density"),
    )
    row("  CPU per session-second at that N (ms)", "cpu_ms", ".1f")
    row(f"  CPU per session-second at N={REFERENCE_N}, both passing (ms)", "cpu_ref", ".1f")
    row("  p99 output frame lateness at that N (ms)", "out_p99", ".1f")
    row("  p99 input frame lateness at that N (ms)", "in_p99", ".1f")
    row("Memory: process with one idle session (MiB)", "rss_one", ".1f")
    row(f"Memory: process with {data['params']['memory_n']} idle sessions (MiB)", "rss_n", ".1f")
    row(
        "Memory per session (KiB)",
        "per_session",
        ".0f",
        "tvoice ≤ 0.5x LiveKit" + verdict("memory"),
    )

    m = data["machine"]
    where_pinned = (
        f"core {data['params']['cpu']}"
        if data["params"]["cpu"] is not None
        else "the core other processes used least when it started"
    )
    lines = [
        "# tvoice vs LiveKit Agents: framework cost and density",
        "",
        f"Measured {m['date']} on {m['cpu_model']} ({m['cores']} cores, {m['memory_gib']} GiB), "
        f"Linux {m['kernel']}; each run pinned to one core "
        f"({where_pinned}).",
        "",
        *_anchor.environment_lines(data),
        f"- Other processes used at most {data.get('foreign_max', 0) * 100:.1f}% of the measured "
        f"core during a kept run (runs above {FOREIGN_LIMIT * 100:.0f}% are repeated, up to "
        f"{FOREIGN_TRIES} times)"
        + (
            "; kept although busier: " + ", ".join(data["dirty_kept"]) + "."
            if data.get("dirty_kept")
            else "."
        ),
        f"- {data['params']['reps']} repetitions of each scenario per framework; each cell is the "
        "median over them, [min–max] across them. Ratio = tvoice / LiveKit (of the medians).",
        "",
        "| figure | tvoice | LiveKit Agents | LiveKit, previous run | ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    lines += _anchor.section(data, shown)
    lines += [
        "",
        "## How it was measured",
        "",
        (__doc__ or "").split("How each figure is taken (both frameworks alike):", 1)[-1].strip(),
    ]
    p = data["params"]
    lines += [
        "",
        f"Sizes: {p['turns']} measured turns (after {p['turn_warmup']} warm-up), "
        f"{p['trials']} interruptions (after 3 warm-up), "
        f"density trials of {p['density_warmup']} s warm-up "
        f"+ {p['density_seconds']} s measured, memory with {p['memory_n']} sessions.",
    ]
    trials = data.get("density_trials", {})
    if trials:
        lines += [
            "",
            "Density trials, N pass/fail (p99 input/output frame lateness ms, VAD backlog s, "
            "CPU ms per session-second):",
            "",
        ]
        for side in ("tvoice", "livekit"):
            for i, rep in enumerate(trials.get(side, [])):
                parts = [
                    f"{n} {'pass' if passes(r) else 'fail'} "
                    f"({r['input_lateness_ms']['p99']:.1f}/{r['output_lateness_ms']['p99']:.1f}, "
                    f"{r['vad_backlog_s_per_session']:.2f}, {r['cpu_ms_per_session_second']:.1f})"
                    for n, r in sorted(rep.items(), key=lambda kv: int(kv[0]))
                ]
                lines.append(f"- {side}, search {i + 1}: " + "; ".join(parts))
    for name, entry in data.get("profiles", {}).items():
        if "alloc" in entry["tvoice"]:
            lines += ["", f"## Allocations: {name} (target missed)", "", entry["context"], ""]
            for side, label in (("tvoice", "tvoice"), ("livekit", "LiveKit Agents")):
                if side not in entry:
                    continue
                lines += [
                    f"{label} (RSS per session in this run: "
                    f"{entry[side]['per_session_kib']:.0f} KiB, tracemalloc on):",
                    "",
                ]
                lines += [
                    f"- {r['kib_per_session']:.1f} KiB, {r['blocks_per_session']:.0f} blocks: "
                    f"`{r['where']}`"
                    for r in entry[side]["alloc"]
                ]
                lines.append("")
            continue
        tv_prof = entry["tvoice"].get("measured") or entry["tvoice"]
        lk_prof = (entry.get("livekit") or {}).get("measured") or entry.get("livekit")
        lines += ["", f"## Profile: {name} (target missed)", "", entry["context"], ""]
        lines.append(
            f"Busy time sampled: tvoice {tv_prof['busy_s']:.2f} s"
            + (f", LiveKit Agents {lk_prof['busy_s']:.2f} s" if lk_prof else "")
            + " (time idle in epoll left out). Full call trees: "
            + ", ".join(
                f"`{entry[s]['tree_file']}`"
                for s in ("tvoice", "livekit")
                if s in entry and entry[s].get("tree_file")
            )
            + "."
        )
        lines += ["", "Where the busy time goes, by package (self time):", ""]
        lines += ["| tvoice | share | LiveKit Agents | share |", "|---|---|---|---|"]
        tv_rows = tv_prof["by_package"][:8]
        lk_rows = lk_prof["by_package"][:8] if lk_prof else []
        for i in range(max(len(tv_rows), len(lk_rows))):
            a = tv_rows[i] if i < len(tv_rows) else None
            b = lk_rows[i] if i < len(lk_rows) else None
            lines.append(f"| {_where(a)} | {_pct(a)} | {_where(b)} | {_pct(b)} |")
        lines += ["", "tvoice's hottest lines (self time, function (file:line)):", ""]
        lines += [f"- {r['share'] * 100:.1f}% `{r['where']}`" for r in tv_prof["self"][:12]]
        lines += ["", "tvoice functions by inclusive time (function (file:first line)):", ""]
        lines += [f"- {r['share'] * 100:.1f}% `{r['where']}`" for r in tv_prof["inclusive"][:15]]
    worker = data.get("worker")
    if worker is not None:
        import bench_worker

        lines += [""]
        if worker.get("skipped"):
            lines += [
                "## Workers on a real LiveKit server",
                "",
                f"Not measured: {worker['skipped']}",
            ]
        else:
            lines.append(bench_worker.section(worker))
    lines.append("")
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--livekit-python", help="python of the LiveKit Agents env (required)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", default="turns,interrupt,density,memory,worker")
    parser.add_argument("--quick", action="store_true", help="small sizes, for trying the bench")
    parser.add_argument(
        "--cpu", type=int, default=None, help="core to pin each run to (default: the quietest)"
    )
    parser.add_argument("--no-profile", action="store_true", help="don't profile missed targets")
    parser.add_argument("--out", default=str(HERE / "results" / "latest.md"))
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the report from the .json next to --out"
    )
    args = parser.parse_args()
    if args.report_only:
        out = Path(args.out)
        say(write_keeping(out, build_report(json.loads(out.with_suffix(".json").read_text()))))
        return

    if not args.livekit_python:
        parser.error("--livekit-python is required (nox -s bench passes it)")
    cpu = args.cpu  # None: each run goes to the core other processes use least
    quick = args.quick
    params = {
        "reps": args.reps,
        "cpu": cpu,
        "turns": 60 if quick else 250,
        "turn_warmup": 5 if quick else 10,
        "trials": 15 if quick else 60,
        "density_warmup": 1.5 if quick else 2.5,
        "density_seconds": 4.0 if quick else 7.5,
        "density_max_n": 256,
        "memory_n": 20 if quick else 50,
        "quick": quick,
    }
    environments = {
        "tvoice": _anchor.environment("tvoice", sys.executable),
        "livekit": _anchor.environment("livekit", args.livekit_python),
    }
    for side, env in environments.items():
        if env["differences"]:
            differences = "; ".join(env["differences"])
            say(f"{side}'s environment differs from {env['lock']}: {differences}")
    only = set(args.only.split(","))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runner = Runner(
        livekit_python=args.livekit_python, cpu=cpu, log_path=out.with_suffix(".log"), verbose=False
    )
    runner.log.truncate(0)
    for stale in out.parent.glob("profile-*.txt"):  # profiles of the previous run
        stale.unlink()
    begun = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="tvoice-bench-"))
    from _audio import make_user_audio

    audio_path = work / "user.npz"
    audio_info = make_user_audio(audio_path)
    say(
        f"user audio: {audio_info['utterances']} utterances, "
        f"{audio_info['speech_s']:.1f} s of speech in a {audio_info['loop_s']:.1f} s loop"
    )

    fig: dict[str, dict[str, list[float]]] = {"tvoice": {}, "livekit": {}}
    versions: dict[str, dict[str, str]] = {"tvoice": {}, "livekit": {}}
    raw: dict[str, Any] = {"tvoice": {}, "livekit": {}}
    density_trials: dict[str, list[dict[int, dict[str, Any]]]] = {"tvoice": [], "livekit": []}

    def add(side: str, key: str, value: float) -> None:
        fig[side].setdefault(key, []).append(value)

    def order(rep: int) -> tuple[str, str]:
        return ("livekit", "tvoice") if rep % 2 == 0 else ("tvoice", "livekit")

    for rep in range(args.reps):
        for side in order(rep):
            if "turns" in only:
                r = runner.run_clean(
                    side,
                    "turns",
                    {"turns": params["turns"], "warmup": params["turn_warmup"], "seed": rep},
                )
                versions[side] = r["versions"]
                s = per_rep_turns(r)
                for k, name in (
                    ("median", "turn_median"),
                    ("p95", "turn_p95"),
                    ("first", "turn_first"),
                    ("last", "turn_last"),
                    ("eos_median", "eos_median"),
                ):
                    add(side, name, s[k])
                raw[side].setdefault("turns", []).append(s)
                say(
                    f"[rep {rep + 1}] {side:8s} per-turn overhead: median {s['median']:.2f} ms, "
                    f"p95 {s['p95']:.2f} ms (first 25: {s['first']:.2f}, "
                    f"last 25: {s['last']:.2f})"
                )
            if "interrupt" in only:
                r = runner.run_clean(side, "interrupt", {"trials": params["trials"], "seed": rep})
                versions[side] = r["versions"]
                s = per_rep_interrupt(r)
                add(side, "int_median", s["median"])
                add(side, "int_p95", s["p95"])
                raw[side].setdefault("interrupt", []).append(s)
                say(
                    f"[rep {rep + 1}] {side:8s} interruption: median {s['median']:.2f} ms, "
                    f"p95 {s['p95']:.2f} ms"
                )
            if "memory" in only:
                r = runner.run_clean(side, "memory", {"n": params["memory_n"]})
                versions[side] = r["versions"]
                add(side, "rss_one", r["rss_one_kib"] / 1024)
                add(side, "rss_n", r["rss_n_kib"] / 1024)
                add(side, "per_session", r["per_session_kib"])
                raw[side].setdefault("memory", []).append(r)
                say(
                    f"[rep {rep + 1}] {side:8s} memory: one session "
                    f"{r['rss_one_kib'] / 1024:.1f} MiB, {r['n']} sessions "
                    f"{r['rss_n_kib'] / 1024:.1f} MiB, "
                    f"{r['per_session_kib'] / 1024:.2f} MiB per session"
                )

    if "density" in only:
        hints: dict[str, int | None] = {"tvoice": None, "livekit": None}
        for rep in range(args.reps):
            for side in order(rep):

                def trial(n: int, side: str = side) -> dict[str, Any]:
                    r = runner.run_clean(
                        side,
                        "density",
                        {
                            "n": n,
                            "audio": str(audio_path),
                            "warmup": params["density_warmup"],
                            "seconds": params["density_seconds"],
                        },
                        timeout=120 + n,
                    )
                    versions[side] = r["versions"]
                    say(
                        f"    {side:8s} N={n:3d}: {'pass' if passes(r) else 'fail'}  "
                        f"p99 lateness in {r['input_lateness_ms']['p99']:.1f} ms, "
                        f"out {r['output_lateness_ms']['p99']:.1f} ms, "
                        f"VAD backlog {r['vad_backlog_s_per_session']:.2f} s, "
                        f"CPU {r['cpu_ms_per_session_second']:.1f} ms per session-second"
                    )
                    return r

                best, tried = density_search(trial, hint=hints[side], max_n=params["density_max_n"])
                ref = tried.get(REFERENCE_N)
                if ref is not None and passes(ref):
                    add(side, "cpu_ref", ref["cpu_ms_per_session_second"])
                hints[side] = best
                density_trials[side].append(tried)
                add(side, "density_n", best)
                if best in tried:
                    r = tried[best]
                    add(side, "cpu_ms", r["cpu_ms_per_session_second"])
                    add(side, "out_p99", r["output_lateness_ms"]["p99"])
                    add(side, "in_p99", r["input_lateness_ms"]["p99"])
                say(f"[rep {rep + 1}] {side:8s} density: {best} sessions on one core")

    def med(side: str, key: str) -> float | None:
        values = fig[side].get(key)
        return statistics.median(values) if values else None

    targets: dict[str, bool | None] = {}
    tv_turn, lk_turn = med("tvoice", "turn_median"), med("livekit", "turn_median")
    if tv_turn is not None and lk_turn is not None:
        targets["turn"] = tv_turn <= 1.0 and tv_turn < lk_turn
    tv_int, lk_int = med("tvoice", "int_median"), med("livekit", "int_median")
    if tv_int is not None and lk_int is not None:
        targets["interrupt"] = tv_int <= 20.0 and tv_int < lk_int
    tv_n, lk_n = med("tvoice", "density_n"), med("livekit", "density_n")
    if tv_n is not None and lk_n is not None:
        targets["density"] = tv_n >= 2 * lk_n
    tv_mem, lk_mem = med("tvoice", "per_session"), med("livekit", "per_session")
    if tv_mem is not None and lk_mem is not None:
        targets["memory"] = tv_mem <= 0.5 * lk_mem

    # LiveKit's figures beside the previous run's: a target judged against a figure that moved
    # would say more about the anchor than about tvoice.
    anchor_path = out.with_suffix(".anchor.json")
    previous = _anchor.load(anchor_path)
    compared = _anchor.compare(fig["livekit"], previous)
    for target, key in TARGET_FIGURES.items():
        if compared.get(key, {}).get("moved"):
            targets[target] = None

    worker: dict[str, Any] | None = None
    if "worker" in only:
        worker = run_workers(
            livekit_python=args.livekit_python, rooms=8 if quick else 20, reps=args.reps
        )
        if not worker.get("skipped"):
            import bench_worker

            worker_md = out.parent / "worker.md"
            worker_md.write_text(bench_worker.section(worker, level=1))
            worker_md.with_suffix(".json").write_text(json.dumps(worker, indent=1))

    profiles: dict[str, Any] = {}
    if not args.no_profile:
        profiles = profile_misses(runner, targets, params, audio_path, work, med)

    data = {
        "machine": machine(),
        "versions": versions,
        "params": params,
        "figures": fig,
        "targets": targets,
        "raw": raw,
        "density_trials": {
            s: [{str(n): r for n, r in t.items()} for t in reps]
            for s, reps in density_trials.items()
        },
        "profiles": profiles,
        "user_audio": audio_info,
        "bench_seconds": time.perf_counter() - begun,
        "foreign_max": max(runner.foreign_seen, default=0.0),
        "dirty_kept": runner.dirty_kept,
        "environments": environments,
        "anchor": {
            "file": _anchor.shown_path(anchor_path),
            "previous": previous,
            "compared": compared,
        },
        **({"worker": worker} if worker is not None else {}),
    }
    report = write_keeping(out, build_report(data))
    out.with_suffix(".json").write_text(json.dumps(data, indent=1))
    if not quick:  # a --quick run's smaller sizes would make a poor anchor for the next run
        anchor_path.write_text(json.dumps(_anchor.record(data, previous), indent=1) + "\n")
    say("")
    say(report)
    say(
        f"(written to {out}; raw figures in {out.with_suffix('.json')}; "
        f"the sides' logs in {out.with_suffix('.log')}; "
        f"took {data['bench_seconds'] / 60:.1f} min)"
    )


def run_workers(*, livekit_python: str, rooms: int, reps: int) -> dict[str, Any]:
    """The worker figures (``bench_worker.py``: dispatch latency, idle job-process memory), or
    ``{"skipped": reason}`` when there is no livekit-server to run them on."""
    import bench_worker

    try:
        return bench_worker.run(livekit_python=livekit_python, rooms=rooms, reps=reps)
    except RuntimeError as e:  # no server binary, or a server that would not start
        say(f"worker benchmark skipped: {e}")
        return {"skipped": str(e)}


def profile_misses(
    runner: Runner,
    targets: dict[str, bool | None],
    params: dict[str, Any],
    audio_path: Path,
    work: Path,
    med: Callable[[str, str], float | None],
) -> dict[str, Any]:
    """Run tvoice again under pyinstrument for each scenario whose target it missed."""
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        say("pyinstrument is not installed: no profiles")
        return {}
    jobs: list[tuple[str, str, dict[str, Any], str]] = []
    if targets.get("turn") is False:
        jobs.append(
            (
                "per-turn overhead",
                "turns",
                {
                    "turns": params["turns"],
                    "warmup": params["turn_warmup"],
                    "profile_interval": 0.0002,
                },
                f"The turns scenario ({params['turns']} turns in one session) under "
                "pyinstrument (0.2 ms sampling); the figures count only the samples taken "
                "between a turn's commit and its first output frame.",
            )
        )
    if targets.get("interrupt") is False:
        jobs.append(
            (
                "interruption",
                "interrupt",
                {"trials": params["trials"], "profile_interval": 0.0002},
                "The interruption scenario under pyinstrument (0.2 ms sampling); "
                "only the samples between "
                "the start of speech and clear_buffer count.",
            )
        )
    if targets.get("density") is False:
        lk_n = med("livekit", "density_n") or 8
        n = max(1, int(lk_n))
        jobs.append(
            (
                "density",
                "density",
                {
                    "n": n,
                    "audio": str(audio_path),
                    "warmup": params["density_warmup"],
                    "seconds": params["density_seconds"],
                },
                f"The density scenario at N={n} sessions (LiveKit's largest passing N) "
                "under pyinstrument "
                "(0.5 ms sampling), the whole process.",
            )
        )
    if targets.get("memory") is False:
        jobs.append(
            (
                "memory",
                "memory",
                {"n": params["memory_n"], "tracemalloc": True},
                "The memory scenario under tracemalloc: the Python allocations still live that "
                f"grew from one session to {params['memory_n']}, per added session.",
            )
        )
    out: dict[str, Any] = {}
    for name, scenario, p, context in jobs:
        entry: dict[str, Any] = {"context": context}
        for side in ("tvoice", "livekit"):
            tree = work / f"profile-{scenario}-{side}.txt"
            say(f"profiling {side}: {name}")
            extra = {} if p.get("tracemalloc") else {"profile": str(tree)}
            try:
                r = runner.run(side, scenario, {**p, **extra}, timeout=400)
            except (SideFailed, subprocess.TimeoutExpired) as e:
                say(f"  profile failed: {e}")
                continue
            if r.get("alloc") is not None:
                entry[side] = {"alloc": r["alloc"], "per_session_kib": r["per_session_kib"]}
                continue
            prof = r.get("profile")
            if not prof:
                continue
            keep = HERE / "results" / f"profile-{scenario}-{side}.txt"
            try:
                keep.write_text(tree.read_text())
                prof["tree_file"] = str(keep.relative_to(ROOT))
            except OSError:
                pass
            entry[side] = prof
        if "tvoice" in entry:
            out[name] = entry
    return out


if __name__ == "__main__":
    main()
