"""Shared fixtures: hypothesis profiles, and real speech that espeak-ng says (nothing is
downloaded)."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tvoice.audio import AudioFrame, read_wav, resample
from tvoice.testing import LiveKitServer, LiveKitServerConfig, LiveKitServerError
from tvoice.testing import run_livekit_server as _run_livekit_server

settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

QUESTION = "What is the weather in Paris?"


@pytest.fixture(scope="session", autouse=True)
def _own_inference_server(tmp_path_factory):
    """The tests' processes share an inference server of their own (``local_models_url`` keeps
    its state under XDG_RUNTIME_DIR), never one a developer or another checkout runs; it is
    stopped when the tests end."""
    folder = tmp_path_factory.mktemp("runtime")
    previous = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(folder)
    yield
    if previous is None:
        del os.environ["XDG_RUNTIME_DIR"]
    else:
        os.environ["XDG_RUNTIME_DIR"] = previous
    for state in folder.glob("tvoice-*/models.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            os.kill(json.loads(state.read_text())["pid"], signal.SIGTERM)


def espeak(text: str, path) -> AudioFrame:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (apt-get install espeak-ng; .ci/run does it)")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    return read_wav(path)


@pytest.fixture(scope="session")
def question_audio(tmp_path_factory) -> AudioFrame:
    """'What is the weather in Paris?' spoken by espeak-ng, at 16 kHz mono."""
    frame = espeak(QUESTION, tmp_path_factory.mktemp("speech") / "question.wav")
    return resample(frame, 16000)


@pytest.fixture(scope="session")
def speak(tmp_path_factory):
    """``speak(text, rate=16000)`` -> AudioFrame of espeak-ng saying ``text``."""
    folder = tmp_path_factory.mktemp("said")

    def say(text: str, rate: int = 16000) -> AudioFrame:
        return resample(espeak(text, folder / f"{abs(hash(text))}.wav"), rate)

    return say


# -- the real LiveKit server on loopback ------------------------------------------------------
# The binary comes from scripts/install-livekit-server.sh (CI runs it); a missing binary fails
# the tests that need it rather than skipping them, so a broken install cannot pass unnoticed.


@pytest.fixture(scope="session")
def livekit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKitServer]:
    """livekit-server on 127.0.0.1 with keys ``devkey: secret``, for the whole session."""
    with run_livekit_server(tmp_path_factory.mktemp("livekit-server")) as server:
        yield server


@contextlib.contextmanager
def run_livekit_server(
    folder: Path, config: LiveKitServerConfig | None = None
) -> Iterator[LiveKitServer]:
    """Start livekit-server in ``folder`` (on ``config``'s ports when given); stop it on exit.
    A missing binary fails the test rather than skipping it, so a broken install cannot pass."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(_run_livekit_server(folder, config))
        except LiveKitServerError as e:
            pytest.fail(str(e), pytrace=False)
        yield server
