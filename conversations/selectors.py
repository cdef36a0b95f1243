"""Reads. Writes live in services.py."""
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Q
from django_rq import get_connection
from redis.exceptions import RedisError

from conversations.models import Conversation, Message, SystemPrompt

# Message.details["rate_limit_notice"]: set by inbound on the first over-limit message, then "sent".
RATE_LIMIT_NOTICE_PENDING = "pending"
RATE_LIMIT_NOTICE_SENT = "sent"


def health_failures() -> dict[str, str]:
    """Which of our own dependencies are unreachable, by component name."""
    failures = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        failures["database"] = type(error).__name__
    try:
        get_connection("default").ping()
    except RedisError as error:
        failures["redis"] = type(error).__name__
    return failures


def system_prompt_current() -> str:
    """The newest staff-edited system prompt, or the one from settings."""
    prompt = SystemPrompt.objects.values_list("text", flat=True).first()
    return prompt or settings.LLM_SYSTEM_PROMPT


# What the bot sends (LLM replies and fixed notices), and everything that goes out.
BOT_ROLES = (Message.Role.AI, Message.Role.SYSTEM)
OUTGOING_ROLES = (*BOT_ROLES, Message.Role.STAFF)


def messages_awaiting_reply(*, conversation: Conversation) -> list[Message]:
    """Client messages stored but not answered yet, oldest first: the next reply answers them all."""
    return list(
        conversation.messages.filter(role=Message.Role.CLIENT, status=Message.Status.RECEIVED).order_by(
            "created_at", "id"
        )
    )


def messages_history(*, conversation: Conversation, before: Message, limit: int) -> list[Message]:
    """The last `limit` messages the LLM may read before `before`, oldest first.

    One range scan of the (conversation, created_at, id) index however long the thread is.
    Rate-limited messages were never for the LLM and failed sends never reached the person.
    """
    newest_first = (
        conversation.messages.filter(
            Q(created_at__lt=before.created_at) | Q(created_at=before.created_at, id__lt=before.id)
        )
        .exclude(status=Message.Status.RATE_LIMITED)
        .exclude(status=Message.Status.FAILED, role__in=OUTGOING_ROLES)
        .order_by("-created_at", "-id")[:limit]
    )
    return list(reversed(newest_first))


def messages_bot_unsent(*, conversation: Conversation) -> list[Message]:
    """Bot messages stored but not sent yet (a job died mid-send), in order."""
    return list(
        conversation.messages.select_related("conversation__identity")
        .filter(role__in=BOT_ROLES, status=Message.Status.SENDING)
        .order_by("created_at", "id")
    )


def messages_rate_limit_notice_pending(*, conversation: Conversation) -> list[Message]:
    """Rate-limited client messages whose one short notice is still to be sent."""
    return list(
        conversation.messages.filter(
            status=Message.Status.RATE_LIMITED, details__rate_limit_notice=RATE_LIMIT_NOTICE_PENDING
        ).order_by("created_at", "id")
    )


def messages_needing_reply_job(*, stale_before: datetime, since: datetime) -> list[Message]:
    """For the recovery sweep: per conversation with the bot active, the newest message whose job is overdue.

    Overdue: a client message still waiting, or a bot message still unsent, created between
    `since` and `stale_before`; or a rate-limit notice still pending (never queued by anyone).
    Each part is a range scan of a partial index (message_awaiting_reply, message_sweep).
    """
    window = Q(created_at__gte=since, conversation__bot_active=True)
    overdue = (
        Q(role=Message.Role.CLIENT, status=Message.Status.RECEIVED, created_at__lt=stale_before)
        | Q(role__in=BOT_ROLES, status=Message.Status.SENDING, created_at__lt=stale_before)
        | Q(status=Message.Status.RATE_LIMITED, details__rate_limit_notice=RATE_LIMIT_NOTICE_PENDING)
    )
    newest_per_conversation: dict[int, Message] = {}
    for message in Message.objects.filter(window & overdue).select_related("conversation__identity").order_by(
        "created_at", "id"
    ):
        newest_per_conversation[message.conversation_id] = message
    return list(newest_per_conversation.values())
