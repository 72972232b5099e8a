"""Google: Gemini on the Gemini API (Google AI Studio), streamed.

::

    from tvoice_plugins import google

    llm = google.LLM(model="gemini-2.5-flash")        # GOOGLE_API_KEY (or GEMINI_API_KEY)
    llm = google.LLM(base_url="https://gateway.example.com/v1beta", max_output_tokens=512)

The LLM owns an ``httpx.AsyncClient`` (pass ``http_client=`` to choose it) and closes it in
``aclose()``. Failures are tvoice's ``APIError`` tree (RESOURCE_EXHAUSTED and UNAVAILABLE are
retryable); the key is never logged or shown.
"""

from ._llm import LLM as LLM
from ._llm import Client as Client
from ._llm import LLMStream as LLMStream

__all__ = ["LLM", "Client", "LLMStream"]
