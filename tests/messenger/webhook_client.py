"""Sign and post webhook bodies the way Meta does, and look at what was queued."""
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from django.test import Client, TestCase
from django_rq import get_queue

FIXTURES = Path(__file__).parent / "fixtures"
WEBHOOK_PATH = "/api/webhooks/messenger"
APP_SECRET = "test-app-secret"  # tests/settings.py
PAGE_ID = "104728561934527"
PSID = "7395028461739201"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def signature(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_signed(client: Client, payload: object, *, path: str = WEBHOOK_PATH, **headers: str):
    """POST `payload` (bytes as they are, anything else as JSON) with a valid signature.

    In a test's wrapping transaction nothing commits, so the on-commit callbacks (the
    enqueueing) are run when the request is done, as a real commit would.
    """
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers.setdefault("X-Hub-Signature-256", signature(body))
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(path, data=body, content_type="application/json", headers=headers)


def text_message(*, mid: str, text: str = "Hello", psid: str = PSID) -> dict[str, Any]:
    """A one-message envelope shaped like Meta's, for tests that need many distinct ones."""
    return {
        "object": "page",
        "entry": [
            {
                "id": PAGE_ID,
                "time": 1732550460623,
                "messaging": [
                    {
                        "sender": {"id": psid},
                        "recipient": {"id": PAGE_ID},
                        "timestamp": 1732550460311,
                        "message": {"mid": mid, "text": text},
                    }
                ],
            }
        ],
    }


def queued_reply_jobs() -> list:
    return [job for job in get_queue("default").get_jobs() if job.func_name.endswith("reply_to_message")]
