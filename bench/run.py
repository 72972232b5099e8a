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

How each figure is taken, and what the report shows beside it: ``_report.py``.
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
from _report import (  # noqa: E402
    FOREIGN_LIMIT,
    FOREIGN_TRIES,
    REFERENCE_N,
    TARGET_FIGURES,
    build_report,
    passes,
)
from _report_file import write_keeping  # noqa: E402

FOREIGN_GIVE_UP = 4  # after this many contaminated runs in a row the machine is busy: stop retrying


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
