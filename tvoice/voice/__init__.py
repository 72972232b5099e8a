"""The conversation runtime: sessions, agents, speech, tools and handoffs."""

from ._agent import Agent as Agent
from ._agent import AgentTask as AgentTask
from ._agent import ModelSettings as ModelSettings
from ._events import AgentFalseInterruptionEvent as AgentFalseInterruptionEvent
from ._events import AgentState as AgentState
from ._events import AgentStateChangedEvent as AgentStateChangedEvent
from ._events import CloseEvent as CloseEvent
from ._events import CloseReason as CloseReason
from ._events import ConversationItemAddedEvent as ConversationItemAddedEvent
from ._events import ErrorEvent as ErrorEvent
from ._events import FunctionToolsExecutedEvent as FunctionToolsExecutedEvent
from ._events import MetricsCollectedEvent as MetricsCollectedEvent
from ._events import SpeechCreatedEvent as SpeechCreatedEvent
from ._events import UserInputTranscribedEvent as UserInputTranscribedEvent
from ._events import UserState as UserState
from ._events import UserStateChangedEvent as UserStateChangedEvent
from ._run_context import RunContext as RunContext
from ._run_result import RunResult as RunResult
from ._session import AgentSession as AgentSession
from ._session import SessionOptions as SessionOptions
from ._speech_handle import SPEECH_PRIORITY_HIGH as SPEECH_PRIORITY_HIGH
from ._speech_handle import SPEECH_PRIORITY_LOW as SPEECH_PRIORITY_LOW
from ._speech_handle import SPEECH_PRIORITY_NORMAL as SPEECH_PRIORITY_NORMAL
from ._speech_handle import SpeechHandle as SpeechHandle
from ._turn import TurnDetection as TurnDetection
from ._turn import TurnDetector as TurnDetector
