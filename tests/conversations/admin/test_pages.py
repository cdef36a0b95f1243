import pytest
from django.urls import reverse

from conversations.models import ChannelIdentity, Contact, Conversation, Message, SystemPrompt


@pytest.fixture
def stored_conversation(db):
    contact = Contact.objects.create(name="Grace")
    identity = ChannelIdentity.objects.create(contact=contact, page_id="1001", external_id="3003")
    conversation = Conversation.objects.create(identity=identity)
    Message.objects.create(conversation=conversation, role="client", status="received", text="Hello")
    SystemPrompt.objects.create(text="Be kind.")
    return conversation


@pytest.mark.parametrize("model", [Contact, ChannelIdentity, Conversation, Message, SystemPrompt])
def test_admin_list_and_change_pages_load(admin_client, stored_conversation, model):
    opts = model._meta
    changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    assert admin_client.get(changelist).status_code == 200
    assert admin_client.get(changelist, {"q": "Grace"}).status_code == 200
    obj = model.objects.first()
    change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    assert admin_client.get(change).status_code == 200


def test_rq_dashboard_is_reachable_from_the_admin(admin_client, redis_conn):
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:django_rq_home") in index
    assert admin_client.get(reverse("admin:django_rq_home")).status_code == 200
