"""conversations.services.inbound where real commits matter: races, echoes, Redis outages."""
import json
import threading

import pytest
import requests
from django.db import connection
from django.test import Client

from conversations.models import Message
from conversations.services.inbound import inbound_events_store
from messenger.graph import OUR_METADATA_MARKER
from messenger.parser import parse_webhook
from tests.messenger.webhook_client import (
    PSID,
    WEBHOOK_PATH,
    fixture,
    post_signed,
    queued_reply_jobs,
    signature,
    text_message,
)
from tests.processes import free_port, process_environment, start_web

pytestmark = pytest.mark.postgres


@pytest.mark.django_db(transaction=True)
def test_same_mid_from_concurrent_deliveries_is_stored_and_queued_once(redis_conn):
    barrier = threading.Barrier(3)
    statuses = []

    def deliver() -> None:
        try:
            barrier.wait()
            statuses.append(post_signed(Client(), fixture("text_message")).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 3
    assert Message.objects.count() == 1
    assert len(queued_reply_jobs()) == 1


@pytest.mark.django_db
def test_echo_carrying_our_metadata_marker_is_ignored_without_an_app_id(settings, redis_conn):
    settings.FACEBOOK_APP_ID = ""
    payload = fixture("echo_inbox")
    payload["entry"][0]["messaging"][0]["message"]["metadata"] = OUR_METADATA_MARKER
    inbound_events_store(events=parse_webhook(payload))
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_echo_of_a_send_we_already_recorded_changes_nothing(redis_conn):
    inbound_events_store(events=parse_webhook(fixture("text_message")))
    conversation = Message.objects.get().conversation
    echo_mid = fixture("echo_inbox")["entry"][0]["messaging"][0]["message"]["mid"]
    Message.objects.create(
        conversation=conversation, role=Message.Role.AI, status=Message.Status.SENT, external_id=echo_mid
    )
    inbound_events_store(events=parse_webhook(fixture("echo_inbox")))
    assert not Message.objects.filter(role=Message.Role.STAFF).exists()
    conversation.refresh_from_db()
    assert conversation.bot_active


@pytest.fixture(scope="module")
def web_without_redis(django_db_setup, django_db_blocker, tmp_path_factory):
    """The real `web:` process, its Redis URL pointing at a port where nothing listens."""
    with django_db_blocker.unblock():
        env = process_environment(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", WEB_CONCURRENCY="1")
    web, base_url = start_web(env, tmp_path_factory.mktemp("web-without-redis"))
    yield base_url
    web.stop()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_with_redis_down_the_webhook_still_acknowledges_and_stores(web_without_redis):
    body = json.dumps(text_message(mid="m_while_redis_is_down", text="Anyone there?")).encode()
    response = requests.post(
        web_without_redis + WEBHOOK_PATH,
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature(body)},
        timeout=10,
    )
    assert response.status_code == 200
    message = Message.objects.get(external_id="m_while_redis_is_down")
    # Still waiting: the recovery sweep answers it once Redis is back.
    assert message.status == Message.Status.RECEIVED
    assert message.conversation.identity.external_id == PSID
