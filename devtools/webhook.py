"""Messenger webhook deliveries as Meta sends them: the JSON envelope, its signature, and posting
one to the service (through Django's test client, or over HTTP to a running web process)."""

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
) -> dict[str, Any]:
    """A one-message envelope shaped like Meta's, stamped now unless `timestamp_ms` says otherwise;
    with `quick_reply_payload`, the tap on a quick reply titled `text`."""
    message: dict[str, Any] = {"mid": mid, "text": text}
    if quick_reply_payload is not None:
        message["quick_reply"] = {"payload": quick_reply_payload}
    return _envelope(psid=psid, timestamp_ms=timestamp_ms, event={"message": message})


def postback(*, mid: str, title: str, payload: str, psid: str = PSID) -> dict[str, Any]:
    """A tap on a postback button (the persistent menu's items, Get Started), as Meta sends it."""
    return _envelope(
        psid=psid, timestamp_ms=None, event={"postback": {"mid": mid, "title": title, "payload": payload}}
    )


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
