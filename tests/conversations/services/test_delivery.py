"""Storing and sending outgoing messages, against the Graph stand-in."""

import pytest

from conversations.models import Message
from conversations.services.conversations import conversation_get_or_create
from conversations.services.delivery import outgoing_messages_send, outgoing_text_store
from messenger.errors import RecipientUnreachableError, TransientDeliveryError
from messenger.graph import OUR_METADATA_MARKER

pytestmark = pytest.mark.django_db
LONG_TEXT = "\n\n".join(f"Paragraph {index}. " + "word " * 300 for index in range(3))  # ~4,700 characters


@pytest.fixture
def conversation():
    return conversation_get_or_create(page_id="104728561934527", external_id="7395028461739201")


def test_a_long_text_is_stored_as_parts_of_at_most_2000_characters_in_order(conversation):
    parts = outgoing_text_store(conversation=conversation, text=LONG_TEXT, role=Message.Role.STAFF)

    assert [part.text[:11] for part in parts] == ["Paragraph 0", "Paragraph 1", "Paragraph 2"]
    assert all(len(part.text) <= 2000 and part.status == Message.Status.SENDING for part in parts)
    conversation.refresh_from_db()
    assert conversation.last_message_text == parts[-1].text[:255]


def test_sending_records_each_message_id_and_marks_our_messages(graph, conversation):
    parts = outgoing_text_store(conversation=conversation, text=LONG_TEXT, role=Message.Role.STAFF)

    outgoing_messages_send(messages=parts)

    calls = graph.calls(kind="message")
    assert [call["json"]["message"]["text"] for call in calls] == [part.text for part in parts]
    assert {call["json"]["message"]["metadata"] for call in calls} == {OUR_METADATA_MARKER}
    for part in Message.objects.filter(pk__in=[part.pk for part in parts]):
        assert part.status == Message.Status.SENT and part.external_id.startswith("m_") and part.sent_at


def test_a_permanent_failure_marks_the_unsent_parts_failed(graph, conversation):
    graph.script([{"on": "message"}, {"on": "message", "status": 400, "code": 551}])
    parts = outgoing_text_store(conversation=conversation, text=LONG_TEXT, role=Message.Role.STAFF)

    with pytest.raises(RecipientUnreachableError):
        outgoing_messages_send(messages=parts)

    stored = list(Message.objects.filter(pk__in=[part.pk for part in parts]).order_by("id"))
    assert [part.status for part in stored] == ["sent", "failed", "failed"]
    assert stored[1].error_code == "graph:551"
    assert "isn't available" in stored[1].error_detail


def test_a_transient_failure_leaves_the_rest_to_send_later(graph, conversation):
    graph.script([{"on": "message", "status": 500}])
    parts = outgoing_text_store(conversation=conversation, text=LONG_TEXT, role=Message.Role.STAFF)

    with pytest.raises(TransientDeliveryError):
        outgoing_messages_send(messages=parts)
    outgoing_messages_send(messages=parts)

    assert len(graph.calls(kind="message")) == 4
    assert all(part.status == Message.Status.SENT for part in parts)
