"""What staff do: write to a person as the Page, and edit the bot's system prompt."""
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from conversations.models import Conversation, Message, SystemPrompt
from conversations.selectors import conversation_get_by_psid
from conversations.services.conversations import conversation_bot_pause
from conversations.services.delivery import outgoing_messages_fail, outgoing_messages_send, outgoing_text_store
from messenger.errors import TransientDeliveryError


class RecipientUnknownError(Exception):
    """Nobody with this PSID wrote to the Page, so there is no conversation to write in.

    Messenger only lets a Page write to people who wrote first, so this is bad input.
    """


def staff_message_send(*, psid: str, text: str, sent_by: AbstractBaseUser | None = None) -> list[Message]:
    """Send `text` to the person behind `psid`; see staff_reply_send."""
    conversation = conversation_get_by_psid(psid=psid)
    if conversation is None:
        raise RecipientUnknownError(f"No conversation with recipient {psid}: they have not written to the Page.")
    return staff_reply_send(conversation=conversation, text=text, sent_by=sent_by)


def staff_reply_send(
    *, conversation: Conversation, text: str, sent_by: AbstractBaseUser | None = None
) -> list[Message]:
    """Store `text` as staff message(s) in the conversation and send them now, in order.

    Long texts are split like bot replies. Once sent, the client messages that waited for a
    reply count as answered. With STAFF_REPLY_PAUSES_BOT the bot is paused in
    the same transaction that stores the message, before anything is sent, so a reply the
    bot is about to generate cannot land on top of the human's.

    Raises a messenger.errors.DeliveryError when sending fails; the messages stay stored,
    marked failed with the reason, for staff to see in the transcript. Transient failures
    are marked failed too: the sender gets a definite "not sent" now and decides whether
    to send again, instead of the recovery sweep sending it later behind their back.
    """
    with transaction.atomic():
        messages = outgoing_text_store(
            conversation=conversation, text=text, role=Message.Role.STAFF, sent_by=sent_by
        )
        if settings.STAFF_REPLY_PAUSES_BOT:
            conversation_bot_pause(conversation=conversation, by=sent_by)
    try:
        outgoing_messages_send(messages=messages)
    except TransientDeliveryError as error:
        outgoing_messages_fail(messages=messages, error=error)
        raise
    # A person answered what was waiting; once resumed, the bot must not answer it again.
    conversation.messages.filter(
        role=Message.Role.CLIENT, status=Message.Status.RECEIVED, created_at__lte=messages[0].created_at
    ).update(status=Message.Status.ANSWERED)
    return messages


def system_prompt_update(*, text: str, created_by: AbstractBaseUser | None = None) -> SystemPrompt:
    """Make `text` the system prompt. A new row each time: the older rows are its history."""
    return SystemPrompt.objects.create(text=text.strip(), created_by=created_by)
