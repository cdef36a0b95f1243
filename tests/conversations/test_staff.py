import pytest
from django.contrib.auth import get_user_model

from conversations.models import Message, SystemPrompt
from conversations.selectors import system_prompt_current
from conversations.services.staff import (
    RecipientUnknownError,
    staff_message_send,
    system_prompt_update,
)
from messenger.errors import RecipientUnreachableError, TransientDeliveryError
from messenger.graph import OUR_METADATA_MARKER

PSID = "2400000000000001"  # the PSID of the ada_conversation fixture


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user("agent", is_staff=True)


def test_staff_message_is_sent_stored_and_pauses_the_bot(graph, ada_conversation, staff_user):
    [message] = staff_message_send(psid=PSID, text="  We have shipped your order.  ", sent_by=staff_user)

    [call] = graph.calls(kind="message")
    assert call["psid"] == PSID
    assert call["json"]["message"] == {"text": "We have shipped your order.", "metadata": OUR_METADATA_MARKER}
    message.refresh_from_db()
    assert message.conversation == ada_conversation
    assert (message.role, message.status, message.sent_by) == ("staff", "sent", staff_user)
    assert message.external_id.startswith("m_") and message.sent_at is not None
    ada_conversation.refresh_from_db()
    assert not ada_conversation.bot_active
    assert ada_conversation.bot_paused_by == staff_user
    assert ada_conversation.last_message_text == "We have shipped your order."


def test_staff_message_answers_what_was_waiting(graph, ada_conversation):
    waiting = Message.objects.create(conversation=ada_conversation, role="client", status="received", text="Anyone?")

    staff_message_send(psid=PSID, text="Yes, Maria here.")

    waiting.refresh_from_db()
    assert waiting.status == "answered"


def test_staff_message_not_delivered_answers_nothing(graph, ada_conversation):
    waiting = Message.objects.create(conversation=ada_conversation, role="client", status="received", text="Anyone?")
    graph.script([{"on": "message", "status": 400, "code": 551}])

    with pytest.raises(RecipientUnreachableError):
        staff_message_send(psid=PSID, text="Yes, Maria here.")

    waiting.refresh_from_db()
    assert waiting.status == "received"


def test_staff_message_leaves_the_bot_alone_when_configured_so(graph, ada_conversation, settings):
    settings.STAFF_REPLY_PAUSES_BOT = False
    staff_message_send(psid=PSID, text="Hello")
    ada_conversation.refresh_from_db()
    assert ada_conversation.bot_active


def test_long_staff_message_is_split_and_sent_in_order(graph, ada_conversation):
    text = ("First paragraph. " * 100).strip() + "\n\n" + ("Second paragraph. " * 100).strip()

    messages = staff_message_send(psid=PSID, text=text)

    sent = [call["json"]["message"]["text"] for call in graph.calls(kind="message")]
    assert len(sent) == len(messages) == 2
    assert sent[0].startswith("First") and sent[1].startswith("Second")
    assert all(len(part) <= 2000 for part in sent)
    assert [m.text for m in ada_conversation.messages.order_by("id")] == sent


def test_unknown_recipient_is_refused_before_anything_is_stored_or_sent(graph, ada_conversation):
    with pytest.raises(RecipientUnknownError, match="999"):
        staff_message_send(psid="999", text="Hello")
    assert graph.calls() == []
    assert not Message.objects.exists()


def test_unreachable_recipient_keeps_the_message_as_failed_with_the_reason(graph, ada_conversation):
    graph.script([{"on": "message", "status": 400, "code": 551}])

    with pytest.raises(RecipientUnreachableError):
        staff_message_send(psid=PSID, text="Hello")

    message = ada_conversation.messages.get()
    assert message.status == "failed"
    assert "isn't available" in message.error_detail


def test_transient_failure_is_final_for_a_staff_message(graph, ada_conversation):
    # Left "sending", the recovery sweep would deliver it later, after staff may have resent it.
    graph.script([{"on": "message", "status": 503}])

    with pytest.raises(TransientDeliveryError):
        staff_message_send(psid=PSID, text="Hello")

    assert ada_conversation.messages.get().status == "failed"


def test_system_prompt_edits_add_versions_and_the_newest_is_used(db, staff_user, settings):
    assert system_prompt_current() == settings.LLM_SYSTEM_PROMPT
    system_prompt_update(text="Be brief.", created_by=staff_user)
    system_prompt_update(text="  Be brief and kind.\n", created_by=staff_user)

    assert system_prompt_current() == "Be brief and kind."
    assert list(SystemPrompt.objects.values_list("text", flat=True)) == ["Be brief and kind.", "Be brief."]
