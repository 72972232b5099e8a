"""One generation: LLM (or given text) -> text log -> TTS -> audio frames, ready to play."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import trio

from ..audio import AudioFrame
from ..llm import ChatContext, FunctionCall, Tool
from ..tts import SpokenSegment
from ._text_log import TextLog

if TYPE_CHECKING:
    from ._agent import Agent, ModelSettings

__all__ = ["Generation"]

logger = logging.getLogger("tvoice.voice")
ErrorSink = Callable[[BaseException, Any], None]


class Generation:
    """Produces one step of a speech. Production can start before the speech is allowed to
    play (preemptive generation): text and tool calls are logged, audio waits in a bounded
    channel until the player reads it. A generation started as it plays has the player run
    the TTS node instead. ``cancel()`` stops production wherever it is."""

    def __init__(
        self,
        agent: Agent,
        settings: ModelSettings,
        *,
        audio: bool,
        on_error: ErrorSink,
    ) -> None:
        self.agent = agent
        self.settings = settings
        self.audio = audio
        self.text = TextLog()
        self.calls: list[FunctionCall] = []
        self.calls_closed = False
        self._call_listener: Callable[[FunctionCall], None] | None = None
        # Audio made ahead of the player (a task runs the TTS node): opened only then.
        self._frame_send: trio.MemorySendChannel[AudioFrame] | None = None
        self._frames: trio.MemoryReceiveChannel[AudioFrame] | None = None
        self._scope: trio.CancelScope | None = None
        self._tts_in_player = False
        self._cancelled = False
        self.started = False
        self.failed = False
        self.started_at = trio.current_time()
        self.first_token_at: float | None = None
        self.first_frame_at: float | None = None
        # Its audio as it went to the output, with the TTS's word timings: what was heard.
        self.spoken = SpokenSegment()
        self.heard: str | None = None
        self._on_error = on_error

    def pushed(self, frame: AudioFrame) -> None:
        """``frame`` of its audio went to the output."""
        self.spoken.push(frame)

    @property
    def audio_pushed(self) -> float:
        """Seconds of its audio that went to the output."""
        return self.spoken.pushed

    def cancel(self) -> None:
        """Stop producing (the player then sees the end of text and audio)."""
        self._cancelled = True
        if self._scope is not None:
            self._scope.cancel()

    def start(
        self,
        nursery: trio.Nursery,
        *,
        chat_ctx: ChatContext | None = None,
        tools: Sequence[Tool] = (),
        text: str | AsyncIterable[str] | None = None,
        playing: bool = False,
    ) -> None:
        """Produce in a task of ``nursery`` (see :meth:`produce`); ``started`` at once, so
        a speech that adopts this generation before its task ran does not start it again.

        ``playing``: the speech plays it now, so the player runs the TTS node itself as it
        reads the audio (:meth:`play_audio`), with no task or channel of its own; otherwise
        (a preemptive generation, made before it may play) a task runs the TTS node ahead,
        into a bounded channel."""
        self.started = True
        self._tts_in_player = playing and self.audio
        if self.audio and not playing:
            self._open_frames()
        nursery.start_soon(lambda: self.produce(chat_ctx=chat_ctx, tools=tools, text=text))

    async def produce(
        self,
        *,
        chat_ctx: ChatContext | None = None,
        tools: Sequence[Tool] = (),
        text: str | AsyncIterable[str] | None = None,
    ) -> None:
        """Run the LLM node (or read ``text``) and the TTS node until done or cancelled."""
        self.started = True
        self.started_at = trio.current_time()
        # The nursery's own scope is the one cancel() cancels: one scope fewer per step.
        async with trio.open_nursery() as nursery:
            self._scope = nursery.cancel_scope
            if self._cancelled:
                nursery.cancel_scope.cancel()
            if self.audio and not self._tts_in_player:
                self._open_frames()
                nursery.start_soon(self._run_tts)
            # The text side runs in this task: one task fewer per step.
            if text is None:
                assert chat_ctx is not None
                await self._run_llm(chat_ctx, tools)
            else:
                await self._run_text(text)
        self._close_text()
        if self._frame_send is not None:
            self._frame_send.close()

    def _open_frames(self) -> None:
        if self._frame_send is None:
            self._frame_send, self._frames = trio.open_memory_channel(64)

    def on_call(self, listener: Callable[[FunctionCall], None] | None) -> None:
        """Call ``listener`` with every tool call, those already made first (a preemptive
        generation may have some); ``None`` stops it. It runs in the producing task, so a tool
        starts the moment its call arrives, with no task waiting for calls."""
        self._call_listener = listener
        if listener is not None:
            for call in list(self.calls):
                listener(call)

    def _close_text(self) -> None:
        self.text.close()
        self.calls_closed = True

    def _add_text(self, piece: str) -> None:
        if piece and self.first_token_at is None:
            self.first_token_at = trio.current_time()
        self.text.append(piece)

    async def _run_text(self, text: str | AsyncIterable[str]) -> None:
        try:
            if isinstance(text, str):
                self._add_text(text)
            else:
                async for piece in text:
                    self._add_text(piece)
        finally:
            self._close_text()

    async def _run_llm(self, chat_ctx: ChatContext, tools: Sequence[Tool]) -> None:
        try:
            node = self.agent.llm_node(chat_ctx, tools, self.settings)
            async with aclosing(node) as chunks:
                async for chunk in chunks:
                    if isinstance(chunk, str):
                        self._add_text(chunk)
                        continue
                    if chunk.delta is None:
                        continue
                    self._add_text(chunk.delta.content or "")
                    for call in chunk.delta.tool_calls:
                        if self.first_token_at is None:
                            self.first_token_at = trio.current_time()
                        # A fresh item: providers (and scripts) may repeat call objects.
                        made = FunctionCall(
                            call_id=call.call_id, name=call.name, arguments=call.arguments
                        )
                        self.calls.append(made)
                        if self._call_listener is not None:
                            self._call_listener(made)
        except Exception as e:
            self.failed = True
            self._on_error(e, self.settings.models.llm)
        finally:
            self._close_text()

    async def _run_tts(self) -> None:
        send = self._frame_send
        assert send is not None
        try:
            node = self.agent.tts_node(self.text.reader(), self.settings)
            async with send, aclosing(node) as frames:
                async for frame in frames:
                    self._note_frame()
                    await send.send(frame)
        except Exception as e:
            self._tts_failed(e)

    def _note_frame(self) -> None:
        if self.first_frame_at is None:
            self.first_frame_at = trio.current_time()

    def _tts_failed(self, error: Exception) -> None:
        self.failed = True
        self._on_error(error, self.settings.models.tts)

    async def play_audio(self, play: Callable[[AudioFrame], Awaitable[None]]) -> None:
        """Hand every audio frame to ``play``, in order, until the last. A TTS failure ends
        the audio (it is reported); an error from ``play`` propagates."""
        if not self._tts_in_player:
            while (frame := await self._next_frame()) is not None:
                await play(frame)
            return
        node = self.agent.tts_node(self.text.reader(), self.settings)
        try:
            while True:
                try:
                    frame = await anext(node)
                except StopAsyncIteration:
                    break
                except Exception as e:
                    self._tts_failed(e)
                    break
                self._note_frame()
                await play(frame)
        finally:
            try:
                await node.aclose()
            except Exception as e:
                self._tts_failed(e)

    async def _next_frame(self) -> AudioFrame | None:
        frames = self._frames
        if frames is None:  # no audio
            await trio.lowlevel.checkpoint()
            return None
        try:
            return await frames.receive()
        except trio.EndOfChannel:
            return None
