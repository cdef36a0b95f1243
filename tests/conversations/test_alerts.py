"""Staff alerts: by email and to a chat webhook, each channel its own job, retried, not repeated."""

import logging

import pytest
from django.core import mail
from django_rq import get_queue

from conversations import alerts
from conversations.alerts import AlertKind, alert_deliver, alert_raise, alert_token_works
from conversations.llm import HANDOFF_TOOL
from conversations.models import Message
from conversations.services.delivery import page_token_check, page_token_unset_warn
from conversations.services.replies import reply_produce
from tests.conversations.services.test_handoff import summaries_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def channels(settings, alert_webhook, redis_conn):
    settings.STAFF_ALERT_EMAILS = ["maria@example.com", "jon@example.com"]
    settings.SITE_URL = "https://bot.example.com"
    return alert_webhook


def queued() -> list[dict]:
    return [job.kwargs for job in get_queue().get_jobs() if job.func_name.endswith("alert_deliver")]


def deliver_queued() -> None:
    for alert in queued():
        alert_deliver(**alert, final_attempt=True)


def test_an_alert_reaches_both_channels_naming_contact_reason_and_link(channels, ada_conversation):
    alert_raise(kind=AlertKind.HANDOFF, reason="Wants a refund", conversation_id=ada_conversation.pk)

    assert sorted(alert["channel"] for alert in queued()) == ["email", "webhook"]
    deliver_queued()

    link = f"https://bot.example.com/admin/conversations/conversation/{ada_conversation.pk}/change/"
    [email] = mail.outbox
    assert (email.subject, email.to) == ("Ada needs a person", ["maria@example.com", "jon@example.com"])
    assert email.body == f"Wants a refund\n{link}"
    [call] = channels.calls(kind="alert")
    assert call["json"] == {"text": f"Ada needs a person\nWants a refund\n{link}"}


def test_the_same_alert_is_not_repeated_within_minutes_but_another_conversations_is(
    channels, ada_conversation, redis_conn
):
    for _ in range(3):
        alert_raise(kind=AlertKind.REPLY_FAILED, reason="Groq down", conversation_id=ada_conversation.pk)
    alert_raise(kind=AlertKind.HANDOFF, reason="Needs a person", conversation_id=ada_conversation.pk)
    alert_raise(kind=AlertKind.REPLY_FAILED, reason="Groq down", conversation_id=ada_conversation.pk + 1)

    assert len(queued()) == 3 * 2
    assert (
        0
        < redis_conn.ttl(f"alerts:reply_failed:{ada_conversation.pk}")
        <= alerts.REPEAT_AFTER.total_seconds()
    )


def test_no_channel_set_up_means_no_job(settings, redis_conn, ada_conversation):
    settings.STAFF_ALERT_EMAILS, settings.STAFF_ALERT_WEBHOOK_URL = [], ""
    alert_raise(kind=AlertKind.HANDOFF, reason="x", conversation_id=ada_conversation.pk)
    assert queued() == []


def test_each_channel_is_queued_with_rqs_retries_and_keeps_nothing_once_delivered(
    channels, ada_conversation, settings
):
    alert_raise(kind=AlertKind.HANDOFF, reason="x", conversation_id=ada_conversation.pk)

    jobs = [job for job in get_queue().get_jobs() if job.func_name.endswith("alert_deliver")]
    assert {job.kwargs["channel"] for job in jobs} == {"email", "webhook"}
    for job in jobs:
        assert job.retries_left == len(settings.ALERT_RETRY_INTERVALS)
        assert job.retry_intervals == settings.ALERT_RETRY_INTERVALS
        assert job.result_ttl == 0


def test_the_models_reason_and_summary_reach_the_chat_as_plain_text_not_slack_markup(
    channels, graph, groq, ada_conversation
):
    # The reason is the model's, written from a person's words: it must not ping or disguise links.
    reason = "Wants <!channel> to see <https://evil.example|the refund form> & more"
    summary = "Asked <@U123> for a refund & more"
    groq.script(
        [{"tool_calls": [{"name": HANDOFF_TOOL, "arguments": {"reason": reason}}]}, {"text": summary}]
    )
    message = Message.objects.create(
        conversation=ada_conversation,
        role=Message.Role.CLIENT,
        text="refund!",
        status=Message.Status.RECEIVED,
    )

    reply_produce(message_id=message.pk, final_attempt=True)
    summaries_run()
    deliver_queued()

    [call] = channels.calls(kind="alert")
    link = f"https://bot.example.com/admin/conversations/conversation/{ada_conversation.pk}/change/"
    assert call["json"] == {
        "text": "Ada needs a person\n"
        "Wants &lt;!channel&gt; to see &lt;https://evil.example|the refund form&gt; &amp; more\n"
        "Summary: Asked &lt;@U123&gt; for a refund &amp; more\n"
        f"{link}"
    }
    [email] = mail.outbox  # an email is plain text already: the reason as the model wrote it
    assert email.body == f"{reason}\nSummary: {summary}\n{link}"


def test_a_channel_that_fails_is_one_line_without_its_url_and_raises_for_rq_to_retry(
    channels, ada_conversation, caplog
):
    channels.script([{"status": 500}])

    with caplog.at_level(logging.WARNING, logger="conversations.alerts"):
        with pytest.raises(alerts.AlertNotDelivered) as raised:
            alert_deliver(
                channel="webhook",
                kind="handoff",
                reason="x",
                conversation_id=ada_conversation.pk,
                final_attempt=False,
            )

    [line] = caplog.messages
    assert line == "Alert handoff by webhook failed, to be tried again: HTTPError, HTTP 500"
    # The URL's path is the webhook's secret: neither the line nor what rq logs of the error has it.
    assert "/hooks/" not in caplog.text and "/hooks/" not in str(raised.value)
    assert raised.value.__suppress_context__


def test_after_the_last_try_it_gives_up_with_one_error_line(channels, ada_conversation, caplog, monkeypatch):
    # The client's wait shortened from 5 s: what is under test is what happens once it is over.
    monkeypatch.setattr(alerts, "_WEBHOOK_TIMEOUT_SECONDS", 0.3)
    channels.script(default={"delay": 2})  # slower than the client waits

    with caplog.at_level(logging.WARNING, logger="conversations.alerts"):
        alert_deliver(
            channel="webhook",
            kind="handoff",
            reason="x",
            conversation_id=ada_conversation.pk,
            final_attempt=True,
        )

    assert caplog.messages == ["Alert handoff by webhook given up: ReadTimeout"]


def test_a_bad_email_server_is_one_line_too(channels, ada_conversation, settings, caplog):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2

    with caplog.at_level(logging.WARNING, logger="conversations.alerts"):
        with pytest.raises(alerts.AlertNotDelivered):
            alert_deliver(
                channel="email",
                kind="handoff",
                reason="x",
                conversation_id=ada_conversation.pk,
                final_attempt=False,
            )

    assert caplog.messages == ["Alert handoff by email failed, to be tried again: ConnectionRefusedError"]


def test_redis_down_loses_the_alert_with_a_warning_and_raises_nothing(settings, ada_conversation, caplog):
    settings.STAFF_ALERT_EMAILS = ["maria@example.com"]
    settings.RQ_QUEUES = {"default": {"URL": "redis://127.0.0.1:1/0"}}

    alert_raise(kind=AlertKind.HANDOFF, reason="x", conversation_id=ada_conversation.pk)

    assert "Alert handoff not queued (Redis unavailable)" in caplog.text


# --- the Page token ---------------------------------------------------------------------------


def test_a_refused_token_is_alerted_once_until_it_works_again(channels, graph):
    graph.script(default={"status": 400, "code": 190})
    page_token_check()
    page_token_check()
    assert [alert["kind"] for alert in queued()] == ["token_refused"] * 2  # one per channel

    graph.script(default={})
    page_token_check()  # works again
    graph.script(default={"status": 400, "code": 190})
    page_token_check()
    assert len(queued()) == 4


def test_without_a_token_graph_is_not_asked_and_one_warning_says_so(channels, graph, settings, caplog):
    settings.FACEBOOK_PAGE_ACCESS_TOKEN = ""
    page_token_unset_warn.cache_clear()

    with caplog.at_level(logging.INFO, logger="conversations"):
        for _ in range(3):  # the worker's check, every PAGE_TOKEN_CHECK_HOURS
            page_token_check()

    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        (
            "WARNING",
            "No Page to answer for: FACEBOOK_PAGE_ACCESS_TOKEN is not set and no Page is connected "
            "(manage.py pages connect), so nothing can be sent to Messenger or Instagram.",
        )
    ]
    assert graph.calls() == []
    assert queued() == []  # no "token refused" alert


def test_graph_unreachable_says_nothing_about_the_token(channels, graph, caplog):
    graph.script(default={"status": 503})
    page_token_check()
    assert queued() == []
    assert "Page token not checked" in caplog.text


def test_the_token_alert_names_the_page_and_links_the_admin(channels, graph):
    alert_raise(
        kind=AlertKind.TOKEN_REFUSED,
        reason="Invalid OAuth access token",
        page_id="2002",
        page_name="Shop Aarhus (2002)",
    )
    deliver_queued()
    [email] = mail.outbox
    assert email.subject == "Facebook refused the access token of Shop Aarhus (2002)"
    assert email.body == "Invalid OAuth access token\nhttps://bot.example.com/admin/"
    alert_token_works(page_id="2002")
