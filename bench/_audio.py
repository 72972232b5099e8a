"""The user's voice for the density and memory scenarios, made once per run with espeak-ng.

Runs in tvoice's environment (it resamples with ``tvoice.audio``); the result is a ``.npz`` that
both sides load with numpy, so both frameworks hear exactly the same samples.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tvoice.audio import read_wav, resample

SENTENCES = [
    "What is the weather in Paris today?",
    "I would like to book a table for two people tomorrow evening.",
    "Thank you very much, that will be all.",
]
RATE = 16000
PAUSE = 3.5  # seconds of silence after each utterance: the agent's reply (2 s) fits in it
LEAD = 0.3  # silence before each utterance


def make_user_audio(path: Path, *, seed: int = 3) -> dict[str, float]:
    """Write ``path`` (.npz: samples, spans, texts); return a description of the loop."""
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    with tempfile.TemporaryDirectory() as folder:
        for i, text in enumerate(SENTENCES):
            wav = Path(folder) / f"{i}.wav"
            subprocess.run(
                ["espeak-ng", "-v", "en-us", "-s", "165", "-w", str(wav), text], check=True
            )
            speech = resample(read_wav(wav), RATE).data[:, 0]
            loud = np.flatnonzero(np.abs(speech.astype(np.int32)) > 300)
            speech = speech[loud[0] : loud[-1] + 1]
            lead = np.zeros(round(LEAD * RATE), np.int16)
            pause = np.zeros(round(PAUSE * RATE), np.int16)
            spans.append((pos + len(lead), pos + len(lead) + len(speech)))
            for block in (lead, speech, pause):
                parts.append(block)
                pos += len(block)
    samples = np.concatenate(parts)
    # A faint noise floor (about -60 dBFS), as a real microphone has.
    noise = rng.normal(0, 30, len(samples)).round().astype(np.int32)
    samples = np.clip(samples.astype(np.int32) + noise, -32768, 32767).astype(np.int16)
    np.savez(path, samples=samples, spans=np.array(spans), texts=np.array(SENTENCES))
    speech_s = sum(e - s for s, e in spans) / RATE
    return {"loop_s": len(samples) / RATE, "speech_s": speech_s, "utterances": len(spans)}
