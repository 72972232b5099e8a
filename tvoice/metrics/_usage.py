from __future__ import annotations

import logging

import attrs

from ._records import AgentMetrics, EOUMetrics, LLMMetrics, STTMetrics, TTSMetrics, TurnMetrics

__all__ = ["UsageCollector", "UsageSummary", "log_metrics"]


@attrs.frozen(kw_only=True)
class UsageSummary:
    """What a session consumed, for billing and dashboards."""

    llm_prompt_tokens: int = 0
    llm_completion_tokens: int = 0
    tts_characters_count: int = 0
    tts_audio_duration: float = 0.0
    stt_audio_duration: float = 0.0


@attrs.define
class UsageCollector:
    """Adds up usage from ``metrics_collected`` events: ``session.on("metrics_collected", ...)``."""

    _summary: UsageSummary = attrs.field(factory=UsageSummary)

    def collect(self, metrics: AgentMetrics) -> None:
        """Add one metrics record."""
        s = self._summary
        if isinstance(metrics, LLMMetrics):
            s = attrs.evolve(
                s,
                llm_prompt_tokens=s.llm_prompt_tokens + metrics.prompt_tokens,
                llm_completion_tokens=s.llm_completion_tokens + metrics.completion_tokens,
            )
        elif isinstance(metrics, TTSMetrics):
            s = attrs.evolve(
                s,
                tts_characters_count=s.tts_characters_count + metrics.characters_count,
                tts_audio_duration=s.tts_audio_duration + metrics.audio_duration,
            )
        elif isinstance(metrics, STTMetrics):
            s = attrs.evolve(s, stt_audio_duration=s.stt_audio_duration + metrics.audio_duration)
        self._summary = s

    def get_summary(self) -> UsageSummary:
        """Totals so far."""
        return self._summary


def log_metrics(metrics: AgentMetrics, *, logger: logging.Logger | None = None) -> None:
    """Log one record in a compact, readable line."""
    log = logger or logging.getLogger("tvoice.metrics")
    if isinstance(metrics, LLMMetrics):
        log.info(
            "LLM ttft=%.3fs duration=%.3fs tokens=%d/%d",
            metrics.ttft,
            metrics.duration,
            metrics.prompt_tokens,
            metrics.completion_tokens,
        )
    elif isinstance(metrics, TTSMetrics):
        log.info(
            "TTS ttfb=%.3fs duration=%.3fs audio=%.3fs",
            metrics.ttfb,
            metrics.duration,
            metrics.audio_duration,
        )
    elif isinstance(metrics, STTMetrics):
        log.info("STT duration=%.3fs audio=%.3fs", metrics.duration, metrics.audio_duration)
    elif isinstance(metrics, EOUMetrics):
        log.info(
            "EOU delay=%.3fs transcription_delay=%.3fs",
            metrics.end_of_utterance_delay,
            metrics.transcription_delay,
        )
    elif isinstance(metrics, TurnMetrics):
        log.info("turn e2e latency=%.3fs", metrics.e2e_latency)
    else:
        log.info(
            "VAD inference %.4fs over %d windows",
            metrics.inference_duration_total,
            metrics.inference_count,
        )
