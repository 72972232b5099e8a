"""Cartesia: Sonic text-to-speech over the ``/tts/websocket`` WebSocket.

::

    from tvoice_plugins import cartesia

    tts = cartesia.TTS(voice="f786b574-daa5-4673-aa0c-cbe3e8534c02")   # CARTESIA_API_KEY
    await tts.prewarm()          # optional: open the connection before the first reply

One connection kept by the TTS and reused across replies, a context per reply, text streamed
in with ``continue``, an interrupted reply's context cancelled on the wire, word timestamps on
the frames (``timed_text``, and the words as ``delta_text``). Failures are tvoice's
``APIError`` tree; the key is never logged or shown.
"""

from ._tts import TTS as TTS
from ._tts import ChunkedStream as ChunkedStream
from ._tts import SynthesizeStream as SynthesizeStream

__all__ = ["TTS", "ChunkedStream", "SynthesizeStream"]
