"""Forgetting a person leaves nothing of their words: not in the unanswered questions, not in the
admin's action log, not in an article titled with their question; only hashed tombstones."""

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone

from conversations.knowledge.services import knowledge_article_save
from conversations.models import (
    ChannelIdentity,
    Contact,
    Conversation,
    Handoff,
    KnowledgeArticle,
    Message,
    Tombstone,
    UnansweredQuestion,
)
from conversations.selectors import tombstone_covers
from conversations.services.conversations import contact_forget
from conversations.services.forgetting import tombstones_purge

pytestmark = pytest.mark.django_db
QUESTION = "My name is Jane Roe, my phone is +1 555 0100, where is my order 5521?"
HER_WORDS = ["Jane", "Roe", "555 0100", "5521"]
PAGE_ID, PSID = "1001", "2400000000000009"


@pytest.fixture
def jane(redis_conn, admin_user) -> Contact:
    """Jane wrote twice; a question of hers became an article, titled with her words as "Write an
    article" once proposed; staff touched her records in the admin."""
    contact = Contact.objects.create(name="Jane Roe", first_name="Jane")
    identity = ChannelIdentity.objects.create(contact=contact, page_id=PAGE_ID, external_id=PSID)
    conversation = Conversation.objects.create(identity=identity)
    asked = Message.objects.create(
        conversation=conversation, role="client", status="answered", text=QUESTION, external_id="m_jane_1"
    )
    Message.objects.create(
        conversation=conversation, role="ai", status="sent", text="Let me check.", external_id="m_bot_1"
    )
    again = Message.objects.create(
        conversation=conversation, role="client", status="answered", text="Do you gift-wrap?"
    )
    Handoff.objects.create(
        conversation=conversation, trigger="model", reason="Jane Roe asks about order 5521"
    )
    question = UnansweredQuestion.objects.create(message=asked, text=QUESTION, asked_at=timezone.now())
    quoting = knowledge_article_save(article=KnowledgeArticle(title=QUESTION, body="Orders ship in 2 days."))
    question.article = quoting
    question.save()
    own_words = knowledge_article_save(article=KnowledgeArticle(title="Gift wrapping", body="We gift-wrap."))
    UnansweredQuestion.objects.create(
        message=again, text="Do you gift-wrap?", asked_at=timezone.now(), article=own_words
    )
    for obj, flag, change_message in [
        (contact, CHANGE, '[{"changed": {"fields": ["Name"]}}]'),
        (identity, CHANGE, ""),
        (asked, CHANGE, f'[{{"added": {{"name": "note", "object": "{QUESTION}"}}}}]'),
        (question, CHANGE, ""),
        (quoting, ADDITION, '[{"added": {}}]'),
    ]:
        log(admin_user, obj, flag, change_message)
    return contact


def log(user, obj, flag: int, change_message: str = "") -> LogEntry:
    """An entry as the admin writes it: the object's name as it was then (a question's was its text)."""
    return LogEntry.objects.create(
        user=user,
        content_type=ContentType.objects.get_for_model(obj),
        object_id=str(obj.pk),
        object_repr=(QUESTION[:80] if isinstance(obj, UnansweredQuestion) else str(obj))[:200],
        action_flag=flag,
        change_message=change_message,
    )


def traces(text: str) -> list[str]:
    return [word for word in HER_WORDS if word in text]


def test_forget_leaves_nothing_of_her_words_in_questions_or_the_admin_log(jane, admin_user):
    ada = Contact.objects.create(name="Ada Lovelace")
    log(admin_user, ada, CHANGE)
    entries, jane_id = LogEntry.objects.count(), jane.pk

    contact_forget(contact=jane)

    assert not UnansweredQuestion.objects.filter(text__contains="5521").exists()
    assert LogEntry.objects.count() == entries  # who did what and when stays
    for entry in LogEntry.objects.all():
        assert traces(entry.object_repr + entry.change_message) == [], entry
    assert LogEntry.objects.get(object_id=str(jane_id), content_type__model="contact").object_repr == (
        f"Contact #{jane_id} (forgotten)"
    )
    assert LogEntry.objects.get(object_id=str(ada.pk), content_type__model="contact").object_repr == (
        "Ada Lovelace"
    )


def test_an_article_titled_with_her_question_is_unapproved_and_retitled(jane):
    contact_forget(contact=jane)

    quoting = KnowledgeArticle.objects.get(body="Orders ship in 2 days.")
    assert (quoting.title, quoting.approved) == (
        f"Untitled #{quoting.pk}: its title quoted a person who was forgotten",
        False,
    )
    # An article staff titled in their own words is theirs: it stays as it was.
    assert KnowledgeArticle.objects.filter(title="Gift wrapping", approved=True).exists()


def test_deleting_her_in_the_admin_leaves_her_name_out_of_its_own_log_entry(jane, admin_client):
    response = admin_client.post(
        reverse("admin:conversations_contact_delete", args=[jane.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Contact.objects.filter(pk=jane.pk).exists()
    deletion = LogEntry.objects.get(object_id=str(jane.pk), content_type__model="contact", action_flag=3)
    assert deletion.object_repr == f"Contact #{jane.pk} (forgotten)"


def test_dismissing_a_question_in_the_admin_logs_its_number_not_its_words(jane, admin_client):
    question = UnansweredQuestion.objects.get(text="Do you gift-wrap?")

    admin_client.post(
        reverse("admin:conversations_unansweredquestion_delete", args=[question.pk]), {"post": "yes"}
    )

    entry = LogEntry.objects.get(object_id=str(question.pk), content_type__model="unansweredquestion")
    assert entry.object_repr == f"Unanswered question #{question.pk}"


def test_tombstones_are_keyed_hashes_of_her_identity_and_message_ids(jane):
    contact_forget(contact=jane)

    digests = list(Tombstone.objects.values_list("digest", flat=True))
    assert len(digests) == 3  # her identity, her message's mid and the bot's reply's
    assert all(re.fullmatch("[0-9a-f]{64}", digest) for digest in digests)
    assert Tombstone.message_digest(external_id="m_jane_1") in digests
    later = timezone.now() + timedelta(minutes=1)
    # Her old messages are covered, however late they come back; a new one is not.
    assert tombstone_covers(
        channel="messenger", page_id=PAGE_ID, psid=PSID, external_id="m_jane_1", sent_at=later
    )
    assert tombstone_covers(
        channel="messenger", page_id=PAGE_ID, psid=PSID, external_id="m_unseen", sent_at=jane.created_at
    )
    assert not tombstone_covers(
        channel="messenger", page_id=PAGE_ID, psid=PSID, external_id="m_new", sent_at=later
    )
    assert not tombstone_covers(
        channel="messenger", page_id="2002", psid=PSID, external_id="m_new", sent_at=jane.created_at
    )


def test_tombstones_go_after_their_retention(jane):
    contact_forget(contact=jane)
    old = Tombstone.objects.create(
        digest="0" * 64, created_at=timezone.now() - Tombstone.RETENTION - timedelta(minutes=1)
    )

    assert tombstones_purge() == 1

    assert not Tombstone.objects.filter(pk=old.pk).exists()
    assert Tombstone.objects.count() == 3


def test_forgetting_someone_again_renews_their_tombstone(jane):
    contact_forget(contact=jane)
    Tombstone.objects.update(created_at=timezone.now() - timedelta(days=20))
    contact = Contact.objects.create()
    identity = ChannelIdentity.objects.create(contact=contact, page_id=PAGE_ID, external_id=PSID)
    Conversation.objects.create(identity=identity)

    contact_forget(contact=contact)

    renewed = Tombstone.objects.get(
        digest=Tombstone.identity_digest(channel="messenger", page_id=PAGE_ID, external_id=PSID)
    )
    assert renewed.created_at > timezone.now() - timedelta(minutes=1)
    assert Tombstone.objects.count() == 3
