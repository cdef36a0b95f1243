"""What an operator's monitoring sees of the real web and worker processes: /metrics counting
real traffic across every process, and LOG_FORMAT=json logs a log stack can search."""

import json
import uuid

import pytest
import requests
from django_rq import get_connection

from devtools.processes import wait_for
from tests.e2e.stack import settle, stack_running
from tests.settings import TEST_SECRETS

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """The conftest's stack, logging as JSON."""
    get_connection("default").flushdb()
    with stack_running(
        django_db_blocker=django_db_blocker, log_dir=tmp_path_factory.mktemp("processes"), LOG_FORMAT="json"
    ) as started:
        yield started


def scrape(service) -> dict[str, float]:
    response = requests.get(
        f"{service.base_url}/metrics",
        headers={"Authorization": f"Bearer {TEST_SECRETS['METRICS_TOKEN']}"},
        timeout=10,
    )
    assert response.status_code == 200
    values = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_counters_add_up_what_every_web_and_worker_process_did(service):
    before = scrape(service)
    psids = [str(uuid.uuid4().int)[:16] for _ in range(4)]
    for psid in psids:  # spread over both web workers and several RQ workers
        service.post_text(psid=psid, text=f"Hello {psid}")
    wait_for(lambda: all(service.sent_to(psid) for psid in psids), message="the replies")
    settle()

    after = scrape(service)
    moved = {name: after[name] - before.get(name, 0) for name in after}
    assert moved['messenger_messages_received_total{channel="messenger",kind="text"}'] == 4
    assert moved['messenger_replies_sent_total{channel="messenger",role="ai"}'] == 4
    assert moved['messenger_ai_replies_total{knowledge="no"}'] == 4
    assert moved["messenger_llm_latency_seconds_count"] == 4
    assert moved["messenger_webhook_to_send_seconds_count"] == 4
    assert after['rq_jobs{queue="default",status="queued"}'] == 0


def test_without_the_token_metrics_are_refused(service):
    response = requests.get(
        f"{service.base_url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10
    )
    assert response.status_code == 403
    assert "messenger_" not in response.text


def test_json_logs_are_one_object_per_line_with_the_conversation_and_job(service):
    psid = str(uuid.uuid4().int)[:16]
    service.post_text(psid=psid, text=f"Hello {psid}")
    wait_for(lambda: service.sent_to(psid), message="the reply")
    settle()

    for process in (service.web, service.worker):
        records = [json.loads(line) for line in process.output().splitlines() if line.strip()]
        assert all(
            isinstance(record, dict) and {"time", "level", "message"} <= set(record) for record in records
        )
        for secret in TEST_SECRETS.values():
            assert secret not in process.output()
    web_lines = [json.loads(line) for line in service.web.output().splitlines()]
    assert any(
        record["logger"] == "gunicorn.access" and "/api/webhooks/messenger" in record["message"]
        for record in web_lines
    )
    worker_lines = [json.loads(line) for line in service.worker.output().splitlines()]
    groq_calls = [record for record in worker_lines if "chat/completions" in record["message"]]
    assert groq_calls
    assert all(record["conversation_id"] and record["job_id"] and record["mid"] for record in groq_calls)
