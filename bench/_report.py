"""The side-by-side report (``bench/results/latest.md``) from ``run.py``'s figures: one table,
LiveKit's figures beside the previous run's (``_anchor.py``), the density trials, and how each
figure is taken. That last part is this docstring from here on.

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

import statistics
from typing import Any

import _anchor

LATENESS_LIMIT_MS = 20.0
VAD_BACKLOG_LIMIT_S = 1.5  # metrics come per 1.024 s of audio: below this the VAD keeps up
FOREIGN_LIMIT = 0.05  # a run whose core other processes used more than this is run again
FOREIGN_TRIES = 3
REFERENCE_N = 16  # the doubling search tries it: CPU per session-second compared at equal load

# The figure each target compares with LiveKit's: a target is not judged when that figure moved.
TARGET_FIGURES = {
    "turn": "turn_median",
    "interrupt": "int_median",
    "density": "density_n",
    "memory": "per_session",
}


def passes(r: dict[str, Any]) -> bool:
    return (
        r["input_lateness_ms"]["p99"] < LATENESS_LIMIT_MS
        and r["output_lateness_ms"]["p99"] < LATENESS_LIMIT_MS
        and r["vad_backlog_s_per_session"] < VAD_BACKLOG_LIMIT_S
        and r["replies"] > 0
    )


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
