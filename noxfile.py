"""Developer sessions: `nox -s tests`, `nox -s lint typing`, `nox -s demo`, `nox -s bench`."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]

ROOT = Path(__file__).parent
CI = bool(os.environ.get("CI"))
DEV = [".[dev]"]
COVERED = ["audio", "io", "tokenize", "llm", "stt", "tts", "vad", "testing"]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, with branch coverage of the foundation layers."""
    session.install("-e", *DEV)
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
    session.install("mypy", "-e", *DEV)
    session.run("mypy")
