"""Check Meta's `X-Hub-Signature-256` header on webhook POSTs."""

from __future__ import annotations

import hashlib
import hmac
import re

_SHA256_HEADER = re.compile(r"sha256=([0-9a-fA-F]{64})")


def signature_is_valid(*, body: bytes, header: str | None, app_secret: str) -> bool:
    """True when `header` is `sha256=<hex HMAC-SHA256 of body keyed with app_secret>`.

    Anything else is False, never an exception: no secret configured, no header, SHA-1 only
    (`sha1=...`), not hex, wrong length, wrong digest. `body` must be the raw request bytes,
    before any decoding, since Meta signs exactly what it sent.
    """
    if not isinstance(app_secret, str) or not app_secret:
        return False
    if not isinstance(header, str) or not isinstance(body, bytes):
        return False
    match = _SHA256_HEADER.fullmatch(header.strip())
    if match is None:
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    # Constant time, so response timing does not reveal how much of a forged digest matched.
    return hmac.compare_digest(expected, match.group(1).lower())
