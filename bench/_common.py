"""What both sides of the comparison share: no framework imports, only the standard library and
numpy (both environments have it).

``tvoice_side.py`` runs in tvoice's environment and ``livekit_side.py`` in LiveKit Agents' own;
each imports this module by path (it sits beside them), so the inputs, the timing helpers and
the result format are the same code on both sides. A side prints exactly one line starting with
``BENCH_RESULT`` (JSON after it) on stdout; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import importlib
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RESULT_PREFIX = "BENCH_RESULT "
BENCH_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
REPO_DIR = os.path.dirname(BENCH_DIR.rstrip(os.sep)) + os.sep
IN_RATE = 16000  # what the user's microphone sends
OUT_RATE = 24000  # what the TTS fakes produce
FRAME = 0.02  # 20 ms frames, in and out
IN_SAMPLES = round(IN_RATE * FRAME)
OUT_SAMPLES = round(OUT_RATE * FRAME)
OUTPUT_BUFFER = 0.2  # seconds an output sink queues before capture_frame waits (like a device)


# -- process setup ----------------------------------------------------------------------------


def pin_to_cpu(cpu: int | None) -> int | None:
    """Run this process (and every thread it starts later) on one core."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    chosen = cpu if cpu in allowed else allowed[-1]
    os.sched_setaffinity(0, {chosen})
    return chosen


def freeze_like_a_job_process(*modules: str) -> None:
    """Do what each framework's job process does before its first call: import its plugins,
    collect, and move every object alive into the collector's permanent generation
    (``gc.freeze()``: tvoice after the prewarm, LiveKit Agents at the end of its forkserver's
    preload). A full collection then walks only the sessions' own objects. Without this, a
    LiveKit process (158,000 tracked objects after its imports) paused 55-96 ms in full
    collections during the measured seconds, its audio frames waited as long, and its density
    search ended at 3 sessions: a cost its job processes do not pay."""
    for module in modules:
        importlib.import_module(module)
    gc.collect()
    gc.freeze()


def rss_kib() -> int:
    """Resident memory of this process (VmRSS), KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def settle_memory() -> None:
    """Collect garbage so RSS readings compare live objects, not pending garbage."""
    for _ in range(3):
        gc.collect()


def parse_args(doc: str) -> tuple[str, dict[str, Any]]:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("scenario", choices=["turns", "interrupt", "density", "memory"])
    parser.add_argument("--params", default="{}", help="JSON object of scenario parameters")
    args = parser.parse_args()
    return args.scenario, json.loads(args.params)


def emit_result(result: dict[str, Any]) -> None:
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


# -- statistics -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in [0, 100]."""
    if not values:
        return math.nan
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarize(values: list[float]) -> dict[str, float]:
    """n, median, p95, p99, max and mean of ``values``."""
    return {
        "n": len(values),
        "median": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
        "mean": sum(values) / len(values) if values else math.nan,
    }


# -- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Utterance:
    start: int  # first sample of speech in the loop
    end: int  # sample after the last one of speech
    text: str


@dataclass(frozen=True)
class UserAudio:
    """The user's side of a call for the density scenario: a loop of speech and silence at
    16 kHz, and where each utterance is, so the scripted STT can follow the audio."""

    samples: np.ndarray  # int16, mono
    utterances: tuple[Utterance, ...]

    @classmethod
    def load(cls, path: str | Path) -> UserAudio:
        with np.load(path) as data:
            samples = data["samples"].astype(np.int16)
            spans = data["spans"].tolist()
            texts = [str(t) for t in data["texts"]]
        utterances = tuple(
            Utterance(int(s), int(e), t) for (s, e), t in zip(spans, texts, strict=True)
        )
        return cls(samples, utterances)

    def frames(self, offset: int) -> IterFrames:
        return IterFrames(self.samples, offset)

    def onset_frames(self, offset: int) -> set[int]:
        """Frame indexes (of a feed starting ``offset`` samples in, over 10 minutes) holding an
        utterance's start."""
        loop = len(self.samples)
        out = set()
        for u in self.utterances:
            first = (u.start - offset) % loop
            for rep in range(0, 10 * 60 * IN_RATE // loop + 1):
                out.add((first + rep * loop) // IN_SAMPLES)
        return out


class IterFrames:
    """Endless 20 ms int16 blocks of the loop, starting ``offset`` samples in."""

    def __init__(self, samples: np.ndarray, offset: int) -> None:
        # Twice the loop, so every block is one slice (no wrap-around copies).
        self._doubled = np.concatenate([samples, samples])
        self._n = len(samples)
        self._pos = offset % self._n

    def next_block(self) -> np.ndarray:
        block = self._doubled[self._pos : self._pos + IN_SAMPLES]
        self._pos = (self._pos + IN_SAMPLES) % self._n
        return block


def session_offsets(n: int, loop_samples: int, seed: int = 7) -> list[int]:
    """Where in the loop each session's user starts, so N sessions do not speak in lockstep;
    the same list on both sides."""
    rng = random.Random(seed)
    step = IN_SAMPLES
    return [rng.randrange(0, loop_samples // step) * step for _ in range(n)]


class TranscriptFollower:
    """Decides the scripted STT's events from the audio it has been fed (by sample count),
    so both frameworks' STTs say the same thing at the same audio position: START_OF_SPEECH
    at an utterance's start, FINAL_TRANSCRIPT then END_OF_SPEECH ``delay`` seconds after its end.
    """

    def __init__(self, audio: UserAudio, offset: int, delay: float = 0.2) -> None:
        self._audio = audio
        self._loop = len(audio.samples)
        self._pos = offset % self._loop
        self._delay = round(delay * IN_RATE)
        self._events: list[tuple[int, str, str]] = []
        for u in audio.utterances:
            self._events.append((u.start, "start", u.text))
            self._events.append(((u.end + self._delay) % self._loop, "final", u.text))
        self._events.sort()

    def advance(self, samples: int) -> list[tuple[str, str]]:
        """Feed ``samples`` more samples; the events whose position was crossed, in order."""
        start, end = self._pos, self._pos + samples
        self._pos = end % self._loop
        out: list[tuple[int, str, str]] = []
        for at, kind, text in self._events:
            if start <= at < end or start <= at + self._loop < end:
                out.append((at if at >= start else at + self._loop, kind, text))
        out.sort()
        return [(kind, text) for _, kind, text in out]


@functools.cache
def tone(seconds: float, rate: int = OUT_RATE) -> list[np.ndarray]:
    """A quiet 220 Hz tone in 20 ms blocks: what the TTS fakes "say" (one copy per process,
    shared by every session, so the fakes add no memory per session)."""
    total = round(seconds * rate)
    t = np.arange(total, dtype=np.float64) / rate
    samples = (np.sin(2 * np.pi * 220 * t) * 3000).astype(np.int16)
    block = round(rate * FRAME)
    return [samples[i : i + block] for i in range(0, total, block)]


# -- real-time playout and input pacing, as plain numbers ------------------------------------


class LatenessLog:
    """Lateness of frames against their due times (seconds), kept after ``since``."""

    def __init__(self) -> None:
        self.since = math.inf
        self.values: list[float] = []

    def add(self, due: float, actual: float) -> None:
        if due >= self.since:
            self.values.append(max(0.0, actual - due))


def perf() -> float:
    return time.perf_counter()


def dist_versions(*names: str) -> dict[str, str]:
    """Installed versions of these distributions (those that are missing are left out)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in names:
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def profile_summary(
    records: list[tuple[list[str], float]],
    *,
    top: int = 15,
    inclusive_in: str = "tvoice",
    windows: list[tuple[float, float]] | None = None,
    origin: float = 0.0,
) -> dict[str, Any]:
    """Hot spots from pyinstrument's frame records (stack of identifiers, seconds per sample).

    ``self``: where the samples were taken, by function and line executing; ``inclusive``: time
    under each function (each sample counted once per function). Shares are of the busy time:
    the samples taken while the event loop waited in epoll are left out of the total.
    Inclusive times are for the framework's functions only (path containing ``inclusive_in``).

    With ``windows`` (perf_counter intervals) only the time sampled inside them counts; a
    record's time is ``origin`` (perf_counter when profiling started) plus the time sampled
    before it, which tracks the wall clock to within a sampling interval.
    """
    if windows:
        spans = sorted(windows)
        kept: list[tuple[list[str], float]] = []
        t, i = origin, 0
        for stack, seconds in records:
            # pyinstrument merges consecutive samples of one stack: a record may straddle
            # several windows, so keep the part of it that falls inside them.
            start, t = t, t + seconds
            while i < len(spans) and spans[i][1] <= start:
                i += 1
            inside, j = 0.0, i
            while j < len(spans) and spans[j][0] < t:
                inside += max(0.0, min(t, spans[j][1]) - max(start, spans[j][0]))
                j += 1
            if inside > 0:
                kept.append((stack, inside))
        records = kept
    idle = {"epoll.poll", "poll", "select", "epoll.select"}
    busy = 0.0
    self_time: dict[str, float] = {}
    incl: dict[str, float] = {}
    by_package: dict[str, float] = {}
    for stack, seconds in records:
        leaf = stack[-1] if stack else ""
        if leaf.split("\x00", 1)[0] in idle:
            continue
        busy += seconds
        key = _frame_key(leaf, with_line=True)
        self_time[key] = self_time.get(key, 0.0) + seconds
        group = _package(stack)
        by_package[group] = by_package.get(group, 0.0) + seconds
        seen = set()
        for ident in stack[1:]:
            fn = _frame_key(ident, with_line=False)
            path = ident.split("\x00")[1] if "\x00" in ident else ""
            if inclusive_in not in path or path.startswith(BENCH_DIR):
                continue
            if fn not in seen:
                seen.add(fn)
                incl[fn] = incl.get(fn, 0.0) + seconds

    def ranked(table: dict[str, float]) -> list[dict[str, Any]]:
        rows = sorted(table.items(), key=lambda kv: -kv[1])[:top]
        return [{"where": k, "seconds": v, "share": v / busy if busy else 0.0} for k, v in rows]

    return {
        "busy_s": busy,
        "self": ranked(self_time),
        "inclusive": ranked(incl),
        "by_package": ranked(by_package),
    }


_PACKAGES = [
    ("/tvoice_plugins/", "tvoice_plugins (Python)"),
    ("/tvoice/", "tvoice runtime"),
    ("/livekit/agents/", "livekit-agents runtime"),
    ("/livekit/plugins/", "livekit plugins (Python)"),
    ("/livekit/", "livekit rtc/protocol"),
    ("/trio/", "trio (scheduler, channels)"),
    ("/asyncio/", "asyncio (event loop)"),
    ("/onnxruntime/", "onnxruntime (Python wrapper)"),
    ("/numpy/", "numpy"),
    ("/attr/", "attrs"),
    ("/pydantic", "pydantic"),
    ("/opentelemetry/", "opentelemetry"),
]


def _package(stack: list[str]) -> str:
    """Who a sample's time belongs to: the leaf's package. A native leaf (no file) or a
    standard-library one goes to the package of the nearest caller that has one, and
    onnxruntime's native run is named as such."""
    for ident in reversed(stack):
        parts = ident.split("\x00")
        path = parts[1] if len(parts) > 1 else ""
        if path == "<built-in>":
            if parts[0].endswith(".run") and "pybind11" in parts[0]:
                return "onnxruntime (native inference)"
            continue
        if path.startswith(BENCH_DIR):
            return "bench harness (fakes, feeders, sinks)"
        if path.startswith("<attrs generated methods "):
            # attrs' generated __init__/__eq__: the class's module says whose it is
            path = "/" + path.split()[-1].rstrip(">").split(".")[0] + "/"
        for marker, name in _PACKAGES:
            if marker in path:
                return name
    return "python stdlib / other"


def _frame_key(ident: str, *, with_line: bool) -> str:
    parts = ident.split("\x01")
    func, path, first = [*parts[0].split("\x00"), "", ""][:3]
    if "pybind11" in func and func.endswith(".run"):
        func = "InferenceSession.run [onnxruntime, native]"
    line = first
    for extra in parts[1:]:
        if extra.startswith("l") and with_line:
            line = extra[1:]
    short = path
    if path.startswith(REPO_DIR):
        short = path[len(REPO_DIR) :]
    for marker in ("/site-packages/", "/lib/python3.11/", "/lib/python3"):
        if marker in short:
            short = short.split(marker, 1)[1]
            break
    return f"{func} ({short}:{line})"


class ForeignLoad:
    """How much of this process's core other processes used over a stretch of time.

    The machine may be shared: a trial whose core was busy with someone else's work measured
    that work, not the framework. Reads the core's busy time from /proc/stat and this process's
    CPU time (all threads); the difference, over the elapsed time, is the foreign share.
    """

    def __init__(self, cpu: int | None) -> None:
        self.cpu = cpu
        self._t0 = perf()
        self._busy0 = self._core_busy()
        self._own0 = time.process_time()

    def _core_busy(self) -> float | None:
        if self.cpu is None:
            return None
        try:
            with open("/proc/stat") as f:
                for line in f:
                    if line.startswith(f"cpu{self.cpu} "):
                        v = [int(x) for x in line.split()[1:]]
                        # user nice system idle iowait irq softirq steal
                        return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
        return None

    def share(self) -> float:
        busy = self._core_busy()
        if busy is None or self._busy0 is None:
            return 0.0
        wall = perf() - self._t0
        own = time.process_time() - self._own0
        return max(0.0, (busy - self._busy0 - own) / wall) if wall > 0 else 0.0


def allocation_diff(before: Any, after: Any, per: int, top: int = 12) -> list[dict[str, Any]]:
    """tracemalloc: the Python allocations still live that grew from ``before`` to ``after``, per
    ``per`` added sessions (KiB and blocks each): all lines together, each package's lines
    together, then the ``top`` lines."""
    stats = [stat for stat in after.compare_to(before, "lineno") if stat.size_diff > 0]

    def row(where: str, size: float, count: float) -> dict[str, Any]:
        return {
            "where": where,
            "kib_per_session": size / 1024 / per,
            "blocks_per_session": count / per,
        }

    rows = [row("all lines", sum(s.size_diff for s in stats), sum(s.count_diff for s in stats))]
    groups: dict[str, list[float]] = {}
    for stat in stats:
        group = _package([f"x\x00{stat.traceback[0].filename}\x000"])
        acc = groups.setdefault(group, [0.0, 0.0])
        acc[0] += stat.size_diff
        acc[1] += stat.count_diff
    for group, (size, count) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        rows.append(row(f"all of {group}", size, count))
    for stat in stats[:top]:
        frame = stat.traceback[0]
        where = frame.filename
        if where.startswith(REPO_DIR):
            where = where[len(REPO_DIR) :]
        for marker in ("/site-packages/", "/lib/python3.11/"):
            if marker in where:
                where = where.split(marker, 1)[1]
                break
        rows.append(row(f"{where}:{frame.lineno}", stat.size_diff, stat.count_diff))
    return rows
