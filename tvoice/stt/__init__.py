"""Speech-to-text: models, recognition streams, the VAD stream adapter and fallbacks."""

from ._fallback import FallbackAdapter as FallbackAdapter
from ._stream_adapter import StreamAdapter as StreamAdapter
from ._stream_adapter import StreamAdapterWrapper as StreamAdapterWrapper
from ._stt import STT as STT
from ._stt import RecognizeStream as RecognizeStream
from ._stt import SpeechData as SpeechData
from ._stt import SpeechEvent as SpeechEvent
from ._stt import SpeechEventType as SpeechEventType
from ._stt import STTCapabilities as STTCapabilities
