"""Deepgram: live speech-to-text over the ``/v1/listen`` WebSocket.

::

    from tvoice_plugins import deepgram

    stt = deepgram.STT(model="nova-3", language="en-US")     # DEEPGRAM_API_KEY
    stt = deepgram.STT(base_url="wss://api.eu.deepgram.com/v1")  # a regional endpoint or proxy

Interim and final transcripts, START/END_OF_SPEECH from Deepgram's own endpointing
(``SpeechStarted``, ``speech_final``, ``UtteranceEnd``), ``KeepAlive`` while no audio flows,
``Finalize`` on ``flush()``. Failures are tvoice's ``APIError`` tree; the key is never logged
or shown.
"""

from ._stt import STT as STT
from ._stt import SpeechStream as SpeechStream

__all__ = ["STT", "SpeechStream"]
