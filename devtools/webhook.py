"""Messenger webhook deliveries as Meta sends them: the JSON envelope and its signature."""
import hashlib
import hmac
import time
from typing import Any

WEBHOOK_PATH = "/api/webhooks/messenger"
PAGE_ID = "104728561934527"


def signature(body: bytes, secret: str) -> str:
    """The `X-Hub-Signature-256` header Meta sends with `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def text_message(
    *, mid: str, text: str, psid: str, timestamp_ms: int | None = None, quick_reply_payload: str | None = None
) -> dict[str, Any]:
    """A one-message envelope shaped like Meta's, stamped now unless `timestamp_ms` says otherwise;
    with `quick_reply_payload`, the tap on a quick reply titled `text`."""
    message: dict[str, Any] = {"mid": mid, "text": text}
    if quick_reply_payload is not None:
        message["quick_reply"] = {"payload": quick_reply_payload}
    return _envelope(psid=psid, timestamp_ms=timestamp_ms, event={"message": message})


def postback(*, mid: str, title: str, payload: str, psid: str) -> dict[str, Any]:
    """A tap on a postback button (the persistent menu's items, Get Started), as Meta sends it."""
    return _envelope(psid=psid, timestamp_ms=None, event={"postback": {"mid": mid, "title": title, "payload": payload}})


def _envelope(*, psid: str, timestamp_ms: int | None, event: dict[str, Any]) -> dict[str, Any]:
    if timestamp_ms is None:
        timestamp_ms = int(time.time() * 1000)
    return {
        "object": "page",
        "entry": [
            {
                "id": PAGE_ID,
                "time": timestamp_ms,
                "messaging": [
                    {
                        "sender": {"id": psid},
                        "recipient": {"id": PAGE_ID},
                        "timestamp": timestamp_ms,
                        **event,
                    }
                ],
            }
        ],
    }
