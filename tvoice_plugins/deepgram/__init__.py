"""Deepgram: live speech-to-text over ``/v1/listen``, Aura text-to-speech over ``/v1/speak``.

::

    from tvoice_plugins import deepgram

    stt = deepgram.STT(model="nova-3", language="en-US")     # DEEPGRAM_API_KEY
    stt = deepgram.STT(base_url="wss://api.eu.deepgram.com/v1")  # a regional endpoint or proxy
    tts = deepgram.TTS(model="aura-2-thalia-en")              # the same key

Interim and final transcripts, START/END_OF_SPEECH from Deepgram's own endpointing
(``SpeechStarted``, ``speech_final``, ``UtteranceEnd``), ``KeepAlive`` while no audio flows,
``Finalize`` on ``flush()``. The TTS keeps its connection between replies and sends ``Clear``
when a reply is interrupted. Failures are tvoice's ``APIError`` tree; the key is never logged
or shown.
"""

from ._stt import STT as STT
from ._stt import SpeechStream as SpeechStream
from ._tts import TTS as TTS
from ._tts import ChunkedStream as ChunkedStream
from ._tts import SynthesizeStream as SynthesizeStream

__all__ = ["STT", "TTS", "ChunkedStream", "SpeechStream", "SynthesizeStream"]
