"""Chat context, tools and the LLM interface."""

from ._chat_context import AgentHandoff as AgentHandoff
from ._chat_context import ChatContext as ChatContext
from ._chat_context import ChatItem as ChatItem
from ._chat_context import ChatMessage as ChatMessage
from ._chat_context import ChatRole as ChatRole
from ._chat_context import FunctionCall as FunctionCall
from ._chat_context import FunctionCallOutput as FunctionCallOutput
from ._fallback import FallbackAdapter as FallbackAdapter
from ._llm import LLM as LLM
from ._llm import ChatChunk as ChatChunk
from ._llm import ChoiceDelta as ChoiceDelta
from ._llm import CompletionUsage as CompletionUsage
from ._llm import LLMStream as LLMStream
from ._llm import Tool as Tool
from ._llm import ToolChoice as ToolChoice
from ._provider_format import to_openai_messages as to_openai_messages
from ._provider_format import to_openai_tools as to_openai_tools
from ._tools import FunctionTool as FunctionTool
from ._tools import RawFunctionTool as RawFunctionTool
from ._tools import StopResponse as StopResponse
from ._tools import ToolArgumentsError as ToolArgumentsError
from ._tools import ToolError as ToolError
from ._tools import find_function_tools as find_function_tools
from ._tools import function_tool as function_tool
from ._tools import is_run_context_type as is_run_context_type
