"""A bounded chaos run on a real LiveKit server: calls spoken by clients while faults are
injected on a schedule, and a report of what survived.

One livekit-server, one `tvoice worker` of the tones agent (tests/livekit/agents/tones.py:
scripted fakes, no model to load) reaching the server through a loopback TCP proxy (so its
WebSocket can be cut), and ``calls`` callers that each place call after call: dispatch a room,
join, speak ``turns`` tones and wait for each reply, leave. Every ``fault_every`` seconds the
next fault of :data:`FAULTS` is injected:

- ``sigkill_job`` / ``sigstop_job``: SIGKILL (or SIGSTOP for 3 s) the job process of a call;
- ``server_restart``: stop livekit-server and start it again on the same ports;
- ``ws_cut``: cut the worker's ``/agent`` connection at the proxy;
- ``stt_error``: a caller says the tone on which the agent's recognizer fails;
- ``tts_stall``: a caller says the tone whose reply's audio never comes, then its next turn;
- ``bad_pre_connect``: the next caller flags its microphone as having a pre-connect buffer
  and sends one no one could decode (0 channels, 100 Hz), so the agent waits for it, tries it
  and must drop it;
- ``big_metadata``: the next call is dispatched with 174,000 CJK characters of metadata
  (522 KB, just under the server's 512 KiB limit).

:func:`run_chaos` returns a :class:`ChaosReport`; ``bench/chaos.py`` (``nox -s chaos``) writes
its table to bench/results/latest.md and ``test_chaos.py`` runs a short one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
from livekit import api

from tvoice.testing._livekit_server import LiveKitServer, LiveKitServerConfig, run_livekit_server

from ._caller import Caller, join
from ._cluster import WorkerProcess, replies, run_worker, tone
from .agents import tones

FAULTS = (
    "big_metadata",
    "stt_error",
    "sigkill_job",
    "tts_stall",
    "ws_cut",
    "sigstop_job",
    "bad_pre_connect",
    "server_restart",  # last of a round: it ends every call in progress
)
STOP_SECONDS = 3.0  # how long a SIGSTOPped job process stays stopped
REPLY_WAIT = 4.0  # per try; a turn is said at most three times
AGENT_JOIN_TIMEOUT = 10.0
REDIAL_DELAY = 1.0
RECOVERY_TIMEOUT = 30.0  # for the worker to be registered again after a fault
SETTLE = 15.0  # seconds of calls with no new fault at the end of a run
AIM_TIMEOUT = 10.0  # to find a call in progress to aim a fault at
BIG_METADATA = "語" * 174_000
PRE_CONNECT_TOPIC = "lk.agent.pre-connect-audio-buffer"


class Proxy:
    """A loopback TCP proxy to ``127.0.0.1:port`` that can cut the connections whose first
    request is for a given path (the worker's ``GET /agent``). Threads, so it runs whatever
    event loop the caller has, or none."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._open: list[tuple[bytes, socket.socket, socket.socket]] = []
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._listener.getsockname()[1]}"

    def cut(self, path: bytes = b"/agent") -> int:
        """Close every connection that began with a request for ``path``; how many."""
        with self._lock:
            doomed = [c for c in self._open if c[0].startswith(b"GET " + path)]
        for _, a, b in doomed:
            _close(a, b)
        return len(doomed)

    def close(self) -> None:
        self._closed = True
        # On Linux, close() alone does not wake a thread blocked in accept(); shutdown() does.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._acceptor.join(timeout=5.0)
        with self._lock:
            for _, a, b in self._open:
                _close(a, b)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self._port), timeout=5.0)
            upstream.settimeout(None)
            first = client.recv(65536)
            upstream.sendall(first)
        except OSError:
            client.close()
            return
        entry = (first, client, upstream)
        with self._lock:
            self._open.append(entry)
        pump = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        pump.start()
        _pump(client, upstream)
        pump.join()
        with self._lock:
            self._open.remove(entry)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    _close(source, sink)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


class _Server:
    """livekit-server, restartable on the same ports."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._stack = contextlib.ExitStack()
        self._runs = 0
        self.server = self._start(None)

    def _start(self, config: LiveKitServerConfig | None) -> LiveKitServer:
        self._runs += 1
        folder = self._folder / f"server-{self._runs}"
        folder.mkdir()
        return self._stack.enter_context(run_livekit_server(folder, config))

    def restart(self) -> None:
        config = self.server.config
        self._stack.close()
        self._stack = contextlib.ExitStack()
        self.server = self._start(config)

    def close(self) -> None:
        self._stack.close()


@attrs.define
class CallRecord:
    room: str
    started_at: float
    faults: list[str] = attrs.field(factory=list)
    """The faults aimed at this call (or at every call, as a server restart is)."""
    inject: collections.deque[str] = attrs.field(factory=collections.deque)
    """Faults the caller is to commit at its next turn."""
    committed: list[str] = attrs.field(factory=list)
    away: str = ""
    """The fault the worker was registering again after when the call was dispatched."""
    outcome: str = ""  # "completed" or why it failed
    ended_at: float = 0.0
    answered: list[int] = attrs.field(factory=list)
    heard: list[str] = attrs.field(factory=list)


@attrs.define
class FaultRecord:
    kind: str
    at: float
    target: str = ""
    survived: bool | None = None
    note: str = ""


@attrs.define
class ChaosReport:
    duration: float
    calls_concurrent: int
    turns: int
    fault_every: float
    calls: list[CallRecord] = attrs.field(factory=list)
    faults: list[FaultRecord] = attrs.field(factory=list)
    worker_restarts: int = 0
    registrations: int = 0
    history_items: int = 0
    history_lost: int = 0
    rss_start_kb: int = 0
    rss_end_kb: int = 0
    lost_details: list[str] = attrs.field(factory=list)
    evidence: dict[str, str] = attrs.field(factory=dict)
    """What the worker's log shows of each kind of fault (it was really felt)."""

    @property
    def completed(self) -> int:
        return sum(c.outcome == "completed" for c in self.calls)

    @property
    def failed(self) -> collections.Counter[str]:
        return collections.Counter(c.outcome for c in self.calls if c.outcome != "completed")

    @property
    def survived(self) -> int:
        return sum(bool(f.survived) for f in self.faults)

    def calls_log(self) -> str:
        """One line per call, for a failure message."""
        return "\n".join(
            f"{c.room} {c.started_at:.1f}-{c.ended_at:.1f} s {c.outcome} faults={c.faults}"
            f" answered={c.answered}"
            for c in self.calls
        )

    def table(self) -> str:
        """The report as Markdown."""
        rows = [
            ("calls started", str(len(self.calls))),
            ("calls completed", str(self.completed)),
            ("calls failed", str(sum(self.failed.values()))),
            ("faults injected", str(len(self.faults))),
            ("faults survived", str(self.survived)),
            ("worker restarts (must be 0)", str(self.worker_restarts)),
            ("worker registrations (1 + reconnections)", str(self.registrations)),
            (
                "chat history items lost (must be 0)",
                f"{self.history_lost} of {self.history_items} heard",
            ),
            (
                "worker RSS at start → end (MiB)",
                f"{self.rss_start_kb / 1024:.1f} → {self.rss_end_kb / 1024:.1f}",
            ),
        ]
        lines = ["| figure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)]
        lines += [
            "",
            "| fault | injected | survived | what happened | in the worker's log |",
            "|---|---|---|---|---|",
        ]
        for kind in FAULTS:
            done = [f for f in self.faults if f.kind == kind]
            notes = "; ".join(sorted({f.note for f in done if f.note}))
            lines.append(
                f"| {kind} | {len(done)} | {sum(bool(f.survived) for f in done)} | {notes}"
                f" | {self.evidence.get(kind, '')} |"
            )
        if self.failed:
            lines += ["", "| calls failed because | calls |", "|---|---|"]
            lines += [f"| {why} | {n} |" for why, n in self.failed.most_common()]
        return "\n".join(lines)


async def _dispatch(server: LiveKitServer, room: str, metadata: str) -> None:
    async with (
        asyncio.timeout(15),
        api.LiveKitAPI(server.http_url, server.api_key, server.api_secret) as lkapi,
    ):
        dispatch = api.RoomAgentDispatch(agent_name="tones", metadata=metadata)
        await lkapi.room.create_room(api.CreateRoomRequest(name=room, agents=[dispatch]))


async def _until(predicate: Callable[[], object], within: float) -> bool:
    """Poll ``predicate`` (other processes set no event we can wait on) for ``within`` s."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


class _Run:
    def __init__(
        self, server: _Server, worker: WorkerProcess, proxy: Proxy, report: ChaosReport
    ) -> None:
        self.server = server
        self.worker = worker
        self.proxy = proxy
        self.report = report
        self.active: dict[str, CallRecord] = {}
        self.for_next_call: list[FaultRecord] = []
        """Faults the next call to start is to suffer (oversized metadata, bad pre-connect)."""
        self.faults_ended_at: float | None = None
        self.worker_away: str | None = None
        """The fault the worker is registering again after (LiveKit drops a dispatch that
        finds no worker registered: a call dispatched meanwhile is that fault's)."""
        self.t0 = time.monotonic()
        self.random = random.Random(14)

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def caller(self, slot: int) -> None:
        # Calls go on until the faults are over, and SETTLE seconds more.
        index = 0
        while self.faults_ended_at is None or self.now() < self.faults_ended_at + SETTLE:
            index += 1
            record = CallRecord(f"chaos-{slot}-{index}-{uuid.uuid4().hex[:6]}", self.now())
            self.report.calls.append(record)
            self.active[record.room] = record
            try:
                await self.call(record)
                record.outcome = "completed"
            except Exception as exc:  # a call's failure is a figure of the report
                why = str(exc) or type(exc).__name__
                faults = [f for f in record.faults if f in ("sigkill_job", "server_restart")]
                if record.away:
                    why += f" (dispatched while the worker registered again after {record.away})"
                elif faults:
                    why += f" (after {', '.join(faults)})"
                record.outcome = why
            finally:
                self.active.pop(record.room, None)
                record.ended_at = self.now()
            if record.outcome != "completed":
                await asyncio.sleep(REDIAL_DELAY)  # as a person calls again

    async def call(self, record: CallRecord) -> None:
        if self.worker_away is not None:
            record.faults.append(self.worker_away)
            record.away = self.worker_away
        else:
            faults, self.for_next_call = self.for_next_call, []
            for fault in faults:
                fault.target = record.room
                record.faults.append(fault.kind)
        metadata = BIG_METADATA if "big_metadata" in record.faults else ""
        pre_connect = "bad_pre_connect" in record.faults
        server = self.server.server
        try:
            await _dispatch(server, record.room, metadata)
        except Exception as exc:
            raise RuntimeError(f"dispatch failed: {type(exc).__name__}") from None
        try:
            async with join(server, record.room, "caller", pre_connect=pre_connect) as caller:
                agent = await _until(lambda: _agent(caller), AGENT_JOIN_TIMEOUT)
                if not agent:
                    raise RuntimeError("the agent never joined")
                if pre_connect:
                    # Sent as a client sends its buffer, to the agent as soon as it joined.
                    await self.send_bad_pre_connect(record, caller)
                for turn in range(self.report.turns):
                    await self.commit_injected(record, caller)
                    await self.turn(record, caller, turn)
                if record.inject:
                    # A fault asked for during the last turn: commit it, and show a turn after.
                    await self.commit_injected(record, caller)
                    await self.turn(record, caller, self.report.turns)
                record.heard = replies(caller)
        except TimeoutError:
            raise RuntimeError("the caller could not join or leave in time") from None

    async def commit_injected(self, record: CallRecord, caller: Caller) -> None:
        while record.inject:
            fault = record.inject.popleft()
            record.committed.append(fault)
            if fault == "stt_error":
                caller.say(tone(tones.STT_ERROR_TURN))
                await asyncio.sleep(1.5)
            elif fault == "tts_stall":
                caller.say(tone(tones.TTS_STALL_TURN))
                await _until(lambda: any("Reply 31" in t for _, _, t in caller.texts), 3.0)
                await asyncio.sleep(1.0)

    async def send_bad_pre_connect(self, record: CallRecord, caller: Caller) -> None:
        """Pre-connect audio for the caller's microphone that no one could decode: raw PCM
        with no channel at 100 Hz."""
        record.committed.append("bad_pre_connect")
        publication = next(iter(caller.room.local_participant.track_publications.values()))
        attributes = {"sampleRate": "100", "channels": "0", "trackId": publication.sid}
        await caller.room.local_participant.send_bytes(
            b"\x00\x01" * 4096,
            mime_type="audio/pcm",
            topic=PRE_CONNECT_TOPIC,
            attributes=attributes,
            destination_identities=[_agent(caller)],
        )

    async def turn(self, record: CallRecord, caller: Caller, turn: int) -> None:
        expected = tones.reply_text(turn)
        for _ in range(3):
            count = replies(caller).count(expected)
            caller.say(tone(turn))
            if await _until(lambda n=count: replies(caller).count(expected) > n, REPLY_WAIT):
                record.answered.append(turn)
                record.heard = replies(caller)
                return
        record.heard = replies(caller)
        raise RuntimeError(f"no reply to a turn said three times (turn {turn})")

    # --- faults

    async def faults(self, every: float, until: float, rounds: int | None) -> None:
        """A fault every ``every`` seconds (after the last one's injection), in the order of
        :data:`FAULTS`: ``rounds`` times through them, or until ``until``."""
        try:
            for i in range(len(FAULTS) * rounds if rounds else 1_000_000):
                await asyncio.sleep(every)
                if rounds is None and self.now() >= until:
                    return
                fault = FaultRecord(FAULTS[i % len(FAULTS)], self.now())
                self.report.faults.append(fault)
                await self.inject(fault)
        finally:
            self.faults_ended_at = self.now()

    async def pick_call(self, fault: FaultRecord) -> CallRecord | None:
        """A call some way into its turns (so the fault lands mid-call) that no other fault
        aimed at; waits a little for one."""
        await _until(self._targets, AIM_TIMEOUT)
        calls = self._targets()
        if not calls:
            fault.note = "no call in progress to aim at"
            return None
        record = self.random.choice(calls)
        record.faults.append(fault.kind)
        fault.target = record.room
        return record

    def _targets(self) -> list[CallRecord]:
        # One fault per call: a call an earlier fault aimed at is that fault's to judge.
        return [c for c in self.active.values() if c.answered and not c.faults]

    async def inject(self, fault: FaultRecord) -> None:
        kind = fault.kind
        if kind in ("stt_error", "tts_stall"):
            record = await self.pick_call(fault)
            if record is not None:
                record.inject.append(kind)
        elif kind in ("big_metadata", "bad_pre_connect"):
            self.for_next_call.append(fault)
        elif kind == "ws_cut":
            self.worker_away = kind
            try:
                fault.note = f"{self.proxy.cut()} connection(s) cut"
                await self.worker_back()
            finally:
                self.worker_away = None
        elif kind == "server_restart":
            # The calls that earlier faults aimed at end first (their outcome is theirs).
            await _until(lambda: not any(c.faults for c in self.active.values()), 20.0)
            for record in self.active.values():
                record.faults.append(kind)
            self.worker_away = kind
            try:
                await asyncio.to_thread(self.server.restart)
                await self.worker_back()
            finally:
                self.worker_away = None
        elif kind in ("sigkill_job", "sigstop_job"):
            record = await self.pick_call(fault)
            pid = self.worker.job_pids().get(record.room) if record else None
            if record is not None and pid is None:
                fault.note = "its job process was not known yet"
            try:
                if pid is not None and kind == "sigkill_job":
                    os.kill(pid, signal.SIGKILL)
                elif pid is not None:
                    os.kill(pid, signal.SIGSTOP)
                    try:
                        await asyncio.sleep(STOP_SECONDS)
                    finally:
                        os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                fault.note = "its job process had already ended"

    async def worker_back(self) -> None:
        """Until the worker has noticed it lost the server (at most 2 s), and registered again."""
        await _until(lambda: not self.worker.healthy(), 2.0)
        await _until(self.worker.healthy, RECOVERY_TIMEOUT)

    async def judge(self, fault: FaultRecord) -> None:
        """Whether the deployment came through ``fault``: the worker process lived and was
        registered again, and the call it aimed at (if the fault spares the call) completed."""
        healthy = await _until(
            lambda: self.worker.process.poll() is None and self.worker.healthy(),
            RECOVERY_TIMEOUT,
        )
        if not healthy:
            fault.survived = False
            fault.note = fault.note or "the worker did not come back"
            return
        target = next((c for c in self.report.calls if c.room == fault.target), None)
        if fault.kind in ("sigkill_job", "server_restart"):
            # Its call(s) are lost by design; the others and the next ones are not.
            later = [c for c in self.report.calls if c.started_at > fault.at]
            fault.survived = any(c.outcome == "completed" for c in later)
            if not fault.survived:
                fault.note = fault.note or "no later call completed"
            elif not fault.note:
                fault.note = "its call(s) lost; later calls completed"
        elif target is None:
            fault.survived = fault.kind == "ws_cut"
            fault.note = fault.note or ("no call to aim at" if not fault.survived else "")
        elif fault.kind in ("stt_error", "tts_stall", "bad_pre_connect") and (
            fault.kind not in target.committed
        ):
            fault.survived = False
            fault.note = f"the caller never committed it ({target.outcome})"
        else:
            fault.survived = target.outcome == "completed"
            if not fault.note:
                fault.note = "its call completed" if fault.survived else target.outcome


def _agent(caller: Caller) -> str:
    agents = [i for i in caller.room.remote_participants if i.startswith("agent")]
    return agents[0] if agents else ""


def _history_check(report: ChaosReport, worker: WorkerProcess) -> None:
    """Every turn a caller heard answered must be in the agent's history: its user message
    and the reply."""
    for call in report.calls:
        history = worker.history(call.room)
        said = " | ".join(item["text"] for item in history if item.get("role") == "user")
        replied = {item["text"] for item in history if item.get("role") == "assistant"}
        for turn in sorted(set(call.answered)):
            report.history_items += 2
            if not re.search(rf"\bturn {turn}\b", said):
                report.history_lost += 1
                report.lost_details.append(f"{call.room}: user 'turn {turn}'")
            if not any(tones.reply_text(turn) in text for text in replied):
                report.history_lost += 1
                report.lost_details.append(f"{call.room}: assistant {tones.reply_text(turn)!r}")


@contextlib.contextmanager
def _deployment(folder: Path) -> Iterator[tuple[_Server, WorkerProcess, Proxy]]:
    server = _Server(folder)
    try:
        proxy = Proxy(server.server.config.port)
        try:
            with run_worker([proxy.url], server.server, folder, "worker") as worker:
                yield server, worker, proxy
        finally:
            proxy.close()
    finally:
        server.close()


def run_chaos(
    folder: Path,
    *,
    duration: float = 0.0,
    rounds: int | None = None,
    calls: int = 3,
    turns: int = 4,
    fault_every: float = 4.0,
) -> ChaosReport:
    """Place ``calls`` calls at a time while injecting a fault every ``fault_every`` seconds,
    for ``duration`` seconds (or ``rounds`` times through :data:`FAULTS`), then SETTLE
    seconds of calls more; wait for the calls in progress and judge. Needs livekit-server."""
    report = ChaosReport(duration, calls, turns, fault_every)
    with _deployment(folder) as (server, worker, proxy):
        report.rss_start_kb = worker.rss_kb()
        run = _Run(server, worker, proxy, report)

        async def main() -> None:
            async with asyncio.TaskGroup() as tasks:
                for slot in range(calls):
                    tasks.create_task(run.caller(slot))
                tasks.create_task(run.faults(fault_every, duration, rounds))
            for fault in report.faults:
                await run.judge(fault)

        asyncio.run(main())
        report.duration = run.now()
        report.worker_restarts = 0 if worker.process.poll() is None else 1
        report.registrations = len(worker.registrations())
        report.rss_end_kb = worker.rss_kb() if worker.process.poll() is None else 0
        _history_check(report, worker)
        report.evidence = _evidence(worker.log())
    return report


# What each kind of fault leaves in the worker's log (its own lines and its job processes').
_EVIDENCE = {
    "sigkill_job": ("failed: job process exited with signal SIGKILL", "job(s) failed, killed"),
    "stt_error": ("speech-to-text: opening its stream again", "STT stream(s) reopened"),
    "bad_pre_connect": ("rejected: ", "pre-connect buffer(s) rejected"),
    "ws_cut": ("lost the connection to", "connection(s) to the server lost (cuts + restarts)"),
    "server_restart": ("registered worker", "registration(s) (1 + cuts + restarts)"),
}


def _evidence(log: str) -> dict[str, str]:
    # The worker's own lines and its job processes' (the pool logs a killed job too).
    lines = [line for line in log.splitlines() if " tvoice.worker: " in line or "[pid " in line]
    return {
        kind: f"{sum(needle in line for line in lines)} {what}"
        for kind, (needle, what) in _EVIDENCE.items()
    }
