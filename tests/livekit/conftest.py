"""A real LiveKit server on loopback, one per test session.

The binary comes from ``scripts/install-livekit-server.sh`` (CI runs it); a missing binary fails
the tests that need it rather than skipping them, so a broken install cannot pass unnoticed.
Tests that need a server of their own (to restart it, say) use :func:`run_livekit_server`;
passing a running server's ``config`` starts the next one on the same ports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tvoice.livekit._server_config import (
    BINARY_ENV,
    INSTALL_COMMAND,
    SERVER_VERSION,
    LocalServerConfig,
    find_server_binary,
    free_loopback_port,
    server_environment,
)

START_TIMEOUT = 30.0
# livekit-server answers HTTP up to 100 ms before it acts on SIGTERM (Start() sleeps, then sets
# `running`; Stop() on a server not yet running returns and does nothing).
SIGNAL_READY_DELAY = 0.15
DRAIN_TIMEOUT = 2.0  # after the first SIGTERM; an idle server exits in milliseconds
FORCE_TIMEOUT = 5.0  # after the second SIGTERM, which closes the rooms; then SIGKILL
LOG_TAIL_LINES = 40


@attrs.frozen(kw_only=True)
class LiveKitServer:
    """A running livekit-server: where to reach it, and its credentials."""

    url: str  # ws://127.0.0.1:<port>, for rtc.Room and workers
    http_url: str  # http://127.0.0.1:<port>, for livekit.api.LiveKitAPI
    api_key: str
    api_secret: str
    config: LocalServerConfig
    log_path: Path

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The end of the server's log, to add to a failure message."""
        return _tail(self.log_path, lines)


@pytest.fixture(scope="session")
def livekit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKitServer]:
    """livekit-server on 127.0.0.1 with keys ``devkey: secret``, for the whole session."""
    with run_livekit_server(tmp_path_factory.mktemp("livekit-server")) as server:
        yield server


@contextlib.contextmanager
def run_livekit_server(
    folder: Path, config: LocalServerConfig | None = None
) -> Iterator[LiveKitServer]:
    """Start livekit-server with its config and log in ``folder``; stop it on exit (bounded)."""
    binary = _server_binary()
    if config is None:
        config = LocalServerConfig(
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
        )
    finally:
        _stop(process)


def _server_binary() -> Path:
    binary = find_server_binary()
    if binary is None:
        where = os.environ.get(BINARY_ENV)
        pytest.fail(
            f"${BINARY_ENV}={where} is not a file"
            if where
            else f"livekit-server {SERVER_VERSION} is not installed: run {INSTALL_COMMAND}"
            f" (or point ${BINARY_ENV} at a server binary)",
            pytrace=False,
        )
    return binary


def _wait_until_serving(process: subprocess.Popen[bytes], http_url: str, log_path: Path) -> None:
    # Outside any event loop: polling on the wall clock is the only way to wait for a process.
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            # The server exits with status 0 even when it rejects its config.
            pytest.fail(
                f"livekit-server exited with status {process.returncode} on start;"
                f" log {log_path}:\n{_tail(log_path)}",
                pytrace=False,
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
            pytest.fail(
                f"livekit-server did not answer GET {http_url} within {START_TIMEOUT:.0f} s;"
                f" log {log_path}:\n{_tail(log_path)}",
                pytrace=False,
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


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])
