"""Cost of the Silero VAD on one core: CPU seconds per second of audio, and frames per second.

Feeds 60 s of speech and silence (espeak-ng) in 20 ms frames through one stream, as fast as
it goes, and prints the figures. Run: ``.venv/bin/python bench/bench_silero.py [--rate 48000]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import trio

from tvoice.audio import AudioChunker, AudioFrame, read_wav, resample
from tvoice.vad import VADEventType
from tvoice_plugins import silero

SENTENCES = [
    "What is the weather in Paris?",
    "I would like to book a table for two people tomorrow evening.",
    "Thank you very much, that will be all.",
]


def speech_and_silence(seconds: float, rate: int) -> AudioFrame:
    """Sentences separated by a second of silence, repeated to ``seconds``."""
    parts: list[np.ndarray] = []
    with tempfile.TemporaryDirectory() as folder:
        for i, text in enumerate(SENTENCES):
            path = Path(folder) / f"{i}.wav"
            subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text], check=True)
            parts += [resample(read_wav(path), rate).data[:, 0], np.zeros(rate, np.int16)]
    block = np.concatenate(parts)
    total = round(seconds * rate)
    return AudioFrame(np.resize(block, total), rate)


async def measure(audio: AudioFrame, vad: silero.VAD) -> None:
    frames = AudioChunker(audio.sample_rate, frame_duration=0.02).push(audio)
    speeches = 0
    async with vad.stream() as stream, trio.open_nursery() as nursery:

        async def push() -> None:
            for frame in frames:
                await stream.push_frame(frame)
            stream.end_input()

        cpu, wall = time.process_time(), time.perf_counter()
        nursery.start_soon(push)
        async for event in stream:
            speeches += event.type == VADEventType.END_OF_SPEECH
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"input: {audio.duration:.0f} s at {audio.sample_rate} Hz, {len(frames)} frames of 20 ms")
    print(f"speech segments found: {speeches}")
    print(f"CPU per audio second: {cpu / audio.duration * 1000:.2f} ms ({cpu:.3f} s in all)")
    print(f"frames per second: {len(frames) / wall:,.0f} (wall), {len(frames) / cpu:,.0f} (CPU)")
    print(f"real-time factor: {audio.duration / wall:,.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=16000, help="input sample rate")
    parser.add_argument("--model-rate", type=int, default=16000, choices=(8000, 16000))
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as in production
    vad = silero.VAD.load(sample_rate=args.model_rate)  # loading is not part of the figure
    trio.run(measure, speech_and_silence(args.seconds, args.rate), vad)


if __name__ == "__main__":
    main()
