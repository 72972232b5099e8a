from __future__ import annotations

import secrets


def short_id(prefix: str) -> str:
    """A unique, readable id such as ``speech_3f9a1c2b0d4e``."""
    return f"{prefix}_{secrets.token_hex(6)}"
