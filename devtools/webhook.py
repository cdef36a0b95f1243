"""Webhook deliveries as Meta sends them (Messenger, Instagram, Page and Instagram comments): the JSON
envelope, its signature, and posting one to the service (through Django's test client, or over
HTTP to a running web process)."""

import hashlib
import hmac
import json
import time
from typing import Any

WEBHOOK_PATH = "/api/webhooks/messenger"
PAGE_ID = "104728561934527"
# The app secret the test suite and `make try` configure (tests/settings.py, devtools/local.py).
APP_SECRET = "test-app-secret"
PSID = "7395028461739201"
INSTAGRAM_ACCOUNT_ID = "17841405822304914"
IGSID = "1254459154682919"
POST_ID = f"{PAGE_ID}_122112233445566778"
MEDIA_ID = "18023456789012345"


def signature(body: bytes, secret: str = APP_SECRET) -> str:
    """The `X-Hub-Signature-256` header Meta sends with `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def text_message(
    *,
    mid: str,
    text: str = "Hello",
    psid: str = PSID,
    timestamp_ms: int | None = None,
    quick_reply_payload: str | None = None,
    reply_to_mid: str | None = None,
    page_id: str = PAGE_ID,
) -> dict[str, Any]:
    """A one-message envelope shaped like Meta's, to Page `page_id`, stamped now unless
    `timestamp_ms` says otherwise; with `quick_reply_payload`, the tap on a quick reply titled `text`;
    with `reply_to_mid`, a reply to that message."""
    message: dict[str, Any] = {"mid": mid, "text": text}
    if quick_reply_payload is not None:
        message["quick_reply"] = {"payload": quick_reply_payload}
    if reply_to_mid is not None:
        message["reply_to"] = {"mid": reply_to_mid}
    return _envelope(psid=psid, timestamp_ms=timestamp_ms, event={"message": message}, page_id=page_id)


def attachments_message(
    *, mid: str, attachments: list[tuple[str, str]], text: str | None = None, psid: str = PSID
) -> dict[str, Any]:
    """A message with attachments, each (type, url): "audio" for a voice message, "image", ..."""
    message: dict[str, Any] = {
        "mid": mid,
        "attachments": [{"type": kind, "payload": {"url": url}} for kind, url in attachments],
    }
    if text is not None:
        message["text"] = text
    return _envelope(psid=psid, timestamp_ms=None, event={"message": message})


def reaction(*, mid: str, emoji: str, psid: str = PSID, action: str = "react") -> dict[str, Any]:
    """The person reacted with `emoji` to the message `mid` (or took it back, with action "unreact")."""
    return _envelope(
        psid=psid,
        timestamp_ms=None,
        event={"reaction": {"mid": mid, "action": action, "emoji": emoji, "reaction": "other"}},
    )


def postback(
    *, mid: str, title: str, payload: str, psid: str = PSID, page_id: str = PAGE_ID
) -> dict[str, Any]:
    """A tap on a postback button (the persistent menu's items, Get Started), as Meta sends it."""
    return _envelope(
        psid=psid,
        timestamp_ms=None,
        event={"postback": {"mid": mid, "title": title, "payload": payload}},
        page_id=page_id,
    )


def instagram_message(
    *,
    mid: str,
    text: str = "Hello",
    igsid: str = IGSID,
    account_id: str = INSTAGRAM_ACCOUNT_ID,
    **message: Any,
) -> dict[str, Any]:
    """A one-message Instagram envelope: `igsid` writes to the professional account `account_id`;
    `message` adds fields to Meta's `message` (`reply_to`, `attachments`, `is_echo`, ...)."""
    return _envelope(
        psid=igsid,
        timestamp_ms=None,
        event={"message": {"mid": mid, "text": text, **message}},
        kind="instagram",
        page_id=account_id,
    )


def message_edit(*, mid: str, text: str, num_edit: int = 1, psid: str = PSID) -> dict[str, Any]:
    """The person edited their message `mid` to `text` (Messenger's `message_edit`)."""
    return _envelope(
        psid=psid, timestamp_ms=None, event={"message_edit": {"mid": mid, "text": text, "num_edit": num_edit}}
    )


def feed_comment(
    *,
    comment_id: str,
    text: str,
    post_id: str = POST_ID,
    author_id: str = "8123456789012345",
    author_name: str = "Ada Lovelace",
    verb: str = "add",
    created_time: int | None = None,
    page_id: str = PAGE_ID,
) -> dict[str, Any]:
    """A comment on the Page's post `post_id` (a `feed` change), made now unless `created_time`
    (Unix seconds) says otherwise; the Page's own comment when `author_id` is `page_id`."""
    value = {
        "from": {"id": author_id, "name": author_name},
        "post_id": post_id,
        "comment_id": comment_id,
        "parent_id": post_id,
        "created_time": int(time.time()) if created_time is None else created_time,
        "item": "comment",
        "verb": verb,
        "message": text,
    }
    return _changes(kind="page", page_id=page_id, field="feed", value=value)


def instagram_comment(
    *,
    comment_id: str,
    text: str,
    media_id: str = MEDIA_ID,
    author_id: str = IGSID,
    username: str = "ada.lovelace",
    account_id: str = INSTAGRAM_ACCOUNT_ID,
) -> dict[str, Any]:
    """A comment on the Instagram account's media `media_id` (a `comments` change)."""
    value = {
        "from": {"id": author_id, "username": username},
        "media": {"id": media_id},
        "id": comment_id,
        "text": text,
    }
    return _changes(kind="instagram", page_id=account_id, field="comments", value=value)


def post_signed(client: Any, payload: object, *, path: str = WEBHOOK_PATH, **headers: str) -> Any:
    """POST `payload` (bytes as they are, anything else as JSON) with a valid signature, through
    Django's test `client`.

    In a test's wrapping transaction nothing commits, so the on-commit callbacks (the
    enqueueing) are run when the request is done, as a real commit would.
    """
    from django.test import TestCase

    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers.setdefault("X-Hub-Signature-256", signature(body))
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(path, data=body, content_type="application/json", headers=headers)


def _envelope(
    *, psid: str, timestamp_ms: int | None, event: dict[str, Any], kind: str = "page", page_id: str = PAGE_ID
) -> dict[str, Any]:
    if timestamp_ms is None:
        timestamp_ms = int(time.time() * 1000)
    return {
        "object": kind,
        "entry": [
            {
                "id": page_id,
                "time": timestamp_ms,
                "messaging": [
                    {
                        "sender": {"id": psid},
                        "recipient": {"id": page_id},
                        "timestamp": timestamp_ms,
                        **event,
                    }
                ],
            }
        ],
    }


def _changes(*, kind: str, page_id: str, field: str, value: dict[str, Any]) -> dict[str, Any]:
    # Meta stamps change notifications in seconds.
    return {
        "object": kind,
        "entry": [{"id": page_id, "time": int(time.time()), "changes": [{"field": field, "value": value}]}],
    }
