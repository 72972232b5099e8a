"""The one error tree of tvoice.

::

    Exception
    `- APIError(message, retryable=True, body=None)   a model provider failed
       |- APIConnectionError                          could not reach it, or the stream broke
       |  `- APITimeoutError                          it did not answer in time
       `- APIStatusError(status_code, request_id)     it answered with an error status

Plugins translate their library's errors into this tree in one place (their ``_errors`` module),
so the runtime, the fallback adapters and users only ever catch these.
"""

from __future__ import annotations

__all__ = ["APIConnectionError", "APIError", "APIStatusError", "APITimeoutError"]


class APIError(Exception):
    """A model provider failed. ``retryable`` tells retries and fallbacks whether to try again."""

    def __init__(self, message: str, *, body: object = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.body = body
        self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.message} (retryable={self.retryable})"


class APIConnectionError(APIError):
    """The provider could not be reached, or its stream broke off mid-way."""

    def __init__(self, message: str = "connection error", *, retryable: bool = True) -> None:
        super().__init__(message, retryable=retryable)


class APITimeoutError(APIConnectionError):
    """The provider did not answer within the timeout."""

    def __init__(self, message: str = "request timed out", *, retryable: bool = True) -> None:
        super().__init__(message, retryable=retryable)


class APIStatusError(APIError):
    """The provider answered with an error status; 4xx other than 408/429 are not retryable."""

    def __init__(
        self,
        message: str = "error status",
        *,
        status_code: int = -1,
        request_id: str | None = None,
        body: object = None,
        retryable: bool | None = None,
    ) -> None:
        if retryable is None:
            retryable = not (400 <= status_code < 500) or status_code in (408, 429)
        super().__init__(message, body=body, retryable=retryable)
        self.status_code = status_code
        self.request_id = request_id

    def __str__(self) -> str:
        return (
            f"{self.message} (status_code={self.status_code}, request_id={self.request_id}, "
            f"retryable={self.retryable})"
        )
