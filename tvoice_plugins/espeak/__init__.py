"""espeak-ng: the light text-to-speech, run as a program (``apt-get install espeak-ng``).

::

    from tvoice_plugins import espeak

    tts = espeak.TTS(voice="en-us", speed=175)   # 22050 Hz mono
"""

from ._tts import TTS as TTS
from ._tts import ChunkedStream as ChunkedStream

__all__ = ["TTS", "ChunkedStream"]
