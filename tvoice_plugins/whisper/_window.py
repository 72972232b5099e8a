"""A short utterance transcribed on an encoder window fitted to it, not on Whisper's 30 s one.

faster-whisper always pads what it hears to 30 s, and Whisper's encoder costs the same for a
two-second question as for thirty seconds of speech: 450-600 ms on one core for tiny.en, most of
a turn's end-of-turn delay. CTranslate2's encoder takes a shorter window as it is (the model's
position embeddings are cut to it, as whisper.cpp's ``audio_ctx`` does). A window of 10 s, or of
the utterance and two seconds of silence when that is longer, costs 60-180 ms.

How short it may be was measured on 37 utterances of 0.7-10.6 s said by espeak-ng (288 words):
the 30 s window got 39 words wrong. Fitted to the utterance and 2 s, the window got 45 wrong;
at least 10 s long and decoded with timestamps, as faster-whisper decodes, it got 39 wrong, the
same. With less trailing silence the decoder does not always find the end ("Tell me a joke"
repeated itself to the length limit with one second). A result that shows any of the signs
Whisper's own fallback looks for (text that compresses too well, a low mean log-probability, a
likely non-speech window, the length limit reached) is not used: the caller transcribes on the
full window instead.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

__all__ = ["Transcript", "transcribe"]

TAIL = 2.0
"""Seconds of silence after the utterance: the decoder needs it to see that the speech ended."""
MIN_WINDOW = 10
"""The shortest window, in seconds: shorter ones heard more words wrong (see above)."""
MAX_WINDOW = 30
"""Whisper's own window, in seconds: longer audio takes faster-whisper's 30 s chunks."""

_SECONDS_PER_TIMESTAMP = 0.02  # Whisper's timestamp tokens count 20 ms steps

# Whisper's fallback thresholds (openai-whisper's and faster-whisper's defaults).
_COMPRESSION_RATIO_THRESHOLD = 2.4
_LOG_PROB_THRESHOLD = -1.0
_NO_SPEECH_THRESHOLD = 0.6


@attrs.frozen
class Transcript:
    text: str
    avg_logprob: float
    start: float  # seconds from the start of the audio, as Whisper's timestamps say
    end: float


def transcribe(
    model: WhisperModel,
    audio: np.ndarray[Any, np.dtype[np.float32]],
    *,
    language: str | None,
    beam_size: int,
    initial_prompt: str | None,
) -> Transcript | None:
    """``audio`` (16 kHz mono float) transcribed on a window fitted to it; None when it does
    not fit one or when the result is doubtful (then use the full window).

    Runs in a worker thread, like every call into the model.
    """
    import ctranslate2
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

    if language is None and model.model.is_multilingual:
        return None  # a multilingual model with no language given detects it on the full window
    extractor = model.feature_extractor
    rate = extractor.sampling_rate
    duration = len(audio) / rate
    seconds = max(MIN_WINDOW, math.ceil(duration + TAIL))
    if seconds > MAX_WINDOW:
        return None
    window = np.zeros(seconds * rate, dtype=np.float32)
    window[: len(audio)] = audio
    features = extractor(window, padding=0)[:, : seconds * rate // extractor.hop_length]
    encoded = model.model.encode(
        ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])), to_cpu=False
    )

    tokenizer = Tokenizer(
        model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language
    )
    prompt: list[int] = []
    if initial_prompt and initial_prompt.strip():
        previous = tokenizer.encode(" " + initial_prompt.strip())
        prompt = [tokenizer.sot_prev, *previous[-(model.max_length // 2 - 1) :]]
    prompt += tokenizer.sot_sequence  # with timestamps, as faster-whisper decodes
    (result,) = model.model.generate(
        encoded,
        [prompt],
        beam_size=beam_size,
        max_length=model.max_length,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=list(get_suppressed_tokens(tokenizer, [-1]) or ()),
        max_initial_timestamp_index=50,
    )
    tokens = result.sequences_ids[0]
    text = tokenizer.decode([t for t in tokens if t < tokenizer.eot]).strip()
    times = [
        (t - tokenizer.timestamp_begin) * _SECONDS_PER_TIMESTAMP
        for t in tokens
        if t >= tokenizer.timestamp_begin
    ]
    # faster-whisper's mean: the sum of log-probabilities over the tokens and the end token.
    avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
    if (
        len(prompt) + len(tokens) >= model.max_length
        or result.no_speech_prob > _NO_SPEECH_THRESHOLD
        or avg_logprob < _LOG_PROB_THRESHOLD
        or get_compression_ratio(text) > _COMPRESSION_RATIO_THRESHOLD
    ):
        return None
    start, end = (times[0], times[-1]) if times else (0.0, duration)
    return Transcript(
        text=text, avg_logprob=avg_logprob, start=min(start, duration), end=min(end, duration)
    )
