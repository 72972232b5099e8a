"""The local inference server: tvoice models behind the OpenAI HTTP API, on loopback.

Offline models are served once per machine and shared by every job process, which reaches them
with ``tvoice_plugins.openai`` exactly as it would reach a hosted API.
"""

from ._http import Limits as Limits
from ._server import SPEECH_SAMPLE_RATE as SPEECH_SAMPLE_RATE
from ._server import InferenceServer as InferenceServer
from ._shared import local_models_url as local_models_url
from ._shared import runtime_dir as runtime_dir
from ._shared import serve_shared as serve_shared

__all__ = [
    "SPEECH_SAMPLE_RATE",
    "InferenceServer",
    "Limits",
    "local_models_url",
    "runtime_dir",
    "serve_shared",
]
