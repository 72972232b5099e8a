"""`tvoice console` end to end on the offline stack: a spoken question in, a spoken reply out."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tvoice.audio import read_wav

ROOT = Path(__file__).parents[2]

pytestmark = pytest.mark.slow


def run_console(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "tvoice", "console", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_call_from_a_wav_file(tmp_path):
    question = tmp_path / "question.wav"
    subprocess.run(
        [
            "espeak-ng",
            "-v",
            "en-us",
            "-s",
            "150",
            "-w",
            str(question),
            "What is the weather in Paris?",
        ],
        check=True,
    )
    reply = tmp_path / "reply.wav"
    done = run_console("examples/assistant.py", "--input", str(question), "--output", str(reply))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    user_lines = [line for line in out.splitlines() if line.startswith("user: ")]
    assert len(user_lines) == 1
    assert "weather" in user_lines[0].lower()
    assert "paris" in user_lines[0].lower()
    assert any(line.startswith("agent: ") and len(line) > 10 for line in out.splitlines())
    # Model loading shows progress.
    assert "[loaded the local models (Whisper, SmolLM2, Piper) in" in out
    # The latency table: a header, a separator, one row per turn.
    rows = [line for line in out.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 1
    assert re.search(r"\| \d+ ms \|$", rows[0])  # end of speech -> first audio was measured
    # The recording holds the question and a spoken reply after it.
    recording = read_wav(reply)
    heard = float(re.search(r"\(([\d.]+) s of agent audio\)", out).group(1))
    assert heard > 0.5
    asked = read_wav(question).duration
    assert recording.duration > asked + 0.5
    after_question = recording.data[int(asked * recording.sample_rate) :, 0].astype(float)
    assert np.sqrt(np.mean(after_question**2)) > 100  # speech, not silence


def test_fast_mode_does_not_wait_for_the_callers_pace(tmp_path):
    reply = tmp_path / "reply.wav"
    done = run_console(
        "examples/assistant.py",
        "--input",
        "examples/question.wav",
        "--fast",
        "--output",
        str(reply),
    )
    assert done.returncode == 0, done.stderr
    assert "user: What is the weather in Paris?" in done.stdout
    # The assistant looks the weather up and says what its tool returned.
    assert '  tool get_weather({"city": "Paris"})' in done.stdout
    (answer,) = [line for line in done.stdout.splitlines() if line.startswith("agent: ")]
    assert "sunny" in answer
    assert "21 degrees" in answer
    assert read_wav(reply).duration > read_wav(ROOT / "examples" / "question.wav").duration


def test_text_mode(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tvoice", "console", "examples/assistant.py", "--text"],
        cwd=ROOT,
        input="Hello there!\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "user: Hello there!" in done.stdout
    assert any(line.startswith("agent: ") for line in done.stdout.splitlines())


def test_bad_arguments_give_clear_errors(tmp_path):
    done = run_console("examples/nope.py", "--text")
    assert done.returncode != 0
    assert "no such agent file" in done.stderr
    done = run_console("examples/assistant.py:missing", "--text")
    assert "has no 'missing'" in done.stderr
