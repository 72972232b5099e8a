"""The HTTP side shared by the OpenAI models: one httpx client, the key, the provider's wishes.

Each model object owns one :class:`Client`, which owns one ``httpx.AsyncClient`` (made on first
use, or injected): its connections are reused across requests and closed with the model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from tvoice import APIError

from .._http import DEFAULT_TIMEOUT, HttpClient, StatusError, resolve_api_key
from .._http import OwnsClient as _OwnsClient
from ._errors import status_error, stream_error
from ._presets import OPENAI, Preset

__all__ = ["DEFAULT_TIMEOUT", "Client", "OwnsClient", "client_for", "resolve_api_key"]


class Client(HttpClient):
    """POSTs to ``base_url`` with the key as ``Authorization: Bearer``; maps every failure.

    ``retry-after`` is honoured across requests: after an error status that asked for a wait,
    the next request of this client waits until then (rate limits are per key, not per call).
    """

    def status_error(self, status: int, headers: httpx.Headers, body: bytes) -> StatusError:
        return status_error(self.provider, status, headers, body, secret=self.secret)

    def stream_error(self, error: Any) -> APIError:
        """The error for an ``{"error": ...}`` event in a stream (the key scrubbed from it)."""
        return stream_error(self.provider, error, secret=self.secret)


def client_for(
    preset: Preset,
    *,
    api_key: str | None,
    base_url: str | None,
    timeout: float | httpx.Timeout,
    headers: Mapping[str, str] | None,
    http_client: httpx.AsyncClient | None,
) -> Client:
    """The client of a model: the preset's URL and key variable unless given."""
    if base_url is None and preset is OPENAI:
        base_url = os.environ.get("OPENAI_BASE_URL")
    url = base_url or preset.base_url
    # A key is required by the hosted APIs, not by a local server at another URL.
    required = preset.key_required and url.rstrip("/") == preset.base_url
    key = resolve_api_key(api_key, preset.api_key_env, provider=preset.name, required=required)
    return Client(
        provider=preset.name,
        base_url=url,
        api_key=key,
        timeout=timeout,
        headers=headers,
        http_client=http_client,
    )


class OwnsClient(_OwnsClient):
    """What every OpenAI model shares: its model name, the :class:`Client` it owns and closes,
    and how it shows itself (the URL, never the key)."""

    _plugin: ClassVar[str] = "openai"
    _kind: ClassVar[str]  # "LLM", "STT", "TTS"
    _client: Client

    @property
    def client(self) -> Client:
        """The HTTP client this model owns."""
        return self._client
