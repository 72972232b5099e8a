"""Pieces of a LiveKit deployment on loopback, for the cluster and chaos tests: a Redis, server
nodes sharing it, `tvoice worker` processes of the tones agent, and callers that speak tones.

Everything here runs real processes on the real clock; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import numpy as np

from tvoice.testing._livekit_server import LiveKitServer, free_loopback_port

from ._caller import RATE, Caller
from .agents import tones

ROOT = Path(__file__).parents[2]
TONES = ROOT / "tests" / "livekit" / "agents" / "tones.py"
REDIS_SERVER = "/usr/bin/redis-server"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0


def tone(turn: int, seconds: float = 0.5) -> np.ndarray:
    """The caller saying ``turn`` to the tones agent (48 kHz mono int16)."""
    t = np.arange(int(RATE * seconds)) / RATE
    return (8000 * np.sin(2 * np.pi * tones.tone_hz(turn) * t)).astype(np.int16)


def replies(caller: Caller) -> list[str]:
    """The agent's final transcriptions that the caller received, in order."""
    return [
        text
        for sender, attributes, text in caller.texts
        if sender.startswith("agent") and attributes.get("lk.transcription_final") == "true"
    ]


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_hget(address: str, key: str, field: str) -> str | None:
    """``HGET key field`` (a bulk string reply), to see where LiveKit put a room."""
    host, port = address.rsplit(":", 1)
    parts = [b"HGET", key.encode(), field.encode()]
    request = b"*3\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in parts)
    with socket.create_connection((host, int(port)), timeout=2.0) as sock:
        sock.sendall(request)
        reply = b""
        while not reply.endswith(b"\r\n") or (reply.startswith(b"$") and reply.count(b"\r\n") < 2):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    if reply.startswith(b"$-1"):
        return None
    return reply.split(b"\r\n")[1].decode()


@contextlib.contextmanager
def run_redis(folder: Path) -> Iterator[str]:
    """``redis-server`` on a free loopback port, its files in ``folder``, nothing saved;
    yields its ``host:port``; killed on exit."""
    if not os.access(REDIS_SERVER, os.X_OK):
        raise RuntimeError(f"{REDIS_SERVER} is missing: apt-get install redis-server")
    port = free_loopback_port()
    log = folder / "redis.log"
    command = [
        REDIS_SERVER,
        *("--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder)),
        *("--save", "", "--appendonly", "no", "--logfile", str(log)),
    ]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, cwd=folder)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not redis_ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                text = log.read_text(errors="replace") if log.exists() else "(no log)"
                raise RuntimeError(f"redis-server did not start on port {port}:\n{text}")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()


@attrs.define(eq=False)
class WorkerProcess:
    """A `tvoice worker` process of the tones agent."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    markers: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1.0) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, within: float = 60.0) -> None:
        # A subprocess on the real clock: polling its health endpoint is the only way to know.
        deadline = time.monotonic() + within
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the worker did not register; its log:\n{self.log()}")
            time.sleep(0.1)

    def registrations(self) -> list[str]:
        """The ``/agent`` URLs it registered at, in order (from its log)."""
        return [
            line.rsplit(" at ", 1)[1]
            for line in self.log().splitlines()
            if "registered worker" in line and " at " in line
        ]

    def job_pids(self) -> dict[str, int]:
        """room name -> pid of the job process that ran it (the agent's marker files)."""
        found = {}
        for path in self.markers.iterdir():
            room, _, pid = path.name.rpartition(".")
            if pid.isdigit():
                found[room] = int(pid)
        return found

    def history(self, room: str) -> list[dict[str, str]]:
        """The chat items the agent recorded for ``room`` as they were added."""
        path = self.markers / f"{room}.history.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def rss_kb(self) -> int:
        """The worker process's resident memory (its own, not its job processes')."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


@contextlib.contextmanager
def run_worker(
    urls: Sequence[str], server: LiveKitServer, folder: Path, name: str, *extra: str
) -> Iterator[WorkerProcess]:
    """`tvoice worker tones.py --url urls[0] --fallback-url urls[1] ...` with ``server``'s
    keys; SIGTERM (then SIGKILL) on exit."""
    markers = folder / f"{name}-markers"
    markers.mkdir(parents=True)
    env = {
        **os.environ,
        "LIVEKIT_API_KEY": server.api_key,
        "LIVEKIT_API_SECRET": server.api_secret,
        "TVOICE_TEST_MARKER_DIR": str(markers),
        "PYTHONWARNINGS": "ignore::UserWarning",
    }
    env.pop("LIVEKIT_URL", None)
    port = free_loopback_port()
    fallbacks = [arg for url in urls[1:] for arg in ("--fallback-url", url)]
    command = [sys.executable, "-m", "tvoice", "worker", str(TONES), "--url", urls[0]]
    log_path = folder / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [*command, *fallbacks, "--port", str(port), *extra],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    worker = WorkerProcess(process, port, log_path, markers)
    try:
        worker.wait_healthy()
        yield worker
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
