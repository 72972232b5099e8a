"""Playout: one generation's audio to the output and its text through the transcription node;
on a cut, what the listener heard."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from typing import Protocol

import trio

from ..audio import AudioFrame
from ..io import AudioOutput, TextOutput
from ._agent import Agent
from ._generation import Generation

__all__ = ["Playout", "PlayoutHost"]


class PlayoutHost(Protocol):
    """Where the agent's audio and text go (the session's runtime)."""

    @property
    def audio_output(self) -> AudioOutput | None: ...
    @property
    def text_output(self) -> TextOutput | None: ...


class Playout:
    """Plays the generations of one agent, one at a time, and knows which one is heard."""

    def __init__(self, host: PlayoutHost, agent: Agent) -> None:
        self._host = host
        self._agent = agent
        self._current: Generation | None = None
        self._heard: Generation | None = None  # the one whose playout started

    @property
    def playing(self) -> bool:
        """The generation being played has been heard (its playout started)."""
        return self._heard is not None and self._heard is self._current

    def reset(self) -> None:
        """The speech ended: nothing is played any more."""
        self._current = self._heard = None

    async def play(self, gen: Generation, on_started: Callable[[], None]) -> None:
        """Play a generation's audio and text; ``on_started`` once the listener hears it. On
        cancellation, cut the output and remember what was heard (``gen.heard``)."""
        self._current = gen
        output = self._host.audio_output
        text_output = self._host.text_output
        started = False

        def started_now(_: object) -> None:
            nonlocal started
            if started or self._current is not gen:
                return
            started = True
            self._heard = gen
            on_started()

        audio = output if gen.audio else None
        if audio is not None:
            audio.on("playback_started", started_now)
        try:
            # The transcription node always runs: an agent's own may do more than pass the
            # text on, even where the transcript goes nowhere.
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._forward_text, gen, text_output, started_now)
                await self._play_out(gen, audio)
        finally:
            if gen.heard is None:
                with trio.CancelScope(shield=True):
                    gen.heard = await self._cut(gen)
            if audio is not None:
                audio.off("playback_started", started_now)

    async def _play_out(self, gen: Generation, output: AudioOutput | None) -> None:
        if output is not None:

            async def play(frame: AudioFrame) -> None:
                await output.capture_frame(frame)
                gen.pushed(frame)

            await gen.play_audio(play)
            output.flush()
            played = 0.0
            if gen.audio_pushed > 0:
                finished = await output.wait_for_playout()
                played = finished.playback_position
            gen.heard = gen.spoken.heard(gen.text.text, played=played)
        else:
            await gen.text.wait_closed()
            gen.heard = gen.text.text

    async def _cut(self, gen: Generation) -> str:
        output = self._host.audio_output
        text_output = self._host.text_output
        if text_output is not None:
            text_output.flush()
        if output is None or not gen.audio:
            return gen.text.text
        spoken = gen.spoken.before_now()
        output.clear_buffer()
        position = 0.0
        with trio.move_on_after(1.0):
            position = (await output.wait_for_playout()).playback_position
        if output.can_pause:
            output.resume()
        return spoken.heard(gen.text.text, played=position)

    async def _forward_text(
        self,
        gen: Generation,
        text_output: TextOutput | None,
        on_started: Callable[[object], None],
    ) -> None:
        node = self._agent.transcription_node(gen.text.reader(), gen.settings)
        async with aclosing(node) as pieces:
            async for piece in pieces:
                if not gen.audio:
                    on_started(None)
                if text_output is not None:
                    await text_output.capture_text(piece)
        if text_output is not None:
            text_output.flush()
