"""`tvoice worker` / `tvoice connect` refuse bad set-ups with one clear line (no server needed;
the commands serving real rooms are tested in tests/livekit/test_e2e.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
ECHO = "tests/livekit/agents/echo.py"


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    return subprocess.run(
        [sys.executable, "-m", "tvoice", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**clean, **env},
    )


@pytest.mark.parametrize("command", [["worker", ECHO], ["connect", "--room", "r1", ECHO]])
def test_missing_credentials_are_named(command: list[str]) -> None:
    done = run(*command, LIVEKIT_URL="ws://127.0.0.1:9")
    assert done.returncode != 0
    assert "LIVEKIT_API_KEY and LIVEKIT_API_SECRET" in done.stderr


def test_an_unknown_agent_file_is_named() -> None:
    done = run("worker", "tests/nope.py", LIVEKIT_API_KEY="k", LIVEKIT_API_SECRET="s")
    assert done.returncode != 0
    assert "no such agent file: tests/nope.py" in done.stderr


def test_a_bad_url_is_refused_before_any_retry() -> None:
    done = run(
        "worker", ECHO, "--url", "ftp://nowhere", LIVEKIT_API_KEY="k", LIVEKIT_API_SECRET="s"
    )
    assert done.returncode != 0
    assert "not a LiveKit server URL" in done.stderr
    assert "Traceback" not in done.stderr
