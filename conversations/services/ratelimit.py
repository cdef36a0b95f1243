"""The per-sender rate limit, all of it: the window, the verdict on a stored message, and its one notice.

The window is the `limits` library's moving window in Redis: one atomic call per message
keeps a log of the sender's accepted messages, so concurrent web workers can never let one
message too many through. A message over the limit is stored, marked rate-limited and never
sent to the LLM; the first one over the limit in a minute is marked for one short notice,
which its reply job sends (a fixed text, not the LLM's). Later ones get nothing.

Fail-open: when Redis cannot be reached the message is let through with a warning, since
losing the limiter for a while is better than refusing every person.
"""

import functools
import logging

from django.conf import settings
from django.db import transaction
from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from conversations.insights.metrics import RATE_LIMITED
from conversations.models import Conversation, Message
from conversations.selectors import NOTICE_PENDING
from conversations.services.delivery import outgoing_messages_send, outgoing_text_store

logger = logging.getLogger(__name__)

NOTICE_TEXT = "You're sending messages faster than I can read them. I'll answer again in a minute."
# The webhook must answer in milliseconds even when Redis hangs instead of refusing.
_REDIS_TIMEOUT_SECONDS = 1.0
_NOTICE_WINDOW = RateLimitItemPerMinute(1, namespace="NOTICE")


def rate_limit_apply(*, message: Message, sender: str) -> bool:
    """Count the stored client `message` in its sender's window; whether it needs a reply job.

    `sender` is any stable key for the person (the page id and PSID). A message over the
    limit is saved marked rate-limited; the first one in a minute is marked for the notice
    and, like a message within the limit, needs a job (which sends the notice). Later ones
    need nothing.
    """
    if rate_limit_allows(sender=sender):
        return True
    try:
        first_over_limit = _limiter(settings.REDIS_URL).hit(_NOTICE_WINDOW, sender)
    except StorageError as error:
        logger.warning("Rate limiter unavailable, letting the message through: %s", error)
        return True
    message.status = Message.Status.RATE_LIMITED
    if first_over_limit:
        message.details[Message.RATE_LIMIT_NOTICE] = Message.RATE_LIMIT_NOTICE_PENDING
    message.save(update_fields=["status", "details"])
    RATE_LIMITED.inc()
    logger.info(
        "Rate-limited message: sender=%s mid=%s",
        sender,
        message.external_id,
        extra={"conversation_id": message.conversation_id, "mid": message.external_id},
    )
    return first_over_limit


def rate_limit_allows(*, sender: str) -> bool:
    """Count one message (or comment) of `sender` in their window; whether it is within the limit.

    Fail-open: True, with a warning, when Redis cannot be reached.
    """
    try:
        return _limiter(settings.REDIS_URL).hit(_window(), sender)
    except StorageError as error:
        logger.warning("Rate limiter unavailable, letting the message through: %s", error)
        return True


def rate_limit_notices_send(*, conversation: Conversation) -> None:
    """Send the conversation's pending notices, each stored before it is sent so none goes twice."""
    for message in conversation.messages.filter(NOTICE_PENDING).order_by("created_at", "id"):
        with transaction.atomic():
            notice = outgoing_text_store(
                conversation=conversation, text=NOTICE_TEXT, role=Message.Role.SYSTEM, reply_to=message
            )
            message.details[Message.RATE_LIMIT_NOTICE] = Message.RATE_LIMIT_NOTICE_SENT
            message.save(update_fields=["details"])
        outgoing_messages_send(messages=notice)


@functools.cache
def _limiter(redis_url: str) -> MovingWindowRateLimiter:
    # One connection pool per process (and per URL, so tests can point at a dead Redis).
    storage = RedisStorage(
        redis_url,
        wrap_exceptions=True,
        socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
        socket_timeout=_REDIS_TIMEOUT_SECONDS,
    )
    return MovingWindowRateLimiter(storage)


def _window() -> RateLimitItemPerMinute:
    return RateLimitItemPerMinute(settings.FACEBOOK_RATE_LIMIT_MESSAGES_PER_MINUTE)
