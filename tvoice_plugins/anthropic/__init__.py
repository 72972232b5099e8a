"""Anthropic: Claude on the Messages API, streamed.

::

    from tvoice_plugins import anthropic

    llm = anthropic.LLM(model="claude-haiku-4-5")      # ANTHROPIC_API_KEY
    llm = anthropic.LLM(base_url="https://gateway.example.com", max_tokens=512)

The LLM owns an ``httpx.AsyncClient`` (pass ``http_client=`` to choose it) and closes it in
``aclose()``. Failures are tvoice's ``APIError`` tree (an overloaded API is retryable); the key
is never logged or shown.
"""

from ._llm import LLM as LLM
from ._llm import Client as Client
from ._llm import LLMStream as LLMStream

__all__ = ["LLM", "Client", "LLMStream"]
