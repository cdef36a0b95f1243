"""Outgoing messages: store them, then send them through Messenger, in order, exactly once.

Storing and sending are separate steps so a crash between them loses nothing: a stored part
still `sending` is sent by whoever runs `outgoing_messages_send` on it next (the reply job,
the recovery sweep). Nothing here knows about RQ; staff tools call these synchronously.
"""

import functools
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from conversations.alerts import AlertKind, alert_raise, alert_token_works
from conversations.insights.metrics import FAILURES, REPLIES_SENT
from conversations.llm import Completion, LLMError
from conversations.models import Conversation, Message
from conversations.services.conversations import conversation_touch
from messenger.errors import DeliveryError, InvalidTokenError, OutsideWindowError, PermanentDeliveryError
from messenger.graph import OUR_METADATA_MARKER, GraphClient, split_message

logger = logging.getLogger(__name__)

# Message.details of an outgoing part: the (title, payload) buttons sent under it.
QUICK_REPLIES = "quick_replies"


def outgoing_text_store(
    *,
    conversation: Conversation,
    text: str,
    role: str,
    sent_by=None,
    reply_to: Message | None = None,
    completion: Completion | None = None,
    details: dict | None = None,
) -> list[Message]:
    """`text` stored as the outgoing part(s) Messenger accepts (2000 characters each), `sending`.

    The LLM facts go on the first part only, so summing tokens over messages stays right.
    """
    parts = split_message(text)
    if not parts:
        raise ValueError("An outgoing message needs some text.")
    llm_facts = (
        {
            "llm_model": completion.model,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "llm_latency_ms": completion.latency_ms,
        }
        if completion
        else {}
    )
    now = timezone.now()
    with transaction.atomic():
        messages = [
            Message.objects.create(
                conversation=conversation,
                role=role,
                text=part,
                status=Message.Status.SENDING,
                sent_by=sent_by,
                reply_to=reply_to,
                details=details or {},
                created_at=now,
                **(llm_facts if index == 0 else {}),
            )
            for index, part in enumerate(parts)
        ]
        conversation_touch(conversation_id=conversation.pk, at=now, preview=parts[-1])
    return messages


def outgoing_messages_send(*, messages: list[Message], tag: str | None = None) -> None:
    """Send the parts not sent yet, in order, recording each one's Messenger message id.

    `tag` is a Meta message tag (HUMAN_AGENT: a person writing after the 24-hour window).
    Stops at the first failure and raises its typed DeliveryError; when that error is
    permanent the unsent parts are marked failed first. Parts after a transient failure stay
    `sending`, so a later call resumes at the first part not yet sent.
    """
    unsent = [message for message in messages if message.status == Message.Status.SENDING]
    if not unsent:
        return
    client = GraphClient.from_settings()
    psid = unsent[0].conversation.identity.external_id
    for index, message in enumerate(unsent):
        try:
            message_id = client.send_text(
                psid=psid,
                text=message.text,
                metadata=OUR_METADATA_MARKER,
                tag=tag,
                quick_replies=[tuple(button) for button in message.details.get(QUICK_REPLIES, [])],
            )
        except PermanentDeliveryError as error:
            outgoing_messages_fail(messages=unsent[index:], error=error)
            raise
        message.external_id = message_id
        message.status = Message.Status.SENT
        message.sent_at = timezone.now()
        message.save(update_fields=["external_id", "status", "sent_at"])
        REPLIES_SENT.labels(role=message.role).inc()


def outgoing_messages_fail(*, messages: list[Message], error: DeliveryError | Exception) -> None:
    """Mark the parts among `messages` that were not sent as failed, with a reason staff can read."""
    code, reason = error_description(error=error)
    for message in messages:
        if message.status == Message.Status.SENDING:
            message.status = Message.Status.FAILED
            message.error_code = code
            message.error_detail = reason
            message.save(update_fields=["status", "error_code", "error_detail"])
            FAILURES.labels(reason=code).inc()


def error_description(*, error: Exception) -> tuple[str, str]:
    """A short code and a readable reason for `error`; the typed errors' reasons hold no secrets."""
    if isinstance(error, LLMError):
        return f"llm:{error.http_status or type(error).__name__}", error.reason
    if isinstance(error, OutsideWindowError):
        return "outside_window", error.reason
    if isinstance(error, DeliveryError):
        if error.code is not None:
            code = f"graph:{error.code}" + (f"/{error.subcode}" if error.subcode is not None else "")
        else:
            code = f"graph:{error.http_status or type(error).__name__}"
        return code, error.reason
    return type(error).__name__[:64], f"Unexpected error: {type(error).__name__}"


def page_token_check() -> None:
    """Ask Graph whether the Page token still works; alert staff once when it stops working.

    Other failures (Graph down, a timeout) say nothing about the token: one warning line.
    With no token configured (development), Graph is not asked: one warning per process.
    """
    if not settings.FACEBOOK_PAGE_ACCESS_TOKEN:
        page_token_unset_warn()
        return
    try:
        GraphClient.from_settings().page_get()
    except InvalidTokenError as error:
        logger.error("The Page access token was refused: %s", error.reason)
        alert_raise(kind=AlertKind.TOKEN_REFUSED, reason=error.reason)
        return
    except DeliveryError as error:
        logger.warning("Page token not checked: %s", error.reason)
        return
    alert_token_works()


@functools.cache
def page_token_unset_warn() -> None:
    """Say once per process (cached) that there is no Page token; forked workers inherit the 'once'."""
    logger.warning(
        "FACEBOOK_PAGE_ACCESS_TOKEN is not set: the Page token is not checked and nothing can be sent "
        "to Messenger."
    )
