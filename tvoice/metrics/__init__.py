"""Metric records emitted by models and sessions, and a usage summary."""

from ._records import AgentMetrics as AgentMetrics
from ._records import EOUMetrics as EOUMetrics
from ._records import LLMMetrics as LLMMetrics
from ._records import STTMetrics as STTMetrics
from ._records import TTSMetrics as TTSMetrics
from ._records import TurnMetrics as TurnMetrics
from ._records import VADMetrics as VADMetrics
from ._usage import UsageCollector as UsageCollector
from ._usage import UsageSummary as UsageSummary
from ._usage import log_metrics as log_metrics
