"""Contacts and their conversations: finding them, their last activity, pausing the bot, forgetting a person."""

import logging
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from redis.exceptions import RedisError

from conversations.models import ChannelIdentity, Contact, Conversation
from conversations.pages import graph_client_for
from conversations.queues import queue_default
from conversations.services.forgetting import contact_traces_erase
from messenger.errors import DeliveryError, TransientDeliveryError

logger = logging.getLogger(__name__)

PREVIEW_LENGTH = Conversation._meta.get_field("last_message_text").max_length
PROFILE_JOB = "conversations.jobs.contact_profile_fetch_run"
# A refused profile is asked for again after this long, by the hourly sweep; never per message.
PROFILE_RETRY_AFTER = timedelta(days=7)
PROFILE_SWEEP_BATCH = 100


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
                if channel in ChannelIdentity.META_CHANNELS:
                    contact_id = identity.contact_id
                    transaction.on_commit(
                        lambda: contact_profile_schedule(contact_id=contact_id), robust=True
                    )
                return Conversation.objects.create(identity=identity)
        except IntegrityError:
            identity = ChannelIdentity.objects.select_related("conversation").get(**lookup)
    try:
        return identity.conversation
    except Conversation.DoesNotExist:
        conversation, _ = Conversation.objects.get_or_create(identity=identity)
        return conversation


def conversation_touch(
    *, conversation_id: int, at: datetime, preview: str, person_wrote_at: datetime | None = None
) -> None:
    """Record the conversation's newest message: when, a preview for the admin's list, and (for
    a message from the person) when they wrote it, as the channel stamped it."""
    fields = {"last_activity_at": at, "last_message_text": preview[:PREVIEW_LENGTH]}
    if person_wrote_at is not None:
        fields["person_last_wrote_at"] = Greatest(
            Coalesce("person_last_wrote_at", person_wrote_at), person_wrote_at
        )
    Conversation.objects.filter(pk=conversation_id).update(**fields)


def conversation_bot_pause(*, conversation: Conversation, by: AbstractBaseUser | None) -> Conversation:
    """Stop the bot answering, e.g. because a person took over. Idempotent."""
    if conversation.bot_active:
        conversation.bot_active = False
        conversation.bot_paused_at = timezone.now()
        conversation.bot_paused_by = by
        conversation.save(update_fields=["bot_active", "bot_paused_at", "bot_paused_by"])
    return conversation


def conversation_bot_resume(*, conversation: Conversation) -> Conversation:
    """The bot answers again; a handover to staff is over."""
    if not conversation.bot_active or conversation.waiting_for_staff_since:
        conversation.bot_active = True
        conversation.bot_paused_at = None
        conversation.bot_paused_by = None
        conversation.waiting_for_staff_since = None
        conversation.handoff_reason = ""
        conversation.save(
            update_fields=[
                "bot_active",
                "bot_paused_at",
                "bot_paused_by",
                "waiting_for_staff_since",
                "handoff_reason",
            ]
        )
    return conversation


def conversation_staff_answered(*, conversation: Conversation) -> None:
    """Staff wrote to the person: the conversation no longer waits for them."""
    Conversation.objects.filter(pk=conversation.pk, waiting_for_staff_since__isnull=False).update(
        waiting_for_staff_since=None
    )
    conversation.waiting_for_staff_since = None


def contact_profile_schedule(*, contact_id: int) -> None:
    """Queue the job that fetches the contact's profile; if Redis is down, the hourly sweep will."""
    try:
        queue_default().enqueue(PROFILE_JOB, contact_id=contact_id)
    except RedisError as error:
        logger.warning("Profile job not queued (Redis unavailable): contact=%s %s", contact_id, error)


def contact_profile_fetch(*, contact_id: int) -> None:
    """Ask Messenger (or Instagram) for the person's name and picture, with their Page's token; a
    refusal is remembered, not retried at once.

    A transient failure leaves the contact as it was: the hourly sweep asks again.
    """
    identity = (
        ChannelIdentity.objects.select_related("contact")
        .filter(contact_id=contact_id, channel__in=ChannelIdentity.META_CHANNELS)
        .first()
    )
    if identity is None:
        return  # forgotten meanwhile
    contact = identity.contact
    try:
        client = graph_client_for(page_id=identity.page_id)
        profile = client.profile_get(psid=identity.external_id, platform=identity.channel)
    except TransientDeliveryError as error:
        logger.warning(
            "Profile not fetched, asking again later: sender=%s reason=%s", identity.external_id, error.reason
        )
        return
    except DeliveryError as error:
        contact.profile_error = error.reason[: Contact._meta.get_field("profile_error").max_length]
        logger.info("Profile refused: sender=%s reason=%s", identity.external_id, error.reason)
    else:
        contact.first_name = profile.get("first_name", "")
        contact.name = " ".join(filter(None, [contact.first_name, profile.get("last_name", "")]))
        contact.picture_url = (
            profile.get("profile_pic", "") if len(profile.get("profile_pic", "")) <= 2000 else ""
        )
        contact.profile_error = ""
    contact.profile_fetched_at = timezone.now()
    contact.save(update_fields=["first_name", "name", "picture_url", "profile_error", "profile_fetched_at"])


def contact_forget(*, contact: Contact) -> None:
    """Delete a person and everything stored about them (what the privacy page promises), their
    words in the admin's log included; a tombstone keeps their old messages from bringing them
    back (conversations.services.forgetting)."""
    with transaction.atomic():
        contact_traces_erase(contact=contact)
        contact.delete()


def contacts_profile_sweep() -> int:
    """Queue a profile fetch for Messenger and Instagram contacts still without a name: never asked (their job
    was lost), or refused more than PROFILE_RETRY_AFTER ago. At most a batch per run; the number queued."""
    asked_before = timezone.now() - PROFILE_RETRY_AFTER
    contact_ids = list(
        Contact.objects.filter(name="", identities__channel__in=ChannelIdentity.META_CHANNELS)
        .filter(Q(profile_fetched_at__isnull=True) | Q(profile_fetched_at__lt=asked_before))
        .values_list("pk", flat=True)[:PROFILE_SWEEP_BATCH]
    )
    for contact_id in contact_ids:
        contact_profile_schedule(contact_id=contact_id)
    return len(contact_ids)
