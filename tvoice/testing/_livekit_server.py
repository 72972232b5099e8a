"""The real LiveKit server confined to loopback, for tests of agents on it (and benchmarks).

The server is the real ``livekit-server`` (v1.13.5, installed by
``scripts/install-livekit-server.sh``). This module finds the binary, writes its config file,
and runs it (:func:`run_livekit_server`, for the tests' fixtures and the benchmarks). It imports
neither asyncio nor livekit.

Loopback confinement, as livekit-server v1.13.5 reads its config (``pkg/config/config.go`` and
``mediatransportutil/pkg/rtcconfig``):

- ``bind_addresses`` covers the HTTP/WebSocket port only. The ICE/UDP port is bound once per
  local address that passes ``rtc.interfaces`` and ``rtc.ips`` (here: 127.0.0.1 only), and
  ``enable_loopback_candidate`` is what lets a loopback address through at all.
- ``rtc.tcp_port`` (ICE over TCP) is bound on every interface (``*:port``), whatever
  ``bind_addresses`` says: it is off here (0) unless asked for.
- ``rtc.node_ip`` set by hand with ``use_external_ip: false`` means the server neither asks a
  STUN server for its address nor uses STUN when gathering; every host candidate is rewritten to
  127.0.0.1.
- An empty ``rtc.stun_servers`` does not mean "none": the server then hands its default public
  STUN servers (Twilio, Google) to every client. Clients are told ``127.0.0.1:9`` instead, a
  privileged port outside the ephemeral range where nothing listens, so their server-reflexive
  gathering finds nothing and sends nothing off the machine. (Pointing them at the server's own
  UDP port made every connection time out; pion's UDP mux logs their bare binding requests.)
- Clients built on libwebrtc (the livekit Python SDK) never gather loopback candidates: they
  offer the machine's other addresses, whose packets to 127.0.0.1 still travel through ``lo``,
  and the server first sees them as peer-reflexive. On a machine whose only interface is ``lo``
  they offer no candidate at all and never connect; any other address, even on an isolated veth
  pair, is enough.
- Several ``LIVEKIT_*`` variables (``LIVEKIT_CONFIG`` above all, which replaces the config file),
  ``NODE_IP``, ``UDP_PORT``, ``REDIS_HOST`` and ``REDIS_PASSWORD`` override the file:
  :func:`server_environment` removes them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "BINARY_ENV",
    "INSTALL_COMMAND",
    "SERVER_VERSION",
    "LiveKitServer",
    "LiveKitServerConfig",
    "LiveKitServerError",
    "find_server_binary",
    "free_loopback_port",
    "run_livekit_server",
    "server_environment",
]

SERVER_VERSION = "1.13.5"
INSTALL_COMMAND = "scripts/install-livekit-server.sh"
# The variable that names a server binary to use instead of $(go env GOPATH)/bin/server.
BINARY_ENV = "TVOICE_LIVEKIT_SERVER"
_NOWHERE_STUN = "127.0.0.1:9"
_OVERRIDING_ENV = frozenset({"NODE_IP", "UDP_PORT", "REDIS_HOST", "REDIS_PASSWORD"})


@attrs.frozen(kw_only=True)
class LiveKitServerConfig:
    """The config of one livekit-server on 127.0.0.1.

    ``port`` serves HTTP (the room service API) and the WebSocket signalling (``/rtc``,
    ``/agent``); ``udp_port`` carries all media; ``tcp_port`` enables ICE over TCP (bound on all
    interfaces by the server, see the module's docstring), 0 leaves it off. ``redis_address``
    (``host:port``) makes the server one node of a cluster: nodes sharing a Redis route rooms,
    signalling and agent jobs between them; "" runs it alone.
    """

    port: int
    udp_port: int
    tcp_port: int = 0
    keys: Mapping[str, str] = attrs.field(factory=lambda: {"devkey": "secret"})
    log_level: str = "info"
    redis_address: str = ""

    @property
    def url(self) -> str:
        """The WebSocket URL that clients and workers connect to."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """The HTTP URL of the server API (``livekit.api.LiveKitAPI``)."""
        return f"http://127.0.0.1:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        """The config as livekit-server reads it (``--config``)."""
        config: dict[str, Any] = {
            "port": self.port,
            "bind_addresses": ["127.0.0.1"],
            "rtc": {
                "udp_port": self.udp_port,
                "tcp_port": self.tcp_port,
                "node_ip": "127.0.0.1",
                "use_external_ip": False,
                "enable_loopback_candidate": True,
                "interfaces": {"includes": ["lo"]},
                "ips": {"includes": ["127.0.0.1/32"]},
                "stun_servers": [_NOWHERE_STUN],
            },
            "turn": {"enabled": False},
            "keys": dict(self.keys),
            "logging": {"level": self.log_level, "json": False, "pion_level": "warn"},
        }
        if self.redis_address:
            config["redis"] = {"address": self.redis_address}
        return config

    def write(self, path: Path) -> Path:
        """Write the config file to ``path`` and return it.

        JSON is valid YAML, so no YAML library is needed; the server parses the file strictly
        (unknown keys are an error), which catches a field renamed in a later server version.
        """
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path


def free_loopback_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that is free now for ``kind`` (``SOCK_STREAM`` or ``SOCK_DGRAM``).

    The port is released before the server binds it; another process could take it meanwhile,
    which the caller sees as a server that fails to start.
    """
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_server_binary(env: Mapping[str, str] | None = None) -> Path | None:
    """The livekit-server binary: ``$TVOICE_LIVEKIT_SERVER``, else where ``go install`` put it.

    ``go install`` writes to ``$GOBIN``, else to ``$(go env GOPATH)/bin``, whose default is
    ``~/go/bin``. Returns None when there is no such file.
    """
    env = os.environ if env is None else env
    if explicit := env.get(BINARY_ENV):
        path = Path(explicit)
        return path if path.is_file() else None
    for directory in _go_bin_dirs(env):
        candidate = directory / "server"
        if candidate.is_file():
            return candidate
    return None


def server_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) without the variables that override the config file."""
    env = os.environ if env is None else env
    return {
        name: value
        for name, value in env.items()
        if not name.startswith("LIVEKIT_") and name not in _OVERRIDING_ENV
    }


def _go_bin_dirs(env: Mapping[str, str]) -> list[Path]:
    # `go env` also knows values set with `go env -w`; without Go, the variables and the default.
    gobin, gopath = env.get("GOBIN", ""), env.get("GOPATH", "")
    go = shutil.which("go", path=env.get("PATH")) or shutil.which("go", path="/usr/local/go/bin")
    if go is not None:
        result = subprocess.run(
            [go, "env", "GOBIN", "GOPATH"],
            capture_output=True,
            text=True,
            check=False,
            env=dict(env),
        )
        if result.returncode == 0:
            gobin, gopath, *_ = [*result.stdout.splitlines(), "", ""]
    dirs = [Path(gobin)] if gobin else []
    dirs += [Path(entry) / "bin" for entry in gopath.split(os.pathsep) if entry]
    return [*dirs, Path.home() / "go" / "bin"]


START_TIMEOUT = 30.0
# livekit-server answers HTTP up to 100 ms before it acts on SIGTERM (Start() sleeps, then sets
# `running`; Stop() on a server not yet running returns and does nothing).
SIGNAL_READY_DELAY = 0.15
DRAIN_TIMEOUT = 2.0  # after the first SIGTERM; an idle server exits in milliseconds
FORCE_TIMEOUT = 5.0  # after the second SIGTERM, which closes the rooms; then SIGKILL
LOG_TAIL_LINES = 40


class LiveKitServerError(RuntimeError):
    """livekit-server is missing, or did not start (the message has the end of its log)."""


@attrs.frozen(kw_only=True)
class LiveKitServer:
    """A running livekit-server: where to reach it, and its credentials."""

    url: str  # ws://127.0.0.1:<port>, for rtc.Room and workers
    http_url: str  # http://127.0.0.1:<port>, for livekit.api.LiveKitAPI
    api_key: str
    api_secret: str
    config: LiveKitServerConfig
    log_path: Path
    pid: int = 0
    """The server's process (a test may kill it, as a node is lost)."""
    node_id: str = ""
    """Its node id (``ND_...``): where a cluster's rooms live (``CreateRoomRequest.node_id``)."""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The end of the server's log, to add to a failure message."""
        return log_tail(self.log_path, lines)


@contextlib.contextmanager
def run_livekit_server(
    folder: Path, config: LiveKitServerConfig | None = None
) -> Iterator[LiveKitServer]:
    """Start livekit-server with its config and log in ``folder``; stop it on exit (bounded:
    SIGTERM, SIGTERM again, then SIGKILL). Passing a stopped server's ``config`` starts the next
    one on the same ports. Raises :class:`LiveKitServerError` when it cannot start."""
    binary = find_server_binary()
    if binary is None:
        where = os.environ.get(BINARY_ENV)
        raise LiveKitServerError(
            f"${BINARY_ENV}={where} is not a file"
            if where
            else f"livekit-server {SERVER_VERSION} is not installed: run {INSTALL_COMMAND}"
            f" (or point ${BINARY_ENV} at a server binary)"
        )
    if config is None:
        config = LiveKitServerConfig(
            port=free_loopback_port(socket.SOCK_STREAM),
            udp_port=free_loopback_port(socket.SOCK_DGRAM),
        )
    config_path = config.write(folder / "config.yaml")
    log_path = folder / "server.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(binary), "--config", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_environment(),
        )
    try:
        _wait_until_serving(process, config.http_url, log_path)
        yield LiveKitServer(
            url=config.url,
            http_url=config.http_url,
            api_key="devkey",
            api_secret=config.keys["devkey"],
            config=config,
            log_path=log_path,
            pid=process.pid,
            node_id=_node_id(log_path),
        )
    finally:
        _stop(process)


def _wait_until_serving(process: subprocess.Popen[bytes], http_url: str, log_path: Path) -> None:
    # Outside any event loop: polling on the wall clock is the only way to wait for a process.
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            # The server exits with status 0 even when it rejects its config.
            raise LiveKitServerError(
                f"livekit-server exited with status {process.returncode} on start;"
                f" log {log_path}:\n{log_tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(http_url, timeout=1.0) as response:
                if response.status == 200:
                    time.sleep(SIGNAL_READY_DELAY)
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            _stop(process)
            raise LiveKitServerError(
                f"livekit-server did not answer GET {http_url} within {START_TIMEOUT:.0f} s;"
                f" log {log_path}:\n{log_tail(log_path)}"
            )
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    # The first SIGTERM drains: the server waits, with no bound, for every participant to leave.
    # The second closes the rooms; a server that still hangs is killed.
    for timeout in (DRAIN_TIMEOUT, FORCE_TIMEOUT):
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
        return
    process.kill()
    process.wait()


def _node_id(log_path: Path) -> str:
    # The server names its node once, as it starts: `starting LiveKit server {..."nodeID": ...`.
    found = re.search(r'"nodeID": "(ND_\w+)"', log_path.read_text(errors="replace"))
    return found.group(1) if found else ""


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` of a log file (or why it cannot be read)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])
