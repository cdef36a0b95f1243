"""Handing a person over to staff: the model's handoff_to_human call, the "Talk to a person" button,
and what staff see and receive. The reply job runs in-process against the stand-ins."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.utils import timezone
from django_rq import get_queue

from conversations.hours import DAY_NAMES
from conversations.llm import HANDOFF_TOOL, NO_REASON
from conversations.models import Handoff, Message
from conversations.services.conversations import conversation_bot_resume, conversation_get_or_create
from conversations.services.handoff import handoff_message
from conversations.services.replies import reply_produce
from messenger.errors import TransientDeliveryError

pytestmark = pytest.mark.django_db
PSID = "7395028461739201"


@pytest.fixture
def conversation(graph, groq, redis_conn, settings):
    settings.STAFF_ALERT_EMAILS = ["staff@example.com"]
    return conversation_get_or_create(page_id="104728561934527", external_id=PSID)


def ask(conversation, text: str = "I want to talk to a human", **details) -> Message:
    message = Message.objects.create(
        conversation=conversation,
        role=Message.Role.CLIENT,
        text=text,
        status=Message.Status.RECEIVED,
        details=details,
    )
    reply_produce(message_id=message.pk, final_attempt=True)
    conversation.refresh_from_db()
    return message


def sent(graph) -> list[str]:
    return [call["json"]["message"]["text"] for call in graph.calls(kind="message") if call["status"] == 200]


def queued_alerts() -> list[dict]:
    return [job.kwargs for job in get_queue().get_jobs() if job.func_name.endswith("alert_deliver")]


def summaries_run() -> int:
    """Run the queued summary jobs, as a worker would; how many there were."""
    jobs = [job for job in get_queue().get_jobs() if job.func_name.endswith("handoff_summarise_run")]
    for job in jobs:
        job.perform()
        job.delete()
    return len(jobs)


def handoff_call(arguments: object) -> dict:
    return {"tool_calls": [{"name": HANDOFF_TOOL, "arguments": arguments}]}


def test_every_llm_call_offers_the_handoff_tool(conversation, groq):
    ask(conversation, "What are your opening hours?")
    assert groq.calls()[0]["tools"] == [HANDOFF_TOOL]


def test_the_models_handoff_pauses_the_bot_tells_the_person_and_alerts_staff_with_a_summary(
    conversation, groq, graph
):
    groq.script(
        [
            handoff_call({"reason": "Wants a refund for a broken vase"}),
            {"text": "Their vase arrived broken and they want a refund; the bot promised nothing."},
        ]
    )

    message = ask(conversation, "my vase arrived broken and i want my money back NOW")

    assert sent(graph) == [settings.HANDOFF_MESSAGE]
    assert not conversation.bot_active
    assert conversation.waiting_for_staff_since is not None
    assert conversation.handoff_reason == "Wants a refund for a broken vase"
    message.refresh_from_db()
    assert message.status == Message.Status.ANSWERED
    # The reply job told the person and asked nothing more of the LLM: the summary is a job of its own.
    assert len(groq.calls()) == 1 and queued_alerts() == []

    assert summaries_run() == 1

    summary = "Their vase arrived broken and they want a refund; the bot promised nothing."
    [alert] = queued_alerts()
    assert (alert["kind"], alert["reason"], alert["summary"], alert["conversation_id"]) == (
        "handoff",
        "Wants a refund for a broken vase",
        summary,
        conversation.pk,
    )
    [record] = Handoff.objects.all()  # kept for the dashboard after the wait ends
    assert (record.conversation, record.trigger, record.summary) == (
        conversation,
        Handoff.Trigger.MODEL,
        summary,
    )
    assert record.alerted_at is not None


def test_a_paused_bot_makes_no_more_llm_calls(conversation, groq, graph):
    groq.script(default=handoff_call({"reason": "Angry"}))  # the model would hand over every turn
    ask(conversation, "useless bot")

    ask(conversation, "hello??")
    ask(conversation, "anyone")

    assert len(groq.calls()) == 1
    assert sent(graph) == [settings.HANDOFF_MESSAGE]


@pytest.mark.parametrize(
    "arguments", ["{not json", {"why": "no reason key"}, {"reason": "   "}, {"reason": 42}]
)
def test_a_handoff_with_bad_arguments_still_hands_over(conversation, groq, graph, arguments):
    groq.script([handoff_call(arguments)])

    ask(conversation)

    assert conversation.handoff_reason == NO_REASON
    assert sent(graph) == [settings.HANDOFF_MESSAGE]


def test_text_and_a_handoff_together_send_the_text_then_the_handoff_message(conversation, groq, graph):
    groq.script(
        [{"text": "Our returns window is 30 days.", **handoff_call({"reason": "Return outside 30 days"})}]
    )

    ask(conversation, "can i return something from march")

    assert sent(graph) == ["Our returns window is 30 days.", settings.HANDOFF_MESSAGE]
    assert conversation.waiting_for_staff_since is not None


def test_an_unknown_tool_is_ignored_and_the_text_answers(conversation, groq, graph, caplog):
    groq.script([{"text": "We open at 10.", "tool_calls": [{"name": "delete_all_orders", "arguments": {}}]}])

    ask(conversation, "when do you open")

    assert sent(graph) == ["We open at 10."]
    assert conversation.bot_active and conversation.waiting_for_staff_since is None
    assert "The model called a tool that was not offered: 'delete_all_orders'" in caplog.text


@pytest.mark.parametrize(
    "payload", [{"postback_payload": "HUMAN_AGENT"}, {"quick_reply_payload": "HUMAN_AGENT"}]
)
def test_the_talk_to_a_person_button_hands_over_without_the_llm(conversation, groq, graph, payload):
    ask(conversation, "Talk to a person", **payload)

    assert groq.calls() == []
    assert [call["kind"] for call in graph.calls()] == ["message"]  # no "seen", no "typing"
    assert sent(graph) == [settings.HANDOFF_MESSAGE]
    assert conversation.handoff_reason == "The person asked to talk to a person."
    assert Handoff.objects.get().trigger == Handoff.Trigger.PERSON


def test_the_handoff_message_is_sent_on_a_retry_although_the_bot_is_paused(conversation, groq, graph):
    graph.script([{"on": "message", "status": 503}])
    groq.script([handoff_call({"reason": "Needs a person"})])
    message = Message.objects.create(
        conversation=conversation, role=Message.Role.CLIENT, text="help", status=Message.Status.RECEIVED
    )

    with pytest.raises(TransientDeliveryError):  # RQ retries the job
        reply_produce(message_id=message.pk, final_attempt=False)
    reply_produce(message_id=message.pk, final_attempt=True)

    assert sent(graph) == [settings.HANDOFF_MESSAGE]
    assert len(groq.calls()) == 1


def test_resuming_the_bot_ends_the_wait_for_staff(conversation, groq):
    groq.script([handoff_call({"reason": "Needs a person"})])
    ask(conversation)

    conversation_bot_resume(conversation=conversation)

    conversation.refresh_from_db()
    assert conversation.bot_active
    assert (conversation.waiting_for_staff_since, conversation.handoff_reason) == (None, "")


def test_a_second_handoff_keeps_the_first_reason_and_time(conversation, groq):
    groq.script([handoff_call({"reason": "First"})])
    ask(conversation)
    first_since = conversation.waiting_for_staff_since
    conversation.bot_active = True  # staff resumed the bot but left the flag, say
    conversation.save(update_fields=["bot_active"])
    groq.script([handoff_call({"reason": "Second"})])

    ask(conversation, "still there?")

    assert (conversation.waiting_for_staff_since, conversation.handoff_reason) == (first_since, "First")
    assert conversation.waiting_for_staff_since <= timezone.now()


def test_outside_business_hours_the_person_is_told_when_staff_are_back_and_staff_are_alerted(
    conversation, graph, settings
):
    settings.TIME_ZONE = "America/New_York"
    # Open only the day after tomorrow, where the business is: closed now, whatever the day.
    open_day = DAY_NAMES[(timezone.localdate() + timedelta(days=2)).weekday()]
    settings.BUSINESS_HOURS = f"{open_day[:3]} 09:00-17:00"

    ask(conversation, "Talk to a person", postback_payload="HUMAN_AGENT")
    summaries_run()

    assert sent(graph) == [
        f"I've asked someone from our team to take over. We're closed now; they'll reply when we open, "
        f"{open_day} at 09:00."
    ]
    assert [alert["kind"] for alert in queued_alerts()] == ["handoff"]


def test_within_business_hours_the_usual_message(conversation, graph, settings):
    settings.BUSINESS_HOURS = "daily 00:00-24:00"
    ask(conversation, "Talk to a person", postback_payload="HUMAN_AGENT")
    assert sent(graph) == [settings.HANDOFF_MESSAGE]


@pytest.mark.parametrize(
    ("at", "opens"),
    [
        (datetime(2025, 6, 6, 23, 30), "Monday at 09:00"),  # a Friday night
        (datetime(2025, 6, 10, 7, 0), "today at 09:00"),
        (datetime(2025, 3, 29, 12, 0), "Monday at 09:00"),  # the weekend the clocks go forward
    ],
)
def test_the_closed_message_names_the_next_opening_in_the_business_time_zone(
    ada_conversation, settings, at, opens
):
    settings.TIME_ZONE = "Europe/Copenhagen"
    settings.BUSINESS_HOURS = "mon-fri 09:00-17:00"
    settings.HANDOFF_MESSAGE_CLOSED = "Back {opens}; {not a placeholder}."

    text = handoff_message(page=None, at=at.replace(tzinfo=ZoneInfo("Europe/Copenhagen")))

    assert text == f"Back {opens}; {{not a placeholder}}."
