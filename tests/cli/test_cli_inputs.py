"""The command line refuses bad inputs with one clear line, and takes odd but valid ones (no
server, no models: in process)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trio

from tvoice import Agent, AgentSession
from tvoice.audio import AudioFrame, read_wav, write_wav
from tvoice.cli._console_command import run_console
from tvoice.job import ConsoleRoom, WorkerOptions
from tvoice.job._loader import load_agent_file, split_target

AGENT = """
async def entrypoint(ctx):
    pass


async def other(ctx):
    pass
"""


async def _never(ctx: object) -> None:
    raise AssertionError("not called")


@pytest.fixture
def colon_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "agents:v2"
    folder.mkdir()
    (folder / "agent.py").write_text(AGENT)
    return folder


def test_an_agent_path_with_a_colon_loads(colon_dir: Path):
    path = str(colon_dir / "agent.py")
    assert split_target(path) == (path, "")
    assert split_target(f"{path}:other") == (path, "other")
    assert load_agent_file(path).entrypoint_fnc.__name__ == "entrypoint"
    assert load_agent_file(f"{path}:other").entrypoint_fnc.__name__ == "other"


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"not a wav file at all", "only 16-bit PCM WAV files are supported"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "only 16-bit PCM WAV files are supported"),
    ],
)
def test_a_malformed_input_wav_is_one_clear_line(tmp_path: Path, content: bytes, error: str):
    prewarmed = []
    wav = tmp_path / "user.wav"
    wav.write_bytes(content)
    options = WorkerOptions(entrypoint_fnc=_never, prewarm_fnc=prewarmed.append)
    with pytest.raises(SystemExit, match=error) as info:
        run_console(options, input_wav=wav, output_wav=None, text=False)
    assert str(info.value).startswith(f"tvoice console: {wav}")
    assert prewarmed == []  # refused before any model loads


def test_a_missing_input_wav_is_one_clear_line(tmp_path: Path):
    options = WorkerOptions(entrypoint_fnc=_never)
    with pytest.raises(SystemExit, match="No such file"):
        run_console(options, input_wav=tmp_path / "nope.wav", output_wav=None, text=False)


async def test_the_console_recording_is_on_disk_before_the_call_ends(
    tmp_path: Path, autojump_clock: trio.abc.Clock
):
    # A call that crashes after 12 s: what it had recorded is there, not lost with it.
    tone = (3000 * np.sin(np.arange(16000 * 20) / 16000 * 2 * np.pi * 300)).astype(np.int16)
    write_wav(tmp_path / "in.wav", AudioFrame(tone[:, None], 16000, 1))
    out = tmp_path / "out.wav"
    room = ConsoleRoom(input_wav=tmp_path / "in.wav", output_wav=out)
    with pytest.raises(RuntimeError, match="crash"):
        async with AgentSession() as session:
            await session.start(Agent(instructions="Listen."), room=room)
            await trio.sleep(12)
            raise RuntimeError("crash")
    recorded = read_wav(out)
    assert recorded.duration >= 10.0
    assert np.abs(recorded.data).max() > 1000  # the caller's side is in it
