"""The database settings: a connection the server closed is replaced, not used (CONN_HEALTH_CHECKS)."""

import json
import time

import pytest
import requests
from django.db import connection

from conversations.models import Message
from devtools.processes import start_web
from devtools.webhook import WEBHOOK_PATH, signature, text_message
from tests.processes import process_environment

pytestmark = pytest.mark.postgres

TERMINATE_OTHER_BACKENDS = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


@pytest.fixture
def web(transactional_db, tmp_path):
    process, base_url = start_web(process_environment(WEB_CONCURRENCY="1"), tmp_path)
    yield base_url
    process.stop()


def _post(base_url: str, *, mid: str) -> int:
    body = json.dumps(text_message(mid=mid, text="Still there?")).encode()
    return requests.post(
        base_url + WEBHOOK_PATH,
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature(body)},
        timeout=10,
    ).status_code


@pytest.mark.e2e
def test_after_the_server_drops_the_web_process_connections_the_next_webhook_is_stored(web):
    assert _post(web, mid="m_before_the_drop") == 200
    with connection.cursor() as cursor:  # what a restart or a failover does to every session
        cursor.execute(TERMINATE_OTHER_BACKENDS)
    time.sleep(0.2)
    assert _post(web, mid="m_after_the_drop") == 200
    assert Message.objects.filter(external_id__in=["m_before_the_drop", "m_after_the_drop"]).count() == 2
