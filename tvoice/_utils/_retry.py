from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
import trio

from .._errors import APIError, APITimeoutError

__all__ = [
    "DEFAULT_API_CONNECT_OPTIONS",
    "FALLBACK_CONNECT_OPTIONS",
    "APIConnectOptions",
    "call_with_retry",
    "retry_delay",
]

logger = logging.getLogger("tvoice")
R = TypeVar("R")


@attrs.frozen(kw_only=True)
class APIConnectOptions:
    """How a model call is retried and bounded.

    ``max_retry`` retries follow the first attempt when an ``APIError(retryable=True)`` is raised
    before any output was produced. The n-th retry waits ``retry_interval * 2**(n-1)`` seconds,
    capped at ``max_retry_interval``. ``timeout`` bounds connecting and each wait for the next
    piece of output.
    """

    max_retry: int = 3
    retry_interval: float = 0.5
    max_retry_interval: float = 8.0
    timeout: float = 10.0

    def __attrs_post_init__(self) -> None:
        if self.max_retry < 0:
            raise ValueError("max_retry must be >= 0")
        if self.retry_interval < 0 or self.timeout <= 0:
            raise ValueError("retry_interval must be >= 0 and timeout > 0")


DEFAULT_API_CONNECT_OPTIONS = APIConnectOptions()
FALLBACK_CONNECT_OPTIONS = APIConnectOptions(max_retry=1, timeout=10.0)
"""Retries each provider of a fallback adapter gets before the next one is tried."""


def retry_delay(options: APIConnectOptions, retry: int) -> float:
    """Seconds to wait before retry number ``retry`` (1-based): exponential, capped."""
    return float(min(options.retry_interval * 2 ** (retry - 1), options.max_retry_interval))


async def call_with_retry(
    fn: Callable[[], Awaitable[R]], options: APIConnectOptions, *, label: str
) -> R:
    """Await ``fn()``, retrying ``APIError(retryable=True)`` with backoff; bounded by timeout.

    Each attempt is bounded by ``options.timeout`` and raises ``APITimeoutError`` past it.
    """
    retries = 0
    while True:
        try:
            with trio.fail_after(options.timeout):
                return await fn()
        except trio.TooSlowError:
            error: APIError = APITimeoutError(f"{label}: no answer within {options.timeout} s")
        except APIError as e:
            error = e
        if not error.retryable or retries >= options.max_retry:
            raise error
        retries += 1
        delay = retry_delay(options, retries)
        logger.warning("%s failed (%s), retry %d in %.2f s", label, error, retries, delay)
        await trio.sleep(delay)
