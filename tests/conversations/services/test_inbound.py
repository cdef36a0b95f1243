"""conversations.services.inbound where real commits matter: races, echoes, Redis outages."""

import json
import threading

import pytest
import requests
from django.db import connection
from django.test import Client

from conversations.models import Message
from conversations.selectors import NOTICE_PENDING
from conversations.services.inbound import inbound_events_store
from devtools.processes import free_port, start_web
from devtools.webhook import PSID, WEBHOOK_PATH, post_signed, signature, text_message
from messenger.graph import OUR_METADATA_MARKER
from messenger.parser import parse_webhook
from tests.jobs import queued_reply_jobs
from tests.messenger.fixtures import fixture
from tests.processes import process_environment

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


def _deliver(*, mid: str, text: str = "Hello") -> None:
    inbound_events_store(events=parse_webhook(text_message(mid=mid, text=text)))


@pytest.mark.django_db(transaction=True)
def test_a_known_senders_message_is_stored_touched_and_queued(redis_conn):
    _deliver(mid="m_first")
    _deliver(mid="m_second", text="And again")
    message = Message.objects.get(external_id="m_second")
    assert message.status == Message.Status.RECEIVED
    assert message.conversation.last_message_text == "And again"
    assert message.conversation.last_activity_at == message.created_at
    queued = sorted(job.args[0] for job in queued_reply_jobs())
    assert queued == sorted(Message.objects.values_list("pk", flat=True))


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_message_is_stored_queued_and_counted_once(settings, redis_conn):
    settings.FACEBOOK_RATE_LIMIT_MESSAGES_PER_MINUTE = 2
    _deliver(mid="m_first")
    _deliver(mid="m_first")
    _deliver(mid="m_second")
    assert Message.objects.count() == 2
    assert len(queued_reply_jobs()) == 2
    # The redelivery was not counted: the second message was the window's last, the third is over.
    assert Message.objects.get(external_id="m_second").status == Message.Status.RECEIVED
    _deliver(mid="m_third")
    assert Message.objects.get(external_id="m_third").status == Message.Status.RATE_LIMITED


@pytest.mark.django_db(transaction=True)
def test_over_limit_messages_are_stored_marked_and_only_the_notice_is_queued(settings, redis_conn):
    settings.FACEBOOK_RATE_LIMIT_MESSAGES_PER_MINUTE = 1
    for mid in ("m_allowed", "m_allowed", "m_first_over", "m_later_over"):
        _deliver(mid=mid)
    first_over = Message.objects.get(external_id="m_first_over")
    later_over = Message.objects.get(external_id="m_later_over")
    assert first_over.status == later_over.status == Message.Status.RATE_LIMITED
    assert list(Message.objects.filter(NOTICE_PENDING)) == [first_over]
    # The allowed message's job answers it; the first one over the limit's sends the notice.
    allowed = Message.objects.get(external_id="m_allowed")
    assert [job.args[0] for job in queued_reply_jobs()] == [allowed.pk, first_over.pk]


@pytest.mark.django_db(transaction=True)
def test_events_for_another_page_are_not_answered_and_logged_once(settings, redis_conn, caplog):
    settings.FACEBOOK_PAGE_ID = "999999"
    for mid in ("m_other_1", "m_other_2"):
        _deliver(mid=mid)

    assert not Message.objects.exists()
    assert queued_reply_jobs() == []
    assert caplog.text.count("Ignored events for page '104728561934527'") == 1


@pytest.mark.django_db(transaction=True)
def test_the_person_last_wrote_at_is_metas_time_of_their_newest_message(redis_conn):
    payload = text_message(mid="m_stamped", text="hi")
    payload["entry"][0]["messaging"][0]["timestamp"] = 1764835200000  # 2025-12-04 08:00 UTC
    inbound_events_store(events=parse_webhook(payload))

    message = Message.objects.get()
    assert message.conversation.person_last_wrote_at == message.sent_at
    assert message.sent_at.isoformat() == "2025-12-04T08:00:00+00:00"
