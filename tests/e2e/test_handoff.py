"""Handoff, alerts, names and Meta's 24-hour rule, through the real web and worker processes."""

import time
import uuid

import pytest
from django.conf import settings

from conversations.llm import HANDOFF_TOOL
from conversations.models import Contact, Conversation, Message
from devtools.processes import wait_for
from tests.e2e.stack import settle

pytestmark = pytest.mark.postgres


@pytest.fixture
def psid() -> str:
    return str(uuid.uuid4().int)[:16]


def handed_over(psid: str) -> Conversation | None:
    return Conversation.objects.filter(
        identity__external_id=psid, waiting_for_staff_since__isnull=False
    ).first()


def test_the_model_hands_over_the_person_is_told_and_staff_get_an_alert(service, psid):
    service.groq.script([{"tool_calls": [{"name": HANDOFF_TOOL, "arguments": {"reason": "Wants a refund"}}]}])

    service.post_text(psid=psid, text="my order never came, i want my money back")

    wait_for(lambda: service.sent_to(psid), message="the handoff message")
    conversation = wait_for(lambda: handed_over(psid), message="the conversation to wait for staff")
    assert (conversation.bot_active, conversation.handoff_reason) == (False, "Wants a refund")
    [alert] = wait_for(lambda: service.alerts.calls(kind="alert"), message="the alert")
    assert alert["text"].startswith("Test User ") and "needs a person\nWants a refund\n" in alert["text"]
    assert alert["text"].endswith(f"/admin/conversations/conversation/{conversation.pk}/change/")

    service.post_text(psid=psid, text="hello??")  # the bot is paused now: no reply asked of the LLM
    settle(2)
    assert service.sent_to(psid) == [settings.HANDOFF_MESSAGE]
    # The one reply, and the summary for staff (which offers no tool).
    assert [call["tools"] for call in service.groq.calls()] == [[HANDOFF_TOOL], []]


def test_an_alert_the_webhook_refuses_twice_arrives_on_the_third_try(service, psid):
    service.alerts.script([{"status": 503}, {"status": 500}])
    service.groq.script([{"tool_calls": [{"name": HANDOFF_TOOL, "arguments": {"reason": "Angry"}}]}])

    service.post_text(psid=psid, text="this is useless")

    wait_for(lambda: len(service.alerts.calls()) >= 3, message="three tries")
    settle(3)
    assert [call["status"] for call in service.alerts.calls()] == [503, 500, 200]


def test_a_profile_is_fetched_once_for_many_messages(service, psid):
    for number in range(3):
        service.post_text(psid=psid, text=f"message {number}")

    contact = wait_for(
        lambda: Contact.objects.filter(identities__external_id=psid).exclude(name="").first(),
        message="the name",
    )
    service.post_text(psid=psid, text=f"{psid} after the name")
    [call] = wait_for(lambda: service.prompts_with(f"{psid} after the name"), message="the next prompt")
    settle()
    assert contact.first_name == "Test"
    assert len([call for call in service.graph.calls(kind="profile") if call["psid"] == psid]) == 1
    assert "The person's first name is Test." in call["prompt"]


def test_no_bot_reply_is_attempted_to_a_message_written_more_than_a_day_ago(service, psid):
    two_days_ago_ms = int((time.time() - 2 * 86400) * 1000)

    service.post_text(psid=psid, text="are you there", sent_at_ms=two_days_ago_ms)

    message = wait_for(
        lambda: Message.objects.filter(conversation__identity__external_id=psid, status="failed").first(),
        message="the message marked failed",
    )
    assert message.error_code == "outside_window"
    assert service.message_attempts(psid) == 0 and service.groq.calls() == []


def test_the_worker_checks_the_page_token_at_start_and_alerts_once(service):
    service.graph.script(default={"status": 400, "code": 190})
    for _ in range(2):  # the check runs as each worker starts; the second refusal is no news
        restart(service)
        wait_for(lambda: service.graph.calls(kind="page"), timeout=30, message="the token check")
        service.graph.reset()
        service.graph.script(default={"status": 400, "code": 190})

    settle(2)
    [alert] = service.alerts.calls(kind="alert")
    assert alert["text"].startswith(
        "Facebook refused the access token of FACEBOOK_PAGE_ACCESS_TOKEN's Page\n"
    )

    service.graph.reset()  # the token works again: the next refusal is news again
    restart(service)
    wait_for(lambda: service.graph.calls(kind="page"), timeout=30, message="the token check")


def restart(service) -> None:
    # Stopped as a deploy stops it: a killed worker's scheduler lock would hold up the next
    # module's retries for a minute, until it expires.
    service.worker.stop()
    service.restart_worker()
