import pytest
from django.db import IntegrityError, transaction

from conversations.models import ChannelIdentity, Contact, Conversation, Message


@pytest.fixture
def conversation(db):
    contact = Contact.objects.create(name="Ada")
    identity = ChannelIdentity.objects.create(contact=contact, page_id="1001", external_id="2002")
    return Conversation.objects.create(identity=identity)


def test_channel_identity_is_unique_per_channel_page_and_psid(conversation):
    other = Contact.objects.create(name="Impostor")
    with pytest.raises(IntegrityError), transaction.atomic():
        ChannelIdentity.objects.create(contact=other, page_id="1001", external_id="2002")
    # The same PSID string on another page is another person.
    ChannelIdentity.objects.create(contact=other, page_id="1002", external_id="2002")


def test_message_external_id_is_unique_but_may_be_absent(conversation):
    Message.objects.create(conversation=conversation, role="client", status="received", external_id="m_1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(conversation=conversation, role="client", status="received", external_id="m_1")
    Message.objects.create(conversation=conversation, role="ai", status="sending")
    Message.objects.create(conversation=conversation, role="ai", status="sending")
    assert conversation.messages.filter(external_id__isnull=True).count() == 2


def test_one_conversation_per_channel_identity(conversation):
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.create(identity=conversation.identity)


def test_forgetting_a_contact_deletes_their_conversation_and_messages(conversation):
    Message.objects.create(conversation=conversation, role="client", status="received", text="hi")
    conversation.identity.contact.delete()
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()
