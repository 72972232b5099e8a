"""The agent the end-to-end tests dispatch: real Silero VAD, Whisper and espeak-ng, and an LLM
that repeats what it heard, so every reply is known in advance.

``ECHO_PREFIX`` opens every reply; a long tail follows so a client can speak over it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import trio
import trio.lowlevel

from tvoice import (
    Agent,
    AgentSession,
    APIConnectOptions,
    JobContext,
    JobProcess,
    WorkerOptions,
    run_app,
)
from tvoice.llm import (
    LLM,
    ChatChunk,
    ChatContext,
    ChoiceDelta,
    LLMStream,
    Tool,
    ToolChoice,
)

ECHO_PREFIX = "You said"
TAIL = (
    " Let me tell you about our opening hours. We are open every day from nine in the morning"
    " until nine in the evening, except on public holidays, when we close at five."
)


_OPTIONS = APIConnectOptions()


class EchoLLM(LLM):
    """Replies ``You said: <last user message>.`` followed by :data:`TAIL`, word by word."""

    @property
    def model(self) -> str:
        return "echo"

    def chat(
        self,
        *,
        chat_ctx: ChatContext,
        tools: Sequence[Tool] = (),
        tool_choice: ToolChoice = "auto",
        conn_options: APIConnectOptions = _OPTIONS,
        extra: dict[str, Any] | None = None,
    ) -> LLMStream:
        return _EchoStream(
            self, chat_ctx=chat_ctx, tools=tools, tool_choice=tool_choice, conn_options=conn_options
        )


class _EchoStream(LLMStream):
    async def _run(self) -> None:
        heard = next(
            (
                item.text_content or ""
                for item in reversed(self.chat_ctx.items)
                if item.type == "message" and item.role == "user"
            ),
            "",
        )
        reply = f"{ECHO_PREFIX}: {heard.strip().rstrip('.?!')}.{TAIL}"
        for word in reply.split(" "):
            delta = ChoiceDelta(content=word + " ")
            await self._emit_chunk(ChatChunk(id=self.request_id, delta=delta))
            await trio.lowlevel.checkpoint()


def prewarm(proc: JobProcess) -> None:
    from tvoice_plugins import espeak, silero, whisper

    proc.userdata["vad"] = proc.load("Silero VAD", silero.VAD.load)
    proc.userdata["stt"] = proc.load("Whisper tiny.en", whisper.STT.load)
    proc.userdata["tts"] = espeak.TTS()


async def entrypoint(ctx: JobContext) -> None:
    marker = os.environ.get("TVOICE_TEST_MARKER_DIR")
    if marker:
        # Which worker process ran which room: the drain and crash tests read these files.
        path = trio.Path(marker) / f"{ctx.job.room_name}.{os.getpid()}"
        await path.write_text(ctx.job.id)
    await ctx.connect()
    async with AgentSession(
        vad=ctx.proc.userdata["vad"],
        stt=ctx.proc.userdata["stt"],
        tts=ctx.proc.userdata["tts"],
        llm=EchoLLM(),
        min_interruption_duration=0.3,
    ) as session:
        await session.start(Agent(instructions="Repeat what you hear."), room=ctx.room)
        await session.wait_closed()


# The load is the share of 8 jobs: test machines run busy, and the server sends nothing to a
# worker at CPU load 1; with two workers the one with fewer jobs gets the next. On a busy test
# machine a process loading Whisper beside others can take over 10 s to warm (seen in CI): the
# tests here are about dispatch and calls, not warm-up time.
options = WorkerOptions(
    entrypoint_fnc=entrypoint,
    prewarm_fnc=prewarm,
    agent_name="echo",
    load_fnc=lambda worker: len(worker.active_jobs) / 8,
    load_threshold=1.0,
    num_idle_processes=1,
    initialize_process_timeout=30.0,
    port=0,
)

if __name__ == "__main__":
    run_app(options)
