"""Handing a person over to staff: when the model calls handoff_to_human, or the person taps
"Talk to a person" (payload HUMAN_AGENT).

The bot is paused in that conversation with the reason, the conversation is marked waiting
for staff, the person is told (their Page's handoff message, else HANDOFF_MESSAGE), and staff are alerted once it is committed.
A staff reply, or resuming the bot, ends it (conversations.services.conversations).
"""

import functools

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from conversations import payloads
from conversations.alerts import AlertKind, alert_raise
from conversations.insights.metrics import HANDOFFS
from conversations.models import Conversation, Handoff, Message
from conversations.pages import PageInfo, page_for_conversation
from conversations.services.delivery import outgoing_text_store

# The handoff's reason when the person tapped "Talk to a person".
ASKED_FOR_A_PERSON = "The person asked to talk to a person."


def handoff_requested(*, messages: list[Message]) -> bool:
    """Whether one of `messages` is a tap on a button whose payload asks for a person."""
    return any(
        payloads.HUMAN_AGENT
        in (message.details.get("postback_payload"), message.details.get("quick_reply_payload"))
        for message in messages
    )


def conversation_handoff(
    *, conversation: Conversation, reason: str, trigger: str, reply_to: Message | None
) -> list[Message]:
    """Hand the conversation over to staff, in the caller's transaction; the message parts to send.

    Handed over already (the model asking again, a second tap): the person is told again,
    the first reason and time stay, and the alert is not repeated within minutes.
    """
    handoff_record(conversation=conversation, reason=reason, trigger=trigger)
    page = page_for_conversation(identity=conversation.identity)
    return outgoing_text_store(
        conversation=conversation,
        text=handoff_message(page=page),
        role=Message.Role.SYSTEM,
        reply_to=reply_to,
        details={Message.HANDOFF_NOTICE: True},
    )


def handoff_message(*, page: PageInfo | None) -> str:
    """What a person handed over to staff is told: their Page's handoff message, else HANDOFF_MESSAGE."""
    return (page and page.handoff_message) or settings.HANDOFF_MESSAGE


def handoff_record(
    *, conversation: Conversation, reason: str, trigger: str, alert_reason: str | None = None
) -> None:
    """Hand the conversation over to staff without telling the person (the caller does), in the
    caller's transaction: the bot paused, the conversation waiting, staff alerted once committed
    (`alert_reason` instead of `reason` in the alert, when given)."""
    now = timezone.now()
    Handoff.objects.create(conversation=conversation, trigger=trigger, reason=reason, created_at=now)
    HANDOFFS.labels(trigger=trigger).inc()
    updated = Conversation.objects.filter(pk=conversation.pk, waiting_for_staff_since__isnull=True).update(
        bot_active=False,
        bot_paused_at=now,
        bot_paused_by=None,
        waiting_for_staff_since=now,
        handoff_reason=reason,
    )
    if updated:
        conversation.bot_active, conversation.waiting_for_staff_since, conversation.handoff_reason = (
            False,
            now,
            reason,
        )
    else:
        Conversation.objects.filter(pk=conversation.pk).update(bot_active=False)
    transaction.on_commit(
        functools.partial(
            alert_raise,
            kind=AlertKind.HANDOFF,
            reason=alert_reason or reason,
            conversation_id=conversation.pk,
        ),
        robust=True,
    )
