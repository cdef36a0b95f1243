"""The service as deployed, for end-to-end tests: the Procfile's web and worker processes,
PostgreSQL and Redis, with Graph and Groq stand-ins, driven through signed webhook POSTs."""

import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from devtools.processes import Process, process_descendants, start_web
from devtools.standins.chat_webhook import WebhookStandIn
from devtools.standins.graph import GraphStandIn
from devtools.standins.groq import GroqStandIn
from devtools.webhook import signature, text_message
from tests.processes import process_environment

# Short intervals so retries, the sweep and an expired lock happen within a test's patience.
FAST_ENVIRONMENT = {
    "REPLY_RETRY_INTERVALS": "1,1,2",
    "ALERT_RETRY_INTERVALS": "1,1",
    "REPLY_SWEEP_INTERVAL_SECONDS": "1",
    "REPLY_SWEEP_GRACE_SECONDS": "2",
    "GROQ_TIMEOUT_SECONDS": "5",
    "REPLY_LOCK_MARGIN_SECONDS": "1",
    "FACEBOOK_RATE_LIMIT_MESSAGES_PER_MINUTE": "1000",
    "RQ_WORKERS": "2",
    "RQ_THREADS": "8",
}


class Stack:
    def __init__(self, *, log_dir: Path, **environment: str) -> None:
        self.graph = GraphStandIn().start()
        self.groq = GroqStandIn().start()
        self.alerts = WebhookStandIn().start()
        overrides = {
            "FACEBOOK_GRAPH_API_URL": self.graph.url,
            "GROQ_BASE_URL": self.groq.url,
            "STAFF_ALERT_WEBHOOK_URL": f"{self.alerts.url}/hooks/staff",
            **FAST_ENVIRONMENT,
            **environment,
        }
        self.env = process_environment(**overrides)
        self.log_dir = log_dir
        self.web, self.base_url = start_web(self.env, log_dir)
        self.worker = Process("worker", self.env, log_dir)

    def kill_worker(self) -> None:
        """SIGKILL the worker and every process under it at once, as a container's death would.

        RQ runs each job in a process group of its own, so killing the worker's group alone
        would leave the job running.
        """
        pids = [self.worker.popen.pid, *process_descendants(self.worker.popen.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.worker.wait(timeout=10)

    def restart_worker(self) -> None:
        self.worker = Process("worker", self.env, self.log_dir)

    def restart(self, **environment: str) -> None:
        """Stop web and worker, then start them again with `environment` changed, as a deploy would."""
        for process in (self.worker, self.web):
            process.stop()
        self.env = {**self.env, **environment}
        self.web, self.base_url = start_web(self.env, self.log_dir)
        self.worker = Process("worker", self.env, self.log_dir)

    def stop(self) -> None:
        for process in (self.worker, self.web):
            process.stop()
        self.graph.stop()
        self.groq.stop()
        self.alerts.stop()

    def reset(self) -> None:
        self.graph.reset()
        self.groq.reset()
        self.alerts.reset()

    def post_text(self, *, psid: str, text: str, sent_at_ms: int | None = None) -> requests.Response:
        envelope = text_message(mid=f"m_{uuid.uuid4().hex}", text=text, psid=psid)
        if sent_at_ms is not None:  # as Meta stamped it: a message written a while ago
            envelope["entry"][0]["messaging"][0]["timestamp"] = sent_at_ms
        return self.post(envelope)

    def post(self, envelope: dict[str, Any]) -> requests.Response:
        """POST a webhook delivery, signed as Meta signs it; it must be acknowledged."""
        body = json.dumps(envelope).encode()
        response = requests.post(
            f"{self.base_url}/api/webhooks/messenger",
            data=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature(body)},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response

    def sent_to(self, psid: str) -> list[str]:
        """Texts Graph accepted for this person, in order."""
        return [
            call["json"]["message"]["text"]
            for call in self.graph.calls(kind="message")
            if call["psid"] == psid and call["status"] == 200
        ]

    def message_attempts(self, psid: str) -> int:
        """Send API calls for this person: messages and sender actions (not their profile)."""
        return len(
            [call for call in self.graph.calls() if call["psid"] == psid and call["kind"] != "profile"]
        )

    def prompts_with(self, marker: str) -> list[dict[str, Any]]:
        return [call for call in self.groq.calls() if marker in (call["prompt"] or "")]


@contextlib.contextmanager
def stack_running(*, django_db_blocker, log_dir: Path, **environment: str) -> Iterator[Stack]:
    """A Stack on the test database (which a module-scoped fixture must unblock) for the `with` block."""
    with django_db_blocker.unblock():
        started = Stack(log_dir=log_dir, **environment)
        try:
            yield started
        finally:
            started.stop()


def settle(seconds: float = 1.0) -> None:
    """Give a duplicate, if there were going to be one, time to show up before counting."""
    time.sleep(seconds)
