"""Store URLs as shown to people: never with a password."""

from __future__ import annotations

__all__ = ["redact_url"]


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``, for output and messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    auth, at, host = rest.rpartition("@")
    if at and ":" in auth:
        auth = auth.split(":", 1)[0] + ":***"
    return f"{scheme}://{auth}{at}{host}"
