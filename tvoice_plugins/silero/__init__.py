"""Silero voice activity detection, offline, on onnxruntime.

::

    from tvoice_plugins import silero

    vad = silero.VAD.load()          # in a worker's prewarm: the model is loaded now
    async with vad.stream() as stream:
        await stream.push_frame(frame)   # any rate, mono or stereo
        ...

The model file ships in the ``silero-vad`` package; install it with
``pip install --no-deps silero-vad`` (its declared dependencies pull in torch, which is not
used: the file is read, the package is never imported).
"""

from ._onnx import SileroModel as SileroModel
from ._onnx import default_model_path as default_model_path
from ._onnx import load_model as load_model
from ._vad import VAD as VAD
from ._vad import VADOptions as VADOptions

__all__ = ["VAD", "SileroModel", "VADOptions", "default_model_path", "load_model"]
