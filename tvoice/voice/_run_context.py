"""`RunContext`: what a tool knows about the call it serves."""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from ..llm import FunctionCall
from ._agent import SessionView
from ._speech_handle import SpeechHandle

__all__ = ["RunContext"]

Userdata = TypeVar("Userdata")


class RunContext(Generic[Userdata]):
    """Passed to a tool that declares a parameter of this type (left out of its schema)."""

    __tvoice_run_context__: ClassVar[bool] = True

    def __init__(
        self,
        *,
        session: SessionView[Userdata],
        speech_handle: SpeechHandle,
        function_call: FunctionCall,
    ) -> None:
        self.session = session
        self.speech_handle = speech_handle
        self.function_call = function_call

    @property
    def userdata(self) -> Userdata:
        """The session's ``userdata``."""
        return self.session.userdata

    def __repr__(self) -> str:
        return f"RunContext({self.function_call.name}, {self.speech_handle.id})"
