"""Sign and post webhook bodies the way Meta does, and look at what was queued."""
import json
from pathlib import Path
from typing import Any

from django.test import Client, TestCase
from django_rq import get_queue

from devtools import webhook
from devtools.webhook import PAGE_ID, WEBHOOK_PATH  # noqa: F401 -- re-exported for the tests

FIXTURES = Path(__file__).parent / "fixtures"
APP_SECRET = "test-app-secret"  # tests/settings.py
PSID = "7395028461739201"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def signature(body: bytes, secret: str = APP_SECRET) -> str:
    return webhook.signature(body, secret)


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
    return webhook.text_message(mid=mid, text=text, psid=psid)


def queued_reply_jobs() -> list:
    return [job for job in get_queue("default").get_jobs() if job.func_name.endswith("reply_to_message")]
