"""Typed delivery errors, and the classification of Graph API error responses.

The hierarchy says what the caller should do, not what Facebook said, so the core can
catch it without knowing Facebook:

    DeliveryError
    ├── TransientDeliveryError        retry later (the RQ job owns retries and backoff)
    └── PermanentDeliveryError        do not retry; mark the message failed, apologise
        ├── RecipientUnreachableError do not retry and do not apologise: it cannot arrive
        │   ├── OutsideWindowError    refused by us before calling Meta: Meta's window is closed
        │   └── CommentUnavailableError  the comment can no longer be replied to: record it
        └── InvalidTokenError         do not retry; the operator must fix the page token

`reason` is a readable sentence for staff; it never contains a secret.
"""

import json
from collections.abc import Iterable, Mapping
from typing import Any

_REASON_MAX_CHARS = 500
_REDACTED = "[redacted]"

# Meta's throttling and "try again later" codes.
TRANSIENT_GRAPH_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 1200})
# 10 and subcode 2018278: outside the 24-hour messaging window.
_OUTSIDE_WINDOW_CODE = 10
_OUTSIDE_WINDOW_SUBCODE = 2018278
_PERSON_UNAVAILABLE_CODE = 551
# 100 is also Meta's generic "invalid parameter"; only this subcode means "no such user".
_INVALID_PARAMETER_CODE = 100
_NO_MATCHING_USER_SUBCODE = 2018001
_INVALID_TOKEN_CODE = 190
# 2534014: Instagram's "the user cannot be found" (Messenger's is 100/2018001 above).
_INSTAGRAM_USER_NOT_FOUND_SUBCODE = 2534014
# A comment Meta will never take a reply to: its one private reply is spent, it is older
# than Meta's 7 days, or it is gone. By code, whatever the subcode:
#   10900  "(#10900) Activity already replied to": the comment had its private reply
#   10902  "(#10902) This is not a Replyable activity"
#   10903  the comment cannot be replied to privately (again)
_COMMENT_UNAVAILABLE_CODES = frozenset({10900, 10902, 10903})
# ... and by code and subcode:
#   10 / 2018108   reported for private replies Meta no longer allows (a comment past 7 days)
#   100 / 2534025  Instagram: "The comment is invalid for a private reply" (already answered,
#                  older than 7 days, or deleted)
#   100 / 2534039, 2534040  Instagram: reported for a comment's private reply used up or expired
_COMMENT_UNAVAILABLE_PAIRS = frozenset({(10, 2018108), (100, 2534025), (100, 2534039), (100, 2534040)})
# 100 / 33 "Object with ID ... does not exist": for a call about a comment, the comment (or
# its post) was deleted. Elsewhere it is a misconfiguration (a wrong Page id), kept permanent.
_NO_SUCH_OBJECT = (100, 33)


class DeliveryError(Exception):
    def __init__(
        self,
        reason: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.subcode = subcode
        self.http_status = http_status


class TransientDeliveryError(DeliveryError):
    pass


class PermanentDeliveryError(DeliveryError):
    pass


class RecipientUnreachableError(PermanentDeliveryError):
    pass


class InvalidTokenError(PermanentDeliveryError):
    pass


class OutsideWindowError(RecipientUnreachableError):
    """Not sent: Meta's messaging window (messenger.window) does not allow it, so Meta is not asked."""


class CommentUnavailableError(RecipientUnreachableError):
    """Meta refuses, for good, a reply to a comment: its one private reply was already sent, it
    is older than Meta's 7 days, or it was deleted. Recorded, never retried, no apology (there
    is no conversation to send one to)."""


def classify_graph_error(
    *,
    http_status: int,
    body: bytes | str | Mapping[str, Any] | None,
    secrets: Iterable[str] = (),
    about_comment: bool = False,
) -> DeliveryError:
    """The typed error for a non-2xx Graph API response.

    Meta's error code decides when there is one (it is more precise than the HTTP status,
    e.g. throttling arrives as 400 + code 613); otherwise the status does: 5xx and 429 are
    transient, anything else permanent. Any body is accepted, garbage included.
    `about_comment`: the call replied to a comment, so "no such object" means it is gone.
    """
    error = _error_object(body)
    code = _as_int(error.get("code"))
    subcode = _as_int(error.get("error_subcode"))
    error_class = _error_class(
        http_status=http_status,
        code=code,
        subcode=subcode,
        is_transient=error.get("is_transient") is True,
        about_comment=about_comment,
    )
    reason = reason_redact(
        text=_reason(http_status=http_status, error=error, code=code, subcode=subcode), secrets=secrets
    )
    return error_class(reason, code=code, subcode=subcode, http_status=http_status)


def _error_class(
    *, http_status: int, code: int | None, subcode: int | None, is_transient: bool, about_comment: bool
) -> type[DeliveryError]:
    if code == _INVALID_TOKEN_CODE:
        return InvalidTokenError
    if comment_unavailable(code=code, subcode=subcode) or (
        about_comment and (code, subcode) == _NO_SUCH_OBJECT
    ):
        return CommentUnavailableError
    if recipient_unreachable(code=code, subcode=subcode):
        return RecipientUnreachableError
    if code in TRANSIENT_GRAPH_CODES or is_transient or http_status == 429 or http_status >= 500:
        return TransientDeliveryError
    return PermanentDeliveryError


def recipient_unreachable(*, code: int | None, subcode: int | None) -> bool:
    """Whether Graph's error `code`/`subcode` means the person cannot be written to now."""
    return (
        code in (_PERSON_UNAVAILABLE_CODE, _OUTSIDE_WINDOW_CODE)
        or subcode in (_OUTSIDE_WINDOW_SUBCODE, _INSTAGRAM_USER_NOT_FOUND_SUBCODE)
        or (code == _INVALID_PARAMETER_CODE and subcode == _NO_MATCHING_USER_SUBCODE)
    )


def comment_unavailable(*, code: int | None, subcode: int | None) -> bool:
    """Whether Graph's error `code`/`subcode` means the comment can never be replied to (privately)."""
    return code in _COMMENT_UNAVAILABLE_CODES or (code, subcode) in _COMMENT_UNAVAILABLE_PAIRS


def _error_object(body: bytes | str | Mapping[str, Any] | None) -> Mapping[str, Any]:
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except ValueError:  # UnicodeDecodeError is a ValueError too
            return {}
    error = body.get("error") if isinstance(body, Mapping) else None
    return error if isinstance(error, Mapping) else {}


def _as_int(value: Any) -> int | None:
    # bool is an int subclass; a `true` code is garbage, not code 1.
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _reason(*, http_status: int, error: Mapping[str, Any], code: int | None, subcode: int | None) -> str:
    message = error.get("message")
    text = message.strip() if isinstance(message, str) and message.strip() else "Facebook returned an error"
    facts = [f"HTTP {http_status}"]
    if code is not None:
        facts.append(f"code {code}" + (f"/{subcode}" if subcode is not None else ""))
    fbtrace_id = error.get("fbtrace_id")
    if isinstance(fbtrace_id, str) and fbtrace_id:
        facts.append(f"fbtrace_id {fbtrace_id}")
    return f"{text} ({', '.join(facts)})"


def reason_redact(*, text: str, secrets: Iterable[str]) -> str:
    """`text` without any of `secrets`, cut to a length that fits a log line or an admin cell."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    if len(text) > _REASON_MAX_CHARS:
        text = text[: _REASON_MAX_CHARS - 1] + "…"
    return text
