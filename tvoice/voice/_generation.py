"""One generation: LLM (or given text) -> text log -> TTS -> audio frames, ready to play."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterable, Callable, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import trio

from ..audio import AudioFrame
from ..llm import ChatContext, FunctionCall, Tool
from ..tokenize import split_words
from ._text_log import TextLog

if TYPE_CHECKING:
    from ._agent import Agent, ModelSettings

__all__ = ["Generation", "heard_text"]

logger = logging.getLogger("tvoice.voice")
ErrorSink = Callable[[BaseException, Any], None]


class Generation:
    """Produces one step of a speech. Production can start before the speech is allowed to
    play (preemptive generation): text and tool calls are logged, audio waits in a bounded
    channel until the player reads it. ``cancel()`` stops production wherever it is."""

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
        self.frame_send: trio.MemorySendChannel[AudioFrame]
        self.frames: trio.MemoryReceiveChannel[AudioFrame]
        self.frame_send, self.frames = trio.open_memory_channel(64)
        self._scope: trio.CancelScope | None = None
        self._cancelled = False
        self.started = False
        self.failed = False
        self.started_at = trio.current_time()
        self.first_token_at: float | None = None
        self.first_frame_at: float | None = None
        self.audio_pushed = 0.0
        self.heard: str | None = None
        self._on_error = on_error

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
    ) -> None:
        """Produce in a task of ``nursery`` (see :meth:`produce`); ``started`` at once, so
        a speech that adopts this generation before its task ran does not start it again."""
        self.started = True
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
            if self.audio:
                nursery.start_soon(self._run_tts)
            else:
                self.frame_send.close()
            # The text side runs in this task: one task fewer per step.
            if text is None:
                assert chat_ctx is not None
                await self._run_llm(chat_ctx, tools)
            else:
                await self._run_text(text)
        self._close_text()
        self.frame_send.close()

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
            self._on_error(e, self.agent.activity.llm)
        finally:
            self._close_text()

    async def _run_tts(self) -> None:
        try:
            node = self.agent.tts_node(self.text.reader(), self.settings)
            async with self.frame_send, aclosing(node) as frames:
                async for frame in frames:
                    if self.first_frame_at is None:
                        self.first_frame_at = trio.current_time()
                    try:  # no scheduler step while there is room (the player yields enough)
                        self.frame_send.send_nowait(frame)
                    except trio.WouldBlock:
                        await self.frame_send.send(frame)
        except Exception as e:
            self.failed = True
            self._on_error(e, self.agent.activity.tts)

    async def next_frame(self) -> AudioFrame | None:
        """The next frame to play, ``None`` after the last; a frame already there is taken
        without a scheduler step."""
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            return self.frames.receive_nowait()
        except trio.WouldBlock:
            pass
        except trio.EndOfChannel:
            return None
        try:
            return await self.frames.receive()
        except trio.EndOfChannel:
            return None


def heard_text(text: str, *, played: float, pushed: float) -> str:
    """The part of ``text`` a listener heard after ``played`` of ``pushed`` seconds of audio:
    the same share of its words, cut at a word boundary."""
    if pushed <= 0 or played <= 0:
        return ""
    if played >= pushed - 1e-9:
        return text
    words = split_words(text)
    n = math.floor(len(words) * played / pushed)
    return text[: words[n - 1].end] if n > 0 else ""
