"""A person edits a message (`message_edit`): the stored text becomes the new one, the first is kept,
a reply not written yet reads the new text, and an answered message is not answered again."""

import pytest

from conversations.models import Message
from conversations.services.replies import reply_produce
from devtools.webhook import PSID, message_edit, post_signed, text_message
from tests.jobs import queued_reply_jobs

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(client, redis_conn) -> Message:
    post_signed(client, text_message(mid="m_typo", text="Do you ship to Denmrak?"))
    return Message.objects.get(external_id="m_typo")


def test_an_edit_before_the_reply_is_answered_with_the_new_text(client, stored, graph, groq):
    response = post_signed(client, message_edit(mid="m_typo", text="Do you ship to Denmark?"))

    assert response.status_code == 200
    stored.refresh_from_db()
    assert stored.text == "Do you ship to Denmark?"
    assert stored.details["edit"]["original_text"] == "Do you ship to Denmrak?"
    assert stored.details["edit"]["num_edit"] == 1
    assert len(queued_reply_jobs()) == 1  # the message's own job, nothing more

    reply_produce(message_id=stored.pk, final_attempt=True)

    [call] = groq.calls(kind="chat")
    assert "Do you ship to Denmark?" in call["prompt"] and "Denmrak" not in call["prompt"]


def test_an_edit_of_an_answered_message_is_stored_and_not_answered_again(client, stored, graph, groq):
    reply_produce(message_id=stored.pk, final_attempt=True)
    jobs_before = queued_reply_jobs()

    post_signed(client, message_edit(mid="m_typo", text="Do you ship to Denmark?"))
    reply_produce(message_id=stored.pk, final_attempt=True)

    stored.refresh_from_db()
    assert (stored.text, stored.status) == ("Do you ship to Denmark?", Message.Status.ANSWERED)
    assert queued_reply_jobs() == jobs_before
    assert len(groq.calls(kind="chat")) == 1 and len(graph.calls(kind="message")) == 1


def test_the_first_text_is_kept_through_several_edits_and_an_older_edit_changes_nothing(client, stored):
    post_signed(client, message_edit(mid="m_typo", text="second", num_edit=2))
    post_signed(client, message_edit(mid="m_typo", text="first fix", num_edit=1))  # late
    post_signed(client, message_edit(mid="m_typo", text="second", num_edit=2))  # redelivered

    stored.refresh_from_db()
    assert stored.text == "second"
    assert stored.details["edit"]["original_text"] == "Do you ship to Denmrak?"
    assert stored.details["edit"]["num_edit"] == 2


def test_an_edit_naming_no_sender_is_found_by_its_mid(client, stored):
    edit = message_edit(mid="m_typo", text="fixed")
    del edit["entry"][0]["messaging"][0]["sender"]

    post_signed(client, edit)

    stored.refresh_from_db()
    assert stored.text == "fixed"


def test_nobody_edits_another_persons_message_or_one_not_stored(client, stored):
    post_signed(client, message_edit(mid="m_typo", text="hijacked", psid=str(int(PSID) + 1)))
    response = post_signed(client, message_edit(mid="m_unknown", text="nothing"))

    assert response.status_code == 200
    stored.refresh_from_db()
    assert stored.text == "Do you ship to Denmrak?" and "edit" not in stored.details
    assert Message.objects.count() == 1
