"""Shared fixtures: hypothesis profiles, and real speech that espeak-ng says (nothing is
downloaded)."""

import contextlib
import json
import os
import shutil
import signal
import subprocess

import pytest
from hypothesis import HealthCheck, settings

from tvoice.audio import AudioFrame, read_wav, resample

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
