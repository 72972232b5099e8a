"""A real LiveKit server on loopback, one per test session.

The binary comes from ``scripts/install-livekit-server.sh`` (CI runs it); a missing binary fails
the tests that need it rather than skipping them, so a broken install cannot pass unnoticed.
Tests that need a server of their own (to restart it, say) use :func:`run_livekit_server`;
passing a running server's ``config`` starts the next one on the same ports.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tvoice.livekit._server_config import LocalServer, LocalServerConfig, ServerError
from tvoice.livekit._server_config import run_local_server as _run_local_server

# The tests' name for a running server.
LiveKitServer = LocalServer


@pytest.fixture(scope="session")
def livekit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKitServer]:
    """livekit-server on 127.0.0.1 with keys ``devkey: secret``, for the whole session."""
    with run_livekit_server(tmp_path_factory.mktemp("livekit-server")) as server:
        yield server


@contextlib.contextmanager
def run_livekit_server(
    folder: Path, config: LocalServerConfig | None = None
) -> Iterator[LiveKitServer]:
    """Start livekit-server in ``folder`` (on ``config``'s ports when given); stop it on exit.
    A missing binary fails the test rather than skipping it, so a broken install cannot pass."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(_run_local_server(folder, config))
        except ServerError as e:
            pytest.fail(str(e), pytrace=False)
        yield server
