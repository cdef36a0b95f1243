"""People's names: fetched once after their first message, a refusal remembered for a week, the
first name given to the LLM; never a cost per message."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_rq import get_queue

from conversations.models import Contact, Message
from conversations.services.conversations import (
    contact_profile_fetch,
    contacts_profile_sweep,
    conversation_get_or_create,
)
from conversations.services.inbound import inbound_events_store
from conversations.services.replies import reply_produce
from devtools.webhook import text_message
from messenger.parser import parse_webhook

pytestmark = pytest.mark.django_db(transaction=True)
PSID = "7395028461739201"


def profile_jobs() -> list[int]:
    return [
        job.kwargs["contact_id"]
        for job in get_queue().get_jobs()
        if job.func_name.endswith("profile_fetch_run")
    ]


def deliver(mid: str, psid: str = PSID) -> None:
    inbound_events_store(events=parse_webhook(text_message(mid=mid, psid=psid)))


def test_a_first_message_queues_one_profile_fetch_and_later_ones_none(redis_conn):
    for number in range(5):
        deliver(f"m_{number}")

    contact = Contact.objects.get()
    assert profile_jobs() == [contact.pk]


def test_the_fetch_stores_name_first_name_and_picture(graph, redis_conn):
    deliver("m_1")
    contact = Contact.objects.get()

    contact_profile_fetch(contact_id=contact.pk)

    contact.refresh_from_db()
    assert (contact.name, contact.first_name) == ("Test User 9201", "Test")
    assert contact.picture_url == f"https://lookaside.example/{PSID}.jpg"
    assert str(contact) == "Test User 9201"
    [call] = graph.calls(kind="profile")
    assert call["query"] == {"fields": "first_name,last_name,profile_pic"}


def test_a_refusal_is_remembered_and_asked_again_only_after_a_week(graph, redis_conn):
    deliver("m_1")
    contact = Contact.objects.get()
    graph.script([{"on": "profile", "status": 400, "code": 100, "message": "No profile permission"}])

    contact_profile_fetch(contact_id=contact.pk)
    get_queue().empty()

    contact.refresh_from_db()
    assert contact.name == "" and "No profile permission" in contact.profile_error
    assert contacts_profile_sweep() == 0  # refused just now: not asked again, however many messages come
    Contact.objects.filter(pk=contact.pk).update(profile_fetched_at=timezone.now() - timedelta(days=8))
    assert contacts_profile_sweep() == 1
    assert profile_jobs() == [contact.pk]


def test_graph_down_leaves_the_contact_for_the_hourly_sweep(graph, redis_conn):
    deliver("m_1")
    contact = Contact.objects.get()
    get_queue().empty()
    graph.script([{"on": "profile", "status": 503}])

    contact_profile_fetch(contact_id=contact.pk)

    contact.refresh_from_db()
    assert contact.profile_fetched_at is None
    assert contacts_profile_sweep() == 1


def test_the_first_name_goes_to_the_llm(graph, groq, redis_conn):
    conversation = conversation_get_or_create(page_id="1", external_id=PSID)
    Contact.objects.filter(pk=conversation.identity.contact_id).update(first_name="Ada")
    message = Message.objects.create(conversation=conversation, role="client", text="hi", status="received")

    reply_produce(message_id=message.pk, final_attempt=True)

    assert "The person's first name is Ada." in groq.calls()[0]["prompt"].split("</SYSTEM>")[0]
