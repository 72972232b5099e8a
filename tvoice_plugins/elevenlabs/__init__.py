"""ElevenLabs: streaming text-to-speech over the multi-context WebSocket.

::

    from tvoice_plugins import elevenlabs

    tts = elevenlabs.TTS(voice="21m00Tcm4TlvDq8ikWAM", model="eleven_flash_v2_5")  # ELEVEN_API_KEY
    await tts.prewarm()          # optional: open the connection before the first reply

One connection kept by the TTS and reused across replies, a context per reply, text streamed
in as it is written, ``flush`` and ``close_context`` at the end of a reply, an interrupted
reply's context closed on the wire, character alignment as ``delta_text`` and as word
timings (``timed_text``). Failures are tvoice's ``APIError`` tree; the key is never logged or
shown.
"""

from ._tts import TTS as TTS
from ._tts import ChunkedStream as ChunkedStream
from ._tts import SynthesizeStream as SynthesizeStream

__all__ = ["TTS", "ChunkedStream", "SynthesizeStream"]
