"""Outgoing messages: store them, then send them through Messenger or Instagram, with their Page's
token, in order, exactly once; and whether each Page's token still works.

Storing and sending are separate steps so a crash between them loses nothing: a stored part
still `sending` is sent by whoever runs `outgoing_messages_send` on it next (the reply job,
the recovery sweep). Nothing here knows about RQ; staff tools call these synchronously.
"""

import functools
import logging

from django.db import transaction
from django.utils import timezone

from conversations.alerts import AlertKind, alert_raise, alert_token_works
from conversations.insights.metrics import FAILURES, REPLIES_SENT
from conversations.llm import Completion, LLMError
from conversations.models import ChannelIdentity, Conversation, Message, Page
from conversations.pages import PageInfo, graph_client_for, pages_current
from conversations.services.conversations import conversation_touch
from messenger.errors import DeliveryError, InvalidTokenError, OutsideWindowError, PermanentDeliveryError
from messenger.graph import (
    INSTAGRAM_MESSAGE_CHARACTER_LIMIT,
    MESSAGE_CHARACTER_LIMIT,
    OUR_METADATA_MARKER,
    split_message,
)

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
    """`text` stored as the outgoing part(s) the channel accepts (Messenger 2,000 characters each,
    Instagram 1,000), `sending`.

    The LLM facts go on the first part only, so summing tokens over messages stays right.
    """
    parts = split_message(text, limit=message_character_limit(channel=conversation.identity.channel))
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
    # No savepoint: inside a caller's transaction the parts are stored or rolled back with it.
    with transaction.atomic(savepoint=False):
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
    """Send the parts not sent yet, in order, with their Page's token, recording each one's
    message id.

    `tag` is a Meta message tag (HUMAN_AGENT: a person writing after the 24-hour window).
    Stops at the first failure and raises its typed DeliveryError; when that error is
    permanent the unsent parts are marked failed first. Parts after a transient failure stay
    `sending`, so a later call resumes at the first part not yet sent.
    """
    unsent = [message for message in messages if message.status == Message.Status.SENDING]
    if not unsent:
        return
    identity = unsent[0].conversation.identity
    try:
        client = graph_client_for(page_id=identity.page_id)
        for message in unsent:
            message_id = client.send_text(
                psid=identity.external_id,
                text=message.text,
                metadata=OUR_METADATA_MARKER,
                tag=tag,
                quick_replies=[tuple(button) for button in message.details.get(QUICK_REPLIES, [])],
            )
            message.external_id = message_id
            message.status = Message.Status.SENT
            message.sent_at = timezone.now()
            message.save(update_fields=["external_id", "status", "sent_at"])
            REPLIES_SENT.labels(role=message.role, channel=identity.channel).inc()
    except PermanentDeliveryError as error:
        outgoing_messages_fail(messages=unsent, error=error)  # those not sent yet
        raise


def message_character_limit(*, channel: str) -> int:
    """The most characters one message may carry on `channel`."""
    if channel == ChannelIdentity.Channel.INSTAGRAM:
        return INSTAGRAM_MESSAGE_CHARACTER_LIMIT
    return MESSAGE_CHARACTER_LIMIT


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
    """Ask Graph whether each Page's token still works; alert staff once per Page when it stops.

    Each connected Page's state and last check are recorded. Other failures (Graph down, a
    timeout) say nothing about a token: one warning line. With no Page at all (development),
    Graph is not asked: one warning per process.
    """
    pages = pages_current().available()
    if not pages:
        page_token_unset_warn()
        return
    for page in pages:
        _page_token_check_one(page=page)


def _page_token_check_one(*, page: PageInfo) -> None:
    try:
        page.graph_client().page_get()
    except InvalidTokenError as error:
        page_token_refused(page=page, reason=error.reason)
        return
    except DeliveryError as error:
        logger.warning("Page token not checked for %s: %s", page.label, error.reason)
        return
    Page.objects.filter(page_id=page.page_id).update(
        token_state=Page.TokenState.WORKS, token_checked_at=timezone.now(), token_error=""
    )
    alert_token_works(page_id=page.page_id)


def page_token_refused(*, page: PageInfo, reason: str, conversation_id: int | None = None) -> None:
    """Facebook refused `page`'s token: recorded on the Page, logged, and staff alerted (once, until
    it works again), the alert naming the Page."""
    Page.objects.filter(page_id=page.page_id).update(
        token_state=Page.TokenState.REFUSED,
        token_checked_at=timezone.now(),
        token_error=reason[: Page._meta.get_field("token_error").max_length],
    )
    logger.error("The access token of %s was refused: %s", page.label, reason)
    alert_raise(
        kind=AlertKind.TOKEN_REFUSED,
        reason=reason,
        conversation_id=conversation_id,
        page_id=page.page_id,
        page_name=page.label,
    )


@functools.cache
def page_token_unset_warn() -> None:
    """Say once per process (cached) that there is no Page token; forked workers inherit the 'once'."""
    logger.warning(
        "No Page to answer for: FACEBOOK_PAGE_ACCESS_TOKEN is not set and no Page is connected "
        "(manage.py pages connect), so nothing can be sent to Messenger or Instagram."
    )
