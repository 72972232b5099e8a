"""tvoice: real-time voice AI agents on trio.

An agent listens (VAD, speech-to-text, end of turn), thinks (an LLM with tools), speaks
(text-to-speech) and can be interrupted; every session is a nursery tree and every speech a
cancel scope. Model layers: :mod:`tvoice.llm`, :mod:`tvoice.stt`, :mod:`tvoice.tts`,
:mod:`tvoice.vad`, :mod:`tvoice.tokenize`, :mod:`tvoice.metrics`, :mod:`tvoice.io`; scripted
fakes for tests: :mod:`tvoice.testing`.
"""

from . import audio as audio
from . import io as io
from . import llm as llm
from . import metrics as metrics
from . import stt as stt
from . import tokenize as tokenize
from . import tts as tts
from . import vad as vad
from . import voice as voice
from ._errors import APIConnectionError as APIConnectionError
from ._errors import APIError as APIError
from ._errors import APIStatusError as APIStatusError
from ._errors import APITimeoutError as APITimeoutError
from ._utils import APIConnectOptions as APIConnectOptions
from .audio import AudioFrame as AudioFrame
from .cli import run_app as run_app
from .job import JobContext as JobContext
from .job import JobProcess as JobProcess
from .job import JobRequest as JobRequest
from .job import WorkerOptions as WorkerOptions
from .job import WorkerPermissions as WorkerPermissions
from .job import WorkerType as WorkerType
from .llm import AgentHandoff as AgentHandoff
from .llm import ChatContext as ChatContext
from .llm import ChatMessage as ChatMessage
from .llm import FunctionCall as FunctionCall
from .llm import FunctionCallOutput as FunctionCallOutput
from .llm import StopResponse as StopResponse
from .llm import ToolError as ToolError
from .llm import function_tool as function_tool
from .voice import Agent as Agent
from .voice import AgentSession as AgentSession
from .voice import AgentTask as AgentTask
from .voice import RunContext as RunContext
from .voice import SpeechHandle as SpeechHandle

__version__ = "0.1.0"
