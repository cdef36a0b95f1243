"""Old deliveries through the webhook: a forgotten person does not come back when Meta retries (or
someone replays) a signed delivery of theirs, and a postback without a mid is answered once."""

import copy
import logging
import time

import pytest

from conversations.models import Contact, Message
from conversations.services.conversations import contact_forget
from devtools.webhook import PSID, post_signed, postback, text_message
from tests.jobs import queued_reply_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]
QUESTION = "My name is Jane Roe, my phone is +1 555 0100, where is my order 5521?"


@pytest.fixture(autouse=True)
def empty_queue(redis_conn):
    """Every test starts with no queued jobs and no rate-limit history."""


def now_ms(*, plus_seconds: float = 0) -> int:
    return int((time.time() + plus_seconds) * 1000)


def forget_everyone() -> None:
    for contact in Contact.objects.all():
        contact_forget(contact=contact)


def without_mid(body: dict) -> dict:
    body = copy.deepcopy(body)
    del body["entry"][0]["messaging"][0]["postback"]["mid"]
    return body


def test_a_delivery_replayed_after_forget_is_acknowledged_and_ignored(client, caplog):
    delivery = text_message(mid="m_jane_1", text=QUESTION, timestamp_ms=now_ms(plus_seconds=-5))
    post_signed(client, delivery)
    forget_everyone()
    jobs = len(queued_reply_jobs())

    with caplog.at_level(logging.INFO, logger="conversations"):
        response = post_signed(client, delivery)

    assert response.status_code == 200
    assert not Contact.objects.exists() and not Message.objects.exists()
    assert len(queued_reply_jobs()) == jobs
    [line] = [record.getMessage() for record in caplog.records if "forgotten" in record.getMessage()]
    assert PSID not in line and "m_jane_1" not in line


def test_a_late_retry_stamped_after_the_forget_is_still_known_by_its_mid(client):
    # Meta's clock a little ahead of ours: only the mid tells the retry from a new message.
    delivery = text_message(mid="m_jane_1", text=QUESTION, timestamp_ms=now_ms(plus_seconds=60))
    post_signed(client, delivery)
    forget_everyone()

    post_signed(client, delivery)

    assert not Message.objects.exists()


def test_a_message_sent_before_the_forget_but_delivered_after_is_ignored(client):
    post_signed(client, text_message(mid="m_jane_1", text=QUESTION, timestamp_ms=now_ms(plus_seconds=-5)))
    forget_everyone()

    post_signed(
        client, text_message(mid="m_jane_2", text="and my email", timestamp_ms=now_ms(plus_seconds=-3))
    )

    assert not Message.objects.exists()


def test_a_new_message_from_a_forgotten_person_is_answered(client):
    post_signed(client, text_message(mid="m_jane_1", text=QUESTION, timestamp_ms=now_ms(plus_seconds=-5)))
    forget_everyone()
    jobs = len(queued_reply_jobs())

    post_signed(client, text_message(mid="m_jane_2", text="Hello again", timestamp_ms=now_ms(plus_seconds=1)))

    [message] = Message.objects.all()
    assert (message.text, message.conversation.identity.external_id) == ("Hello again", PSID)
    assert len(queued_reply_jobs()) == jobs + 1


def test_a_postback_without_a_mid_delivered_twice_is_stored_and_answered_once(client):
    tap = without_mid(postback(mid="-", title="Get Started", payload="GET_STARTED"))

    responses = [post_signed(client, tap) for _ in range(2)]

    assert [response.status_code for response in responses] == [200, 200]
    [message] = Message.objects.all()
    assert message.details["postback_payload"] == "GET_STARTED"
    assert len(queued_reply_jobs()) == 1
    # Another tap on the same button is another postback.
    later = copy.deepcopy(tap)
    later["entry"][0]["messaging"][0]["timestamp"] += 1000
    post_signed(client, later)
    assert Message.objects.count() == 2


def test_a_postback_without_a_mid_replayed_after_forget_is_ignored(client):
    tap = without_mid(postback(mid="-", title="Get Started", payload="GET_STARTED"))
    tap["entry"][0]["messaging"][0]["timestamp"] = now_ms(plus_seconds=60)
    post_signed(client, tap)
    forget_everyone()

    post_signed(client, tap)

    assert not Message.objects.exists()
