"""tvoice vs LiveKit Agents workers on one real LiveKit server: dispatch latency, idle memory.

Starts ``livekit-server`` on loopback (the binary ``tvoice.testing._livekit_server`` finds, keys
``devkey: secret``), then, one framework after the other on that server, starts its worker on the
same agent program (``worker_agent_tvoice.py`` with ``tvoice worker``,
``worker_agent_livekit.py start`` in LiveKit Agents' environment): explicit dispatch to
``agent_name="bench-worker"``, the same number of warm idle processes, each prewarmed with its
framework's Silero VAD. Results print as a markdown table and are written to
``bench/results/worker.md`` and ``worker.json``; ``run.py`` adds the same section to its report.

How each figure is taken (both frameworks alike):

* dispatch latency: rooms are created one after another with an explicit agent dispatch
  (``CreateRoomRequest(agents=[RoomAgentDispatch(agent_name=...)])``). The worker's request
  handler, which the framework calls when the server's availability request arrives, notes
  ``time.time()`` and accepts; the entrypoint notes ``time.time()`` on its first line. The figure
  is the difference (two processes, one clock). Each room's entrypoint joins the room; then the
  room is deleted, the job process is waited for (up to 10 s) to exit and the pool to be back to
  its warm idle processes before the next room, so every job starts in a warm process on a quiet
  worker.
  A warm-up room (retried until the worker is registered) comes first and is not counted;
* also from the room-creating API call to the entrypoint (server's dispatch included);
* idle memory: once the worker is registered and its idle processes have prewarmed (each
  prewarm notes its pid), and before any job, VmRSS, and PSS and USS from
  ``/proc/<pid>/smaps_rollup``, of each idle job process (the pids that noted a prewarm, checked
  to be descendants of the worker), of the worker process itself, and of the worker's other
  descendants (helpers such as LiveKit's multiprocessing forkserver, which forks the job
  processes and shares its pages with them copy-on-write: PSS splits those pages among the
  sharers, so the sum of PSS over all the worker's processes is what the worker costs the
  machine). Three samples 1 s apart, the median kept.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import _common as C  # noqa: E402
from _machine import machine  # noqa: E402

AGENT_NAME = "bench-worker"
SIDES = ("tvoice", "livekit")
LABELS = {"tvoice": "tvoice", "livekit": "LiveKit Agents"}
WORKER_READY_TIMEOUT = 120.0  # start, register, prewarm the idle processes (model loads)
REGISTER_TIMEOUT = 30.0
ENTRY_TIMEOUT = 20.0  # one dispatch to its entrypoint
WARMUP_TRIES = 4  # a dispatch made before the worker registered is dropped by the server
CONNECT_TIMEOUT = 20.0
JOB_EXIT_TIMEOUT = 10.0  # after its room is deleted; a job still running is noted, not waited for
REFILL_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
POLL = 0.01


def say(*parts: object) -> None:
    print(*parts, flush=True)


# -- the LiveKit server -----------------------------------------------------------------------


@dataclass
class Server:
    url: str
    http_url: str
    api_key: str
    api_secret: str
    log_path: Path


@contextlib.contextmanager
def livekit_server(folder: Path) -> Iterator[Server]:
    """livekit-server on 127.0.0.1 (tvoice.testing._livekit_server), stopped on exit."""
    from tvoice.testing._livekit_server import run_livekit_server

    with run_livekit_server(folder) as server:
        yield Server(
            server.url, server.http_url, server.api_key, server.api_secret, server.log_path
        )


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


# -- processes --------------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of ``pid``, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # a zombie is gone, whatever its parent has not reaped
        return None
    return int(fields[1]), int(fields[19])


def alive(pid: int) -> bool:
    return proc_stat(pid) is not None


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (children, their children...)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st is not None:
                parents.setdefault(st[0], []).append(int(entry))
    out: list[int] = []
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def helper_kind(pid: int) -> str:
    """What a worker's descendant that never prewarmed is, from its command line."""
    cmd = cmdline(pid)
    if "multiprocessing.forkserver" in cmd:
        return "multiprocessing forkserver"
    if "multiprocessing.resource_tracker" in cmd:
        return "multiprocessing resource tracker"
    if "inference_proc" in cmd:
        return "inference process"
    return cmd[:100] or "?"


def memory_kib(pid: int) -> dict[str, int] | None:
    """VmRSS, and PSS and USS (Private_Clean + Private_Dirty) from smaps_rollup, in KiB."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss"] = int(line.split()[1])
        private = 0
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key == "Pss":
                out["pss"] = int(rest.split()[0])
            elif key in ("Private_Clean", "Private_Dirty"):
                private += int(rest.split()[0])
        out["uss"] = private
    except (OSError, ValueError, IndexError):
        return None
    return out if {"rss", "pss"} <= out.keys() else None


# -- the events the agent files write ---------------------------------------------------------


@dataclass
class Event:
    kind: str
    room: str
    job_id: str
    at: float
    pid: int


@dataclass
class Events:
    """The lines the agent files append (``KIND ROOM JOB_ID UNIX_TIME PID``), read as they come."""

    path: Path
    items: list[Event] = field(default_factory=list)
    _offset: int = 0
    _partial: bytes = b""

    def refresh(self) -> list[Event]:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return self.items
        self._offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            parts = line.decode().split()
            if len(parts) == 5:
                self.items.append(
                    Event(parts[0], parts[1], parts[2], float(parts[3]), int(parts[4]))
                )
        return self.items

    def find(self, kind: str, room: str | None = None) -> list[Event]:
        return [e for e in self.refresh() if e.kind == kind and (room is None or e.room == room)]

    def idle_pids(self) -> list[int]:
        """Processes that prewarmed, took no job and are still alive."""
        busy = {e.pid for e in self.find("entry")}
        return [e.pid for e in self.find("prewarm") if e.pid not in busy and alive(e.pid)]


# -- one framework's worker -------------------------------------------------------------------


class WorkerFailed(RuntimeError):
    pass


@dataclass
class Worker:
    side: str
    proc: subprocess.Popen[bytes]
    events: Events
    log_path: Path
    seen: set[int] = field(default_factory=set)  # every descendant ever seen, to clean up

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise WorkerFailed(
                f"{self.side} worker exited with status {self.proc.returncode}:\n"
                f"{tail(self.log_path)}"
            )

    def family(self) -> list[int]:
        found = descendants(self.proc.pid)
        self.seen.update(found)
        return found

    def wait(self, what: str, timeout: float, ready: Any) -> Any:
        """Poll ``ready()`` until it returns something truthy, within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            self.family()
            value = ready()
            if value:
                return value
            if time.monotonic() > deadline:
                raise WorkerFailed(
                    f"{self.side}: {what} did not happen within {timeout:.0f} s;"
                    f" worker log:\n{tail(self.log_path)}"
                )
            time.sleep(POLL)

    def log_has(self, needle: str) -> bool:
        try:
            return needle in self.log_path.read_text(errors="replace").lower()
        except OSError:
            return False


def worker_command(side: str, *, livekit_python: str, tvoice_command: str) -> list[str]:
    if side == "tvoice":
        return [tvoice_command, "worker", str(HERE / "worker_agent_tvoice.py")]
    return [livekit_python, str(HERE / "worker_agent_livekit.py"), "start"]


@contextlib.contextmanager
def run_worker(
    side: str, server: Server, folder: Path, *, idle: int, command: list[str]
) -> Iterator[Worker]:
    """Start a framework's worker in a process group of its own; stop it and every process it
    started on exit (SIGTERM, bounded, then SIGKILL to whatever is left)."""
    from tvoice.testing._livekit_server import free_loopback_port

    events_path = folder / f"events-{side}.txt"
    log_path = folder / f"worker-{side}.log"
    env = {
        **os.environ,
        "LIVEKIT_URL": server.url,
        "LIVEKIT_API_KEY": server.api_key,
        "LIVEKIT_API_SECRET": server.api_secret,
        "BENCH_WORKER_EVENTS": str(events_path),
        "BENCH_WORKER_HTTP_PORT": str(free_loopback_port()),
        "BENCH_WORKER_IDLE": str(idle),
        "PYTHONUNBUFFERED": "1",
    }
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(side, proc, Events(events_path), log_path)
    try:
        yield worker
    finally:
        stop_worker(worker)


def stop_worker(worker: Worker) -> None:
    proc = worker.proc
    worker.family()
    starts = {pid: st[1] for pid in worker.seen if (st := proc_stat(pid)) is not None}
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            say(
                f"  ({worker.side} worker still running {STOP_TIMEOUT:.0f} s after SIGTERM: killed)"
            )
            proc.kill()
            proc.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # its process group: anything it left behind
    for pid, start in starts.items():  # descendants that left the group; pid reuse is checked
        st = proc_stat(pid)
        if st is not None and st[1] == start:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def measure_idle_memory(worker: Worker, idle: int, samples: int = 3) -> dict[str, Any]:
    """Memory of the worker, its idle job processes and its helpers (median of ``samples``)."""
    taken: list[dict[str, Any]] = []
    for i in range(samples):
        if i:
            time.sleep(1.0)
        family = worker.family()
        jobs = [pid for pid in worker.events.idle_pids() if pid in family]
        if len(jobs) < idle:
            raise WorkerFailed(f"{worker.side}: {len(jobs)} idle job processes, expected {idle}")
        helpers = [pid for pid in family if pid not in jobs]
        snap: dict[str, Any] = {"worker": memory_kib(worker.proc.pid), "jobs": {}, "helpers": {}}
        for pid in jobs:
            snap["jobs"][pid] = memory_kib(pid)
        for pid in helpers:
            snap["helpers"][pid] = {"kind": helper_kind(pid), **(memory_kib(pid) or {})}
        taken.append(snap)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    def job_mean(snap: dict[str, Any], key: str) -> float:
        return statistics.fmean(m[key] for m in snap["jobs"].values()) / 1024

    def helper_sum(snap: dict[str, Any], key: str) -> float:
        return sum(h.get(key, 0) for h in snap["helpers"].values()) / 1024

    def total_pss(snap: dict[str, Any]) -> float:
        return (
            snap["worker"]["pss"] / 1024 + job_mean(snap, "pss") * len(snap["jobs"])
        ) + helper_sum(snap, "pss")

    last = taken[-1]
    return {
        "job_rss_mib": med([job_mean(s, "rss") for s in taken]),
        "job_pss_mib": med([job_mean(s, "pss") for s in taken]),
        "job_uss_mib": med([job_mean(s, "uss") for s in taken]),
        "worker_rss_mib": med([s["worker"]["rss"] / 1024 for s in taken]),
        "worker_pss_mib": med([s["worker"]["pss"] / 1024 for s in taken]),
        "helpers_pss_mib": med([helper_sum(s, "pss") for s in taken]),
        "helpers_rss_mib": med([helper_sum(s, "rss") for s in taken]),
        "total_pss_mib": med([total_pss(s) for s in taken]),
        "job_processes": len(last["jobs"]),
        "helpers": [
            {"pid": pid, "kind": h["kind"], "cmdline": cmdline(pid)[:200]}
            for pid, h in last["helpers"].items()
        ],
        "samples": [
            {
                "worker": s["worker"],
                "jobs": {str(k): v for k, v in s["jobs"].items()},
                "helpers": {str(k): v for k, v in s["helpers"].items()},
            }
            for s in taken
        ],
    }


async def dispatch_rounds(
    worker: Worker, server: Server, *, rooms: int, idle: int, tag: str
) -> dict[str, Any]:
    """The warm-up room, then ``rooms`` measured ones, one at a time."""
    from livekit import api

    out: dict[str, Any] = {"rooms": []}
    async with api.LiveKitAPI(server.http_url, server.api_key, server.api_secret) as lk:

        async def poll(what: str, within: float, ready: Any) -> Any:
            deadline = time.monotonic() + within
            while True:
                worker.check()
                value = ready()
                if value or time.monotonic() > deadline:
                    if not value and what:
                        raise WorkerFailed(f"{worker.side}: {what} within {within:.0f} s")
                    return value
                await asyncio.sleep(POLL)

        async def one(name: str, *, entry_timeout: float) -> dict[str, Any] | None:
            called = time.time()
            await lk.room.create_room(
                api.CreateRoomRequest(
                    name=name, agents=[api.RoomAgentDispatch(agent_name=AGENT_NAME)]
                )
            )
            created = time.time()
            entry = await poll("", entry_timeout, lambda: worker.events.find("entry", name))
            if not entry:
                await lk.room.delete_room(api.DeleteRoomRequest(room=name))
                return None
            # The request handler notes its time after accept() returns, which may be after
            # the entrypoint started.
            requests = await poll(
                f"the request event of room {name}",
                ENTRY_TIMEOUT,
                lambda: worker.events.find("request", name),
            )
            e, r = entry[0], requests[0]
            connected = await poll(
                "", CONNECT_TIMEOUT, lambda: worker.events.find("connected", name)
            )
            await lk.room.delete_room(api.DeleteRoomRequest(room=name))
            exited = await poll("", JOB_EXIT_TIMEOUT, lambda: not alive(e.pid))
            await poll(
                "the pool refilled", REFILL_TIMEOUT, lambda: len(worker.events.idle_pids()) >= idle
            )
            return {
                "room": name,
                "request_to_entry_ms": (e.at - r.at) * 1000,
                "api_to_entry_ms": (e.at - called) * 1000,
                "api_call_ms": (created - called) * 1000,
                "connect_ms": (connected[0].at - e.at) * 1000 if connected else None,
                "job_exited": bool(exited),
                "job_pid": e.pid,
            }

        warm = None
        for attempt in range(WARMUP_TRIES):
            warm = await one(f"{tag}-warmup-{attempt}", entry_timeout=ENTRY_TIMEOUT / 2)
            if warm is not None:
                break
        if warm is None:
            raise WorkerFailed(f"{worker.side}: the warm-up room never reached the entrypoint")
        out["warmup"] = warm
        for i in range(rooms):
            r = await one(f"{tag}-room-{i}", entry_timeout=ENTRY_TIMEOUT)
            if r is None:
                raise WorkerFailed(f"{worker.side}: room {i} never reached the entrypoint")
            out["rooms"].append(r)
    return out


def run_side(
    side: str,
    server: Server,
    folder: Path,
    *,
    rooms: int,
    idle: int,
    rep: int,
    livekit_python: str,
    tvoice_command: str,
) -> dict[str, Any]:
    command = worker_command(side, livekit_python=livekit_python, tvoice_command=tvoice_command)
    started = time.time()
    with run_worker(side, server, folder, idle=idle, command=command) as worker:
        worker.wait(
            f"{idle} prewarmed idle processes",
            WORKER_READY_TIMEOUT,
            lambda: len(worker.events.idle_pids()) >= idle,
        )
        ready_s = time.time() - started
        try:
            worker.wait(
                "registration (a 'registered' log line)",
                REGISTER_TIMEOUT,
                lambda: worker.log_has("registered"),
            )
            registered = True
        except WorkerFailed:
            registered = False  # the warm-up dispatch retries until it is
        time.sleep(2.0)  # let the fresh processes settle before reading their memory
        memory = measure_idle_memory(worker, idle)
        dispatch = asyncio.run(
            dispatch_rounds(worker, server, rooms=rooms, idle=idle, tag=f"{side}-{rep}")
        )
        pids = sorted(worker.seen)
    xs = [r["request_to_entry_ms"] for r in dispatch["rooms"]]
    api_xs = [r["api_to_entry_ms"] for r in dispatch["rooms"]]
    connects = [r["connect_ms"] for r in dispatch["rooms"] if r["connect_ms"] is not None]
    return {
        "dispatch_median_ms": C.percentile(xs, 50),
        "dispatch_p90_ms": C.percentile(xs, 90),
        "dispatch_min_ms": min(xs),
        "dispatch_max_ms": max(xs),
        "api_to_entry_median_ms": C.percentile(api_xs, 50),
        "connect_median_ms": C.percentile(connects, 50) if connects else None,
        "connected_rooms": len(connects),
        "jobs_left_running": sum(
            not r["job_exited"] for r in [dispatch["warmup"], *dispatch["rooms"]]
        ),
        "ready_s": ready_s,
        "loadavg_1min_end": os.getloadavg()[0],
        "registered_in_log": registered,
        "memory": memory,
        "dispatch": dispatch,
        "pids_seen": pids,
        "command": command,
    }


# -- the report -------------------------------------------------------------------------------

ROWS: list[tuple[str, str, str]] = [
    ("Dispatch: availability request → entrypoint, median (ms)", "dispatch_median_ms", ".1f"),
    ("  … p90 (ms)", "dispatch_p90_ms", ".1f"),
    ("  … min (ms)", "dispatch_min_ms", ".1f"),
    ("  … max (ms)", "dispatch_max_ms", ".1f"),
    ("Dispatch: room-creating API call → entrypoint, median (ms)", "api_to_entry_median_ms", ".1f"),
    ("Idle job process: RSS, each (MiB)", "job_rss_mib", ".1f"),
    ("Idle job process: PSS, each (MiB)", "job_pss_mib", ".1f"),
    ("Idle job process: USS, each (MiB)", "job_uss_mib", ".1f"),
    ("Worker process: RSS (MiB)", "worker_rss_mib", ".1f"),
    ("Helper processes (not job processes): PSS (MiB)", "helpers_pss_mib", ".1f"),
    ("All the worker's processes, idle: PSS (MiB)", "total_pss_mib", ".1f"),
]


def figures(result: dict[str, Any]) -> dict[str, float]:
    flat = {k: v for k, v in result.items() if isinstance(v, int | float)}
    flat.update({k: v for k, v in result["memory"].items() if isinstance(v, int | float)})
    return flat


def cell(values: list[float], fmt: str) -> str:
    if not values:
        return "n/a"
    mid, lo, hi = statistics.median(values), min(values), max(values)
    if len(values) == 1 or lo == hi:
        return format(mid, fmt)
    return f"{format(mid, fmt)} [{format(lo, fmt)}–{format(hi, fmt)}]"


def table(data: dict[str, Any]) -> list[str]:
    """The markdown table: figure, tvoice, LiveKit Agents, ratio (tvoice / LiveKit)."""
    per: dict[str, dict[str, list[float]]] = {side: {} for side in SIDES}
    for side in SIDES:
        for result in data["results"].get(side, []):
            for key, value in figures(result).items():
                per[side].setdefault(key, []).append(value)
    lines = ["| figure | tvoice | LiveKit Agents | ratio |", "|---|---|---|---|"]
    for label, key, fmt in ROWS:
        tv, lk = per["tvoice"].get(key, []), per["livekit"].get(key, [])
        ratio = "n/a"
        if tv and lk and statistics.median(lk):
            ratio = f"{statistics.median(tv) / statistics.median(lk):.2f}x"
        lines.append(f"| {label} | {cell(tv, fmt)} | {cell(lk, fmt)} | {ratio} |")
    return lines


def section(data: dict[str, Any], *, level: int = 2) -> str:
    """The worker section of a report (``run.py`` appends it to its own)."""
    p = data["params"]
    h = "#" * level
    lines = [
        f"{h} Workers on a real LiveKit server: dispatch latency and idle memory",
        "",
        f"livekit-server {data.get('server_version', '?')} on loopback; each framework's worker "
        f"with {p['idle']} warm idle processes (prewarm: its Silero VAD), explicit dispatch to "
        f"`{AGENT_NAME}`, {p['rooms']} rooms one at a time after a warm-up room; "
        f"{p['reps']} run(s) per framework, each cell the median over runs [min–max]. "
        "Ratio = tvoice / LiveKit.",
        "",
        *table(data),
    ]
    m, v = data.get("machine") or {}, data.get("versions") or {}
    if m:
        lines[2:2] = [
            f"Measured {m.get('date', '?')} on {m.get('cpu_model', '?')} ({m.get('cores', '?')} "
            f"cores); tvoice {v.get('tvoice', '?')} (commit {m.get('tvoice_commit', '?')}), "
            f"livekit-agents {v.get('livekit-agents', '?')}, "
            f"livekit-plugins-silero {v.get('livekit-plugins-silero', '?')}.",
            "",
        ]
    notes = []
    for side in SIDES:
        results = data["results"].get(side, [])
        if not results:
            continue
        kinds = sorted({h["kind"] for r in results for h in r["memory"]["helpers"]})
        joined = sum(r["connected_rooms"] for r in results)
        joins = [r["connect_median_ms"] for r in results if r["connect_median_ms"] is not None]
        left = sum(r.get("jobs_left_running", 0) for r in results)
        loads = ", ".join(
            f"{r['loadavg_1min_end']:.1f}" for r in results if "loadavg_1min_end" in r
        )
        notes.append(
            f"- {LABELS[side]}: idle job processes = the worker's descendants that ran the "
            f"prewarm ({results[0]['memory']['job_processes']}); its other descendants "
            f"(helpers, counted apart): {', '.join(kinds) or 'none'}. "
            f"Rooms whose agent joined: {joined}/{p['rooms'] * len(results)}"
            + (f" (entrypoint → joined, median {statistics.median(joins):.0f} ms)" if joins else "")
            + (
                f"; jobs still running {JOB_EXIT_TIMEOUT:.0f} s after their room was deleted: "
                f"{left} of {(p['rooms'] + 1) * len(results)} (warm-up rooms included)"
                if left
                else ""
            )
            + (f"; machine load average (1 min) at the end of each run: {loads}" if loads else "")
            + "."
        )
    for side, error in data.get("errors", {}).items():
        said = [line.strip() for line in error.splitlines() if line.strip()]
        brief = said[0] + (f" … {said[-1]}" if len(said) > 1 else "") if said else "?"
        notes.append(f"- {LABELS[side]}: **not measured**: {brief[:400]}")
    lines += ["", *notes, ""]
    doc = (__doc__ or "").split("How each figure is taken (both frameworks alike):", 1)[-1]
    lines += ["How each figure is taken (both frameworks alike):", "", doc.strip(), ""]
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------------


def describe(livekit_python: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The machine (as ``run.py`` reports it) and the frameworks' versions."""
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str] = {}
    with contextlib.suppress(PackageNotFoundError):
        versions["tvoice"] = version("tvoice")
    if livekit_python:
        with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
            out = subprocess.run(
                [
                    livekit_python,
                    "-c",
                    "import json, importlib.metadata as m; print(json.dumps({n: m.version(n) "
                    "for n in ('livekit-agents', 'livekit-plugins-silero', 'livekit')}))",
                ],
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout
            versions.update(json.loads(out))
    return machine(), versions


def run(
    *,
    livekit_python: str,
    tvoice_command: str | None = None,
    rooms: int = 20,
    idle: int = 2,
    reps: int = 1,
    sides: tuple[str, ...] = SIDES,
) -> dict[str, Any]:
    """Run the worker benchmark; the figures as a JSON-able dict (``section`` formats it)."""
    from tvoice.testing._livekit_server import SERVER_VERSION

    tvoice_command = tvoice_command or str(Path(sys.executable).parent / "tvoice")
    data: dict[str, Any] = {
        "params": {"rooms": rooms, "idle": idle, "reps": reps, "sides": list(sides)},
        "server_version": SERVER_VERSION,
        "results": {side: [] for side in sides},
        "errors": {},
    }
    data["machine"], data["versions"] = describe(livekit_python if "livekit" in sides else "")
    folder = Path(tempfile.mkdtemp(prefix="tvoice-bench-worker-"))
    data["work_dir"] = str(folder)
    with livekit_server(folder) as server:
        for rep in range(reps):
            order = sides if rep % 2 == 0 else tuple(reversed(sides))
            for side in order:
                if side in data["errors"]:
                    continue
                say(f"[worker rep {rep + 1}] {side}: starting its worker")
                try:
                    r = run_side(
                        side,
                        server,
                        folder,
                        rooms=rooms,
                        idle=idle,
                        rep=rep,
                        livekit_python=livekit_python,
                        tvoice_command=tvoice_command,
                    )
                except (WorkerFailed, OSError, subprocess.SubprocessError) as e:
                    data["errors"][side] = str(e)
                    say(f"[worker rep {rep + 1}] {side}: FAILED: {e}")
                    continue
                data["results"][side].append(r)
                m = r["memory"]
                say(
                    f"[worker rep {rep + 1}] {side:8s} dispatch: median "
                    f"{r['dispatch_median_ms']:.1f} ms, p90 {r['dispatch_p90_ms']:.1f} ms "
                    f"[{r['dispatch_min_ms']:.1f}–{r['dispatch_max_ms']:.1f}]; idle job process "
                    f"RSS {m['job_rss_mib']:.1f} MiB, PSS {m['job_pss_mib']:.1f} MiB; worker RSS "
                    f"{m['worker_rss_mib']:.1f} MiB; helpers PSS {m['helpers_pss_mib']:.1f} MiB"
                )
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--livekit-python", help="python of the LiveKit Agents env")
    parser.add_argument("--tvoice-command", help="the tvoice command (default: beside this python)")
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--idle", type=int, default=2, help="warm idle processes, both workers")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--out", default=str(HERE / "results" / "worker.md"))
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the report from the .json next to --out"
    )
    args = parser.parse_args()
    if args.report_only:
        out = Path(args.out)
        out.write_text(section(json.loads(out.with_suffix(".json").read_text()), level=1))
        say(out.read_text())
        return
    sides = tuple(s for s in args.sides.split(",") if s)
    if "livekit" in sides and not args.livekit_python:
        default = ROOT / ".nox" / "bench-livekit" / "bin" / "python"
        if not default.exists():
            parser.error("--livekit-python is required (nox -s bench builds that environment)")
        args.livekit_python = str(default)
    data = run(
        livekit_python=args.livekit_python or "",
        tvoice_command=args.tvoice_command,
        rooms=args.rooms,
        idle=args.idle,
        reps=args.reps,
        sides=sides,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = section(data, level=1)
    out.write_text(report)
    out.with_suffix(".json").write_text(json.dumps(data, indent=1))
    say("")
    say(report)
    say(f"(written to {out} and {out.with_suffix('.json')}; logs in {data['work_dir']})")


if __name__ == "__main__":
    main()
