"""Streams a batch TTS sentence by sentence."""

from __future__ import annotations

import attrs
import trio

from .._utils import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, BackgroundTasks
from ..tokenize import SentenceTokenizer
from ._tts import TTS, ChunkedStream, SynthesizeStream, TTSCapabilities

__all__ = ["StreamAdapter", "StreamAdapterWrapper"]


class StreamAdapter(TTS):
    """``StreamAdapter(tts=piper)``: a streaming TTS made of a batch one.

    Text is split into sentences as it arrives; each sentence is synthesized as soon as it is
    complete, so the first audio comes after the first sentence, not after the whole reply.
    The default tokenizer cuts each reply's first sentence at its first clause when that is
    long enough (``SentenceTokenizer(first_clause=True)``): the first audio comes sooner still.
    """

    def __init__(self, *, tts: TTS, sentence_tokenizer: SentenceTokenizer | None = None) -> None:
        super().__init__(
            sample_rate=tts.sample_rate,
            num_channels=tts.num_channels,
            capabilities=TTSCapabilities(streaming=True),
        )
        self._tts = tts
        self._tokenizer = sentence_tokenizer or SentenceTokenizer(first_clause=True)
        tts.on("metrics_collected", lambda m: self.emit("metrics_collected", m))

    @property
    def wrapped_tts(self) -> TTS:
        """The batch TTS doing the synthesis."""
        return self._tts

    @property
    def sentence_tokenizer(self) -> SentenceTokenizer:
        """How text is cut into sentences."""
        return self._tokenizer

    @property
    def label(self) -> str:
        return f"StreamAdapter({self._tts.label})"

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> ChunkedStream:
        return self._tts.synthesize(text, conn_options=conn_options)

    def stream(
        self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> SynthesizeStream:
        return StreamAdapterWrapper(self, conn_options=conn_options)

    async def prewarm(self) -> None:
        """The wrapped TTS's ``prewarm``."""
        await self._tts.prewarm()

    async def keep_warm(self) -> None:
        """The wrapped TTS's ``keep_warm``."""
        await self._tts.keep_warm()


class StreamAdapterWrapper(SynthesizeStream):
    """The stream of a :class:`StreamAdapter`."""

    def __init__(self, adapter: StreamAdapter, *, conn_options: APIConnectOptions) -> None:
        # Each sentence's synthesize() makes the retries; retrying the stream as well would go
        # on with the text not yet read and silently drop the sentence that failed.
        super().__init__(adapter, conn_options=attrs.evolve(conn_options, max_retry=0))
        self._adapter = adapter
        self._sentence_options = conn_options

    def _report(self, *, cancelled: bool) -> None:
        # Each sentence's synthesize() reports itself through the wrapped TTS.
        pass

    async def _run(self) -> None:
        # Sentences are cut in their own task so the text producer never waits on synthesis.
        send, receive = trio.open_memory_channel[str | None](256)
        async with BackgroundTasks() as nursery:
            nursery.start_soon(self._split, send)
            segment = 0
            async for sentence in receive:
                if sentence is None:
                    await self._end_segment(f"seg_{segment}")
                    segment += 1
                    continue
                async with self._adapter.wrapped_tts.synthesize(
                    sentence, conn_options=self._sentence_options
                ) as chunked:
                    async for audio in chunked:
                        if not audio.is_final:
                            await self._emit_frame(
                                audio.frame,
                                segment_id=f"seg_{segment}",
                                delta_text=audio.delta_text,
                            )

    async def _split(self, send: trio.MemorySendChannel[str | None]) -> None:
        async with send:
            sentences = self._adapter.sentence_tokenizer.stream()
            pending = False
            async for item in self._input:
                if isinstance(item, str):
                    pending = True
                    for sentence in sentences.push_text(item):
                        await send.send(sentence)
                else:
                    for sentence in sentences.flush():
                        await send.send(sentence)
                    await send.send(None)
                    pending = False
            for sentence in sentences.flush():
                await send.send(sentence)
            if pending:
                await send.send(None)
