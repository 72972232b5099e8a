"""A LiveKit server confined to loopback, for tests, benchmarks and local development.

The server is the real ``livekit-server`` (v1.13.5, installed by
``scripts/install-livekit-server.sh``). This module only finds the binary and writes its config
file; starting and stopping the process is left to the caller (a pytest fixture, a benchmark).
It imports neither asyncio nor livekit.

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

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "BINARY_ENV",
    "INSTALL_COMMAND",
    "SERVER_VERSION",
    "LocalServerConfig",
    "find_server_binary",
    "free_loopback_port",
    "server_environment",
]

SERVER_VERSION = "1.13.5"
INSTALL_COMMAND = "scripts/install-livekit-server.sh"
# The variable that names a server binary to use instead of $(go env GOPATH)/bin/server.
BINARY_ENV = "TVOICE_LIVEKIT_SERVER"
_NOWHERE_STUN = "127.0.0.1:9"
_OVERRIDING_ENV = frozenset({"NODE_IP", "UDP_PORT", "REDIS_HOST", "REDIS_PASSWORD"})


@attrs.frozen(kw_only=True)
class LocalServerConfig:
    """The config of one livekit-server on 127.0.0.1.

    ``port`` serves HTTP (the room service API) and the WebSocket signalling (``/rtc``,
    ``/agent``); ``udp_port`` carries all media; ``tcp_port`` enables ICE over TCP (bound on all
    interfaces by the server, see the module's docstring), 0 leaves it off.
    """

    port: int
    udp_port: int
    tcp_port: int = 0
    keys: Mapping[str, str] = attrs.field(factory=lambda: {"devkey": "secret"})
    log_level: str = "info"

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
        return {
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
