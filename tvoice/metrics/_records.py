"""Metric records. Every time in them comes from trio's clock (exact under MockClock)."""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = [
    "AgentMetrics",
    "EOUMetrics",
    "LLMMetrics",
    "STTMetrics",
    "TTSMetrics",
    "TurnMetrics",
    "VADMetrics",
]


@attrs.frozen(kw_only=True)
class LLMMetrics:
    """One LLM request: time to first token, total duration and token usage."""

    type: Literal["llm_metrics"] = "llm_metrics"
    label: str
    request_id: str
    timestamp: float
    ttft: float
    duration: float
    cancelled: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    tokens_per_second: float = 0.0
    speech_id: str | None = None


@attrs.frozen(kw_only=True)
class STTMetrics:
    """One recognition: how long it took and how much audio it covered."""

    type: Literal["stt_metrics"] = "stt_metrics"
    label: str
    request_id: str
    timestamp: float
    duration: float
    audio_duration: float
    streamed: bool = False


@attrs.frozen(kw_only=True)
class TTSMetrics:
    """One synthesis: time to first audio byte, total duration, audio produced."""

    type: Literal["tts_metrics"] = "tts_metrics"
    label: str
    request_id: str
    timestamp: float
    ttfb: float
    duration: float
    audio_duration: float
    characters_count: int
    cancelled: bool = False
    streamed: bool = False
    speech_id: str | None = None


@attrs.frozen(kw_only=True)
class VADMetrics:
    """VAD inference cost over a reporting period (about one second of audio)."""

    type: Literal["vad_metrics"] = "vad_metrics"
    label: str
    timestamp: float
    idle_time: float
    inference_duration_total: float
    inference_count: int


@attrs.frozen(kw_only=True)
class EOUMetrics:
    """End of a user turn.

    ``end_of_utterance_delay``: end of speech -> turn committed (endpointing and turn detection).
    ``transcription_delay``: end of speech -> final transcript available.
    ``on_user_turn_completed_delay``: time spent in the agent's hook.
    """

    type: Literal["eou_metrics"] = "eou_metrics"
    timestamp: float
    end_of_utterance_delay: float
    transcription_delay: float
    on_user_turn_completed_delay: float = 0.0
    speech_id: str | None = None


@attrs.frozen(kw_only=True)
class TurnMetrics:
    """One agent reply to a user turn, from the user's end of speech to the first audio out.

    ``e2e_latency`` is the figure a caller feels; the other fields break it down (None when the
    stage did not run, e.g. no LLM for ``say``).
    """

    type: Literal["turn_metrics"] = "turn_metrics"
    timestamp: float
    speech_id: str
    e2e_latency: float
    end_of_utterance_delay: float | None = None
    transcription_delay: float | None = None
    llm_ttft: float | None = None
    tts_ttfb: float | None = None


AgentMetrics = LLMMetrics | STTMetrics | TTSMetrics | VADMetrics | EOUMetrics | TurnMetrics
