"""Contacts and their conversations: finding them, their last activity, pausing the bot, forgetting a person."""
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations.models import ChannelIdentity, Contact, Conversation

PREVIEW_LENGTH = Conversation._meta.get_field("last_message_text").max_length


def conversation_get_or_create(
    *, page_id: str, external_id: str, channel: str = ChannelIdentity.Channel.MESSENGER
) -> Conversation:
    """The conversation with this person on this page, creating contact and identity the first time.

    Safe under concurrency: two first messages from one person racing each other end up in
    the same conversation (the unique identity constraint decides, the loser re-reads).
    """
    lookup = {"channel": channel, "page_id": page_id, "external_id": external_id}
    identity = ChannelIdentity.objects.filter(**lookup).select_related("conversation").first()
    if identity is None:
        try:
            with transaction.atomic():
                identity = ChannelIdentity.objects.create(contact=Contact.objects.create(), **lookup)
                return Conversation.objects.create(identity=identity)
        except IntegrityError:
            identity = ChannelIdentity.objects.select_related("conversation").get(**lookup)
    try:
        return identity.conversation
    except Conversation.DoesNotExist:
        conversation, _ = Conversation.objects.get_or_create(identity=identity)
        return conversation


def conversation_touch(*, conversation_id: int, at: datetime, preview: str) -> None:
    """Record the conversation's newest message: when, and a preview for the admin's list."""
    Conversation.objects.filter(pk=conversation_id).update(
        last_activity_at=at, last_message_text=preview[:PREVIEW_LENGTH]
    )


def conversation_bot_pause(*, conversation: Conversation, by: AbstractBaseUser | None) -> Conversation:
    """Stop the bot answering, e.g. because a person took over. Idempotent."""
    if conversation.bot_active:
        conversation.bot_active = False
        conversation.bot_paused_at = timezone.now()
        conversation.bot_paused_by = by
        conversation.save(update_fields=["bot_active", "bot_paused_at", "bot_paused_by"])
    return conversation


def conversation_bot_resume(*, conversation: Conversation) -> Conversation:
    if not conversation.bot_active:
        conversation.bot_active = True
        conversation.bot_paused_at = None
        conversation.bot_paused_by = None
        conversation.save(update_fields=["bot_active", "bot_paused_at", "bot_paused_by"])
    return conversation


def contact_forget(*, contact: Contact) -> None:
    """Delete a person and everything stored about them (what the privacy page promises)."""
    contact.delete()
