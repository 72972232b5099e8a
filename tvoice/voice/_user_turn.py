"""The user's turn, as the agent takes it: a reply prepared before the turn ends (preemptive),
the turn committed, ``on_user_turn_completed``, and the reply queued."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import trio

from ..llm import ChatContext, ChatItem, ChatMessage, StopResponse
from ..metrics import AgentMetrics, EOUMetrics
from ..tokenize import count_words
from ._agent import Agent
from ._generation import Generation
from ._interruptions import Interruptions
from ._options import SessionOptions
from ._recognition import EndOfTurn
from ._reply import Replies
from ._speech_queue import SpeechQueue
from ._tools import SessionRecord

__all__ = ["ReplyToTurn", "UserTurnHost", "UserTurns"]

logger = logging.getLogger("tvoice.voice")

# Queues the reply to a committed turn: its user message, the turn, a preemptive generation.
ReplyToTurn = Callable[[ChatMessage, EndOfTurn, Generation | None], object]


class UserTurnHost(SessionRecord, Protocol):
    """What taking the user's turn reads and tells of the session (its runtime)."""

    @property
    def options(self) -> SessionOptions: ...
    def report_metrics(self, metrics: AgentMetrics) -> None: ...


class _Preemptive:
    def __init__(self, generation: Generation, transcript: str, fingerprint: object) -> None:
        self.generation = generation
        self.transcript = transcript
        self.fingerprint = fingerprint


class UserTurns:
    """Takes the user's turns for one agent: each committed turn runs the agent's hook in a
    task of the activity's nursery, then queues the reply (the preemptive one when it still
    fits the turn)."""

    def __init__(
        self,
        agent: Agent,
        host: UserTurnHost,
        *,
        queue: SpeechQueue,
        interruptions: Interruptions,
        replies: Replies,
        reply: ReplyToTurn,
        on_change: Callable[[], None],
    ) -> None:
        self._agent = agent
        self._host = host
        self._queue = queue
        self._interruptions = interruptions
        self._replies = replies
        self._reply = reply
        self._on_change = on_change
        self.nursery: trio.Nursery | None = None  # the activity's, once it runs
        self._preemptive: _Preemptive | None = None
        self._turn_tasks = 0

    @property
    def idle(self) -> bool:
        """No turn is being taken and no reply prepared."""
        return self._preemptive is None and self._turn_tasks == 0

    # -- preemptive replies ---------------------------------------------------------------------

    def on_preemptive_generation(self, transcript: str) -> None:
        """A final transcript exists: start the reply now, to adopt if the turn ends as is."""
        self.cancel_preemptive()
        if not self._host.options.preemptive_generation or self.nursery is None:
            return
        speech = self._queue.next()
        if speech is not None and not speech.allow_interruptions:
            return
        ctx = self._replies.llm_context(None)
        ctx.add_message(role="user", content=transcript)
        gen = self._replies.new_generation(self._replies.settings())
        self._preemptive = _Preemptive(gen, transcript, self._fingerprint())
        tools = self._agent.tools
        gen.start(self.nursery, chat_ctx=ctx, tools=tools)

    def cancel_preemptive(self) -> None:
        """Drop the reply prepared for a turn that will not end as it stood."""
        if self._preemptive is not None:
            self._preemptive.generation.cancel()
            self._preemptive = None
            self._on_change()

    def _fingerprint(self) -> object:
        # The chat only grows by appending, so its length and last item identify it: O(1)
        # per turn instead of a tuple of the whole history.
        items = self._agent.chat_ctx_ref().items
        return (
            self._agent.instructions,
            tuple(t.name for t in self._agent.tools),
            len(items),
            items[-1].id if items else None,
        )

    def _adopt_preemptive(
        self, message: ChatMessage, fingerprint: object, *, unchanged: bool
    ) -> Generation | None:
        pre, self._preemptive = self._preemptive, None
        if pre is None:
            return None
        if unchanged and pre.transcript == message.text_content and pre.fingerprint == fingerprint:
            return pre.generation
        pre.generation.cancel()
        return None

    # -- the committed turn ---------------------------------------------------------------------

    def on_end_of_turn(self, turn: EndOfTurn) -> None:
        """The user's turn is committed: reply (after ``on_user_turn_completed``, in a task
        when the agent has its own: the hook may take time)."""
        assert self.nursery is not None
        if turn.discarded:
            logger.info("discarding %r, heard during uninterruptible speech", turn.transcript)
            self.cancel_preemptive()
            return
        needed = self._host.options.min_interruption_words
        speaking = self._interruptions.interruptible_speech() is not None
        if speaking and count_words(turn.transcript) < needed:
            # Too few words to interrupt ("uh-huh", "ok"): the agent goes on, as people do.
            logger.info("ignoring %r: fewer than %d words while speaking", turn.transcript, needed)
            self.cancel_preemptive()
            return
        self._turn_tasks += 1
        self.nursery.start_soon(self._user_turn_completed, turn)

    async def _user_turn_completed(self, turn: EndOfTurn) -> None:
        try:
            speech = self._interruptions.interruptible_speech()
            if speech is not None:
                self._interruptions.interrupt(speech)
            message = ChatMessage(role="user", content=[turn.transcript])
            # The hook's own list over the agent's items (as LiveKit's copy is): what it adds
            # is found below; copying every item would make each turn cost the history.
            turn_ctx = ChatContext(list(self._agent.chat_ctx_ref().items))
            fingerprint = self._fingerprint()
            hook_start = trio.current_time()
            try:
                await self._agent.on_user_turn_completed(turn_ctx, message)
            except StopResponse:
                self.cancel_preemptive()
                self._host.add_item(message, agent=self._agent)
                return
            except Exception as e:
                logger.exception("%s.on_user_turn_completed failed", self._agent.label)
                self._host.report_error(e, self._agent)
            self._reply_to_turn(
                turn,
                message,
                fingerprint,
                hook_delay=trio.current_time() - hook_start,
                added=added_by_hook(self._agent.chat_ctx_ref().items, turn_ctx.items),
            )
        finally:
            self._turn_tasks -= 1
            self._on_change()

    def _reply_to_turn(
        self,
        turn: EndOfTurn,
        message: ChatMessage,
        fingerprint: object,
        *,
        hook_delay: float,
        added: list[ChatItem],
    ) -> None:
        self._host.report_metrics(
            EOUMetrics(
                timestamp=trio.current_time(),
                end_of_utterance_delay=turn.end_of_utterance_delay,
                transcription_delay=turn.transcription_delay,
                on_user_turn_completed_delay=hook_delay,
            )
        )
        for item in added:
            self._host.add_item(item, agent=self._agent)
        preemptive = self._adopt_preemptive(message, fingerprint, unchanged=not added)
        self._reply(message, turn, preemptive)


def added_by_hook(items: list[ChatItem], seen: list[ChatItem]) -> list[ChatItem]:
    """The items of the hook's context (``seen``) that the agent's chat (``items``) lacks,
    by id."""
    # Usually the hook adds nothing: its list is then still a prefix of the chat, which a
    # list comparison (identity first, in C) tells without hashing every id of the history.
    if len(seen) <= len(items) and seen == items[: len(seen)]:
        return []
    known = {item.id for item in items}
    return [i for i in seen if i.id not in known]
