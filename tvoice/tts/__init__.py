"""Text-to-speech: models, chunked and streaming synthesis, the sentence adapter, fallbacks,
and what a listener heard of a spoken text (from the TTS's word timings)."""

from ._fallback import FallbackAdapter as FallbackAdapter
from ._stream_adapter import StreamAdapter as StreamAdapter
from ._stream_adapter import StreamAdapterWrapper as StreamAdapterWrapper
from ._timing import SpokenSegment as SpokenSegment
from ._timing import heard_text as heard_text
from ._tts import TTS as TTS
from ._tts import ChunkedStream as ChunkedStream
from ._tts import SynthesizedAudio as SynthesizedAudio
from ._tts import SynthesizeStream as SynthesizeStream
from ._tts import TTSCapabilities as TTSCapabilities
