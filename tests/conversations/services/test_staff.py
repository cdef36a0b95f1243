from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from conversations.models import ChannelIdentity, Message, SystemPrompt
from conversations.selectors import system_prompt_current
from conversations.services.staff import staff_message_send, system_prompt_update
from messenger.errors import OutsideWindowError, RecipientUnreachableError, TransientDeliveryError
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
    waiting = Message.objects.create(
        conversation=ada_conversation, role="client", status="received", text="Anyone?"
    )

    staff_message_send(psid=PSID, text="Yes, Maria here.")

    waiting.refresh_from_db()
    assert waiting.status == "answered"


def test_staff_message_not_delivered_answers_nothing(graph, ada_conversation):
    waiting = Message.objects.create(
        conversation=ada_conversation, role="client", status="received", text="Anyone?"
    )
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


def test_someone_who_never_wrote_through_us_gets_the_message_and_a_conversation(
    graph, ada_conversation, settings
):
    settings.FACEBOOK_PAGE_ID = ""  # the Page's id then comes from Graph

    [message] = staff_message_send(psid="999", text="Hello from the shop")

    assert [call["kind"] for call in graph.calls()] == ["page", "message"]
    identity = ChannelIdentity.objects.get(external_id="999")
    assert (identity.page_id, identity.conversation) == ("104728561934527", message.conversation)
    assert message.status == "sent" and message.external_id.startswith("m_")


def test_someone_meta_refuses_leaves_nothing_stored(graph, ada_conversation, settings):
    settings.FACEBOOK_PAGE_ID = "1001"
    graph.script([{"on": "message", "status": 400, "code": 100, "subcode": 2018001}])

    with pytest.raises(RecipientUnreachableError):
        staff_message_send(psid="999", text="Hello")

    assert not ChannelIdentity.objects.filter(external_id="999").exists()
    assert not Message.objects.exists()


def _person_wrote(conversation, hours_ago: float) -> None:
    conversation.person_last_wrote_at = timezone.now() - timedelta(hours=hours_ago)
    conversation.save(update_fields=["person_last_wrote_at"])


def test_within_24_hours_a_staff_message_is_a_plain_response(graph, ada_conversation):
    _person_wrote(ada_conversation, 23)
    staff_message_send(psid=PSID, text="Hello")
    assert graph.calls(kind="message")[0]["json"]["messaging_type"] == "RESPONSE"


def test_after_24_hours_it_goes_with_the_human_agent_tag_when_allowed(graph, ada_conversation, settings):
    settings.FACEBOOK_HUMAN_AGENT_TAG = True
    _person_wrote(ada_conversation, 30)

    staff_message_send(psid=PSID, text="Sorry for the wait, here is your answer.")

    [call] = graph.calls(kind="message")
    assert (call["json"]["messaging_type"], call["json"]["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


@pytest.mark.parametrize(
    ("hours_ago", "tag", "reason"), [(30, False, "HUMAN_AGENT tag"), (24 * 8, True, "7 days")]
)
def test_outside_what_meta_allows_it_is_refused_before_calling_meta(
    graph, ada_conversation, settings, hours_ago, tag, reason
):
    settings.FACEBOOK_HUMAN_AGENT_TAG = tag
    _person_wrote(ada_conversation, hours_ago)

    with pytest.raises(OutsideWindowError, match=reason):
        staff_message_send(psid=PSID, text="Hello")

    assert graph.calls() == []
    assert not ada_conversation.messages.exists()


def test_a_staff_reply_ends_the_wait_for_staff(graph, ada_conversation):
    ada_conversation.waiting_for_staff_since = timezone.now()
    ada_conversation.save(update_fields=["waiting_for_staff_since"])

    staff_message_send(psid=PSID, text="Hi, Maria here.")

    ada_conversation.refresh_from_db()
    assert ada_conversation.waiting_for_staff_since is None


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
