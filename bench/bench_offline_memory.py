"""Memory of a worker serving the offline assistant with 4 warm job processes: the models in
every job process (each prewarm loads Whisper, SmolLM2 and Piper), or once per machine in the
inference server (each job process keeps only Silero), as ``examples/offline.py`` does now.

Starts a loopback livekit-server, runs ``tvoice worker`` on each layout with
``--num-idle-processes 4``, waits until the processes' memory settles, and reads RSS and PSS
(``/proc/PID/smaps_rollup``) of the worker, each job process and the inference server.

    python bench/bench_offline_memory.py     -> bench/results/offline_memory.md
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parent.parent

from tvoice.testing._livekit_server import run_livekit_server  # noqa: E402

# The models in every job process: the offline stack as it was before the inference server.
PER_PROCESS = """
from typing import Any
from tvoice import JobProcess

def prewarm(proc: JobProcess) -> None:
    from tvoice_plugins import llamacpp, piper, silero, whisper
    proc.userdata["vad"] = proc.load("Silero VAD", silero.VAD.load)
    proc.userdata["stt"] = proc.load("Whisper tiny.en", whisper.STT.load)
    proc.userdata["llm"] = proc.load("SmolLM2-135M-Instruct", llamacpp.LLM.load)
    proc.userdata["tts"] = proc.load("Piper voice 'joe'", piper.TTS.load)

def models(proc: JobProcess) -> dict[str, Any]:
    if "vad" not in proc.userdata:
        prewarm(proc)
    return {key: proc.userdata[key] for key in ("vad", "stt", "llm", "tts")}
"""


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of ``pid`` in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value)
    return fields["Rss"], fields["Pss"]


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(c) for c in text]
    return found


def settled(parent: int, others: list[int], *, timeout: float = 240.0) -> list[int]:
    """Wait until the processes' total RSS stops changing (their models are loaded); returns
    the job processes then (a pool may replace one that failed)."""
    deadline = time.monotonic() + timeout
    last, steady = -1, 0
    jobs = children(parent)
    while time.monotonic() < deadline and (steady < 8 or len(jobs) < 4):
        time.sleep(1.0)
        jobs = children(parent)
        try:
            total = sum(memory_kib(p)[0] for p in [parent, *jobs, *others])
        except OSError:  # a job process was replaced (one that took too long to start)
            last, steady = -1, 0
            continue
        steady = steady + 1 if abs(total - last) < total * 0.005 else 0
        last = total
    return jobs


def measure(layout: str, examples: Path, server, runtime: Path) -> list[tuple[str, int, int]]:
    env = {
        **os.environ,
        "LIVEKIT_URL": server.url,
        "LIVEKIT_API_KEY": server.api_key,
        "LIVEKIT_API_SECRET": server.api_secret,
        "XDG_RUNTIME_DIR": str(runtime),
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tvoice",
            "worker",
            str(examples / "assistant.py"),
            "--num-idle-processes",
            "4",
            "--port",
            "0",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(runtime / "worker.log").open("wb"),
    )
    try:
        deadline = time.monotonic() + 120
        while len(children(worker.pid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.5)
        jobs = children(worker.pid)
        servers = (
            [
                int(p.read_text().split('"pid": ')[1].split("}")[0])
                for p in runtime.glob("tvoice-*/models.json")
            ]
            if layout == "shared"
            else []
        )
        deadline = time.monotonic() + 120
        while layout == "shared" and not servers and time.monotonic() < deadline:
            time.sleep(0.5)
            servers = [
                int(p.read_text().split('"pid": ')[1].split("}")[0])
                for p in runtime.glob("tvoice-*/models.json")
            ]
        jobs = settled(worker.pid, servers)
        rows = [("worker", *memory_kib(worker.pid))]
        rows += [(f"job process {i + 1}", *memory_kib(p)) for i, p in enumerate(jobs)]
        rows += [("inference server", *memory_kib(p)) for p in servers]
        for pid in servers:
            os.kill(pid, signal.SIGTERM)
        return rows
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        per_process = folder / "per-process"
        per_process.mkdir()
        (per_process / "assistant.py").write_text((ROOT / "examples/assistant.py").read_text())
        (per_process / "offline.py").write_text(PER_PROCESS)
        (folder / "server").mkdir()
        with run_livekit_server(folder / "server") as server:
            for layout, examples in (("per process", per_process), ("shared", ROOT / "examples")):
                runtime = folder / f"run-{layout.replace(' ', '-')}"
                runtime.mkdir()
                results[layout] = measure(layout, examples, server, runtime)
                print(layout, results[layout], flush=True)
    lines = [
        "# Memory of a worker with 4 warm job processes, offline assistant",
        "",
        "RSS and PSS in MiB (PSS shares each shared page among the processes that map it).",
        "",
    ]
    for layout, rows in results.items():
        where = (
            "in every job process" if layout == "per process" else "once, in the inference server"
        )
        lines += [f"## Models {where}", "", "| process | RSS | PSS |", "|---|---|---|"]
        lines += [f"| {name} | {rss / 1024:.0f} | {pss / 1024:.0f} |" for name, rss, pss in rows]
        total_pss = sum(pss for _, _, pss in rows) / 1024
        lines += [f"| **total** | | **{total_pss:.0f}** |", ""]
    out = ROOT / "bench" / "results" / "offline_memory.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
