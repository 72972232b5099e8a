"""Access tokens: made for joining a room directly (``tvoice connect``, tests, tools), and read
for the room they name."""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from typing import Any

__all__ = ["room_token", "token_claims"]


def room_token(
    api_key: str,
    api_secret: str,
    *,
    room: str,
    identity: str,
    name: str = "",
    agent: bool = True,
    ttl: datetime.timedelta = datetime.timedelta(hours=6),
) -> str:
    """An HS256 JWT that lets ``identity`` join ``room`` (as an agent participant by default),
    publish, subscribe and send data."""
    if not api_key or not api_secret:
        raise ValueError(
            "the LiveKit API key and secret are required (LIVEKIT_API_KEY, LIVEKIT_API_SECRET)"
        )
    # Imported here: livekit.api pulls aiohttp in, for one token.
    from livekit.api.access_token import AccessToken, VideoGrants

    token = AccessToken(api_key, api_secret).with_identity(identity).with_ttl(ttl)
    if name:
        token = token.with_name(name)
    if agent:
        token = token.with_kind("agent")
    grants = VideoGrants(room_join=True, room=room, agent=agent or None)
    jwt: str = token.with_grants(grants).to_jwt()
    return jwt


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a LiveKit JWT, read without verifying it (the server does that)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error, UnicodeDecodeError):
        raise ValueError("the token is not a JWT (header.payload.signature)") from None
    if not isinstance(claims, dict):
        raise ValueError("the token's payload is not a JSON object")
    return claims
