"""OpenAI, and every server that speaks its HTTP API: chat, transcription, speech.

::

    from tvoice_plugins import openai

    llm = openai.LLM(model="gpt-4.1-mini")            # OPENAI_API_KEY
    llm = openai.LLM.with_groq(model="llama-3.3-70b-versatile")   # GROQ_API_KEY
    llm = openai.LLM(base_url="http://127.0.0.1:8080/v1", model="local")  # llama.cpp, vLLM...
    stt = openai.STT(model="gpt-4o-mini-transcribe")  # stream it: stt.StreamAdapter(stt=, vad=)
    tts = openai.TTS(voice="alloy")                   # 24 kHz mono, sentence by sentence

Each model owns an ``httpx.AsyncClient`` (pass ``http_client=`` to choose it) and closes it in
``aclose()``. Failures are tvoice's ``APIError`` tree; the key is never logged or shown.
"""

from .._http import StatusError as StatusError
from ._client import Client as Client
from ._llm import LLM as LLM
from ._llm import LLMStream as LLMStream
from ._presets import PRESETS as PRESETS
from ._presets import Preset as Preset
from ._stt import STT as STT
from ._tts import TTS as TTS
from ._tts import ChunkedStream as ChunkedStream

__all__ = [
    "LLM",
    "PRESETS",
    "STT",
    "TTS",
    "ChunkedStream",
    "Client",
    "LLMStream",
    "Preset",
    "StatusError",
]
