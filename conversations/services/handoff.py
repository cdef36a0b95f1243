"""Handing a person over to staff: when the model calls handoff_to_human, or the person taps
"Talk to a person" (payload HUMAN_AGENT).

The bot is paused in that conversation with the reason, the conversation is marked waiting
for staff, the person is told (HANDOFF_MESSAGE, or outside business hours HANDOFF_MESSAGE_CLOSED
with when staff are back), and staff are alerted once it is committed.
A staff reply, or resuming the bot, ends it (conversations.services.conversations).
"""

import functools
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from conversations import payloads
from conversations.alerts import AlertKind, alert_raise
from conversations.insights.metrics import HANDOFFS
from conversations.models import Conversation, Handoff, Message
from conversations.selectors import handoff_settings
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
            alert_raise, kind=AlertKind.HANDOFF, reason=reason, conversation_id=conversation.pk
        ),
        robust=True,
    )
    return outgoing_text_store(
        conversation=conversation,
        text=handoff_notice_text(conversation=conversation, at=now),
        role=Message.Role.SYSTEM,
        reply_to=reply_to,
        details={Message.HANDOFF_NOTICE: True},
    )


def handoff_notice_text(*, conversation: Conversation, at: datetime) -> str:
    """What the person is told when handed over at `at`: outside business hours, when staff are back."""
    chosen = handoff_settings(conversation=conversation)
    if chosen.hours.is_open(at):
        return chosen.message
    opens = chosen.hours.opening_words(chosen.hours.next_opening(at), now=at)
    # Not str.format: any other braces in the operator's text stay as they are.
    return chosen.message_closed.replace("{opens}", opens)
