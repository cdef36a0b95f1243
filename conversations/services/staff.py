"""What staff do: write to a person as the Page, and edit the bot's system prompt."""

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from conversations.models import Conversation, Message, SystemPrompt
from conversations.pages import PageInfo, page_for_sending
from conversations.selectors import conversation_get_by_psid
from conversations.services.conversations import (
    conversation_bot_pause,
    conversation_get_or_create,
    conversation_staff_answered,
)
from conversations.services.delivery import (
    outgoing_messages_fail,
    outgoing_messages_send,
    outgoing_text_store,
)
from messenger.errors import OutsideWindowError, TransientDeliveryError
from messenger.graph import OUR_METADATA_MARKER, split_message
from messenger.window import HUMAN_AGENT_TAG, Window, messaging_window


def staff_message_send(
    *, psid: str, text: str, sent_by: AbstractBaseUser | None = None, page_id: str | None = None
) -> list[Message]:
    """Send `text` to the person behind `psid`, as Page `page_id`; see staff_reply_send.

    `page_id` may be left out while one Page is connected (conversations.pages.page_for_sending
    raises PageChoiceError otherwise). To someone who has not written through this service
    yet, it is sent all the same (Meta decides whether the Page may); once Meta accepts it,
    their contact and conversation are created and the message stored.
    """
    page = page_for_sending(page_id=page_id)
    conversation = conversation_get_by_psid(psid=psid, page_id=page.page_id)
    if conversation is None:
        conversation, first_part_sent = _conversation_by_first_send(page=page, psid=psid, text=text)
        return staff_reply_send(
            conversation=conversation, text=text, sent_by=sent_by, first_part_sent=first_part_sent
        )
    return staff_reply_send(conversation=conversation, text=text, sent_by=sent_by)


def staff_reply_send(
    *,
    conversation: Conversation,
    text: str,
    sent_by: AbstractBaseUser | None = None,
    first_part_sent: str = "",
) -> list[Message]:
    """Store `text` as staff message(s) in the conversation and send them now, in order.

    Long texts are split like bot replies. Once sent, the client messages that waited for a
    reply count as answered, and the conversation no longer waits for staff. With
    STAFF_REPLY_PAUSES_BOT the bot is paused in the same transaction that stores the message,
    before anything is sent, so a reply the bot is about to generate cannot land on top of
    the human's. `first_part_sent` is the Messenger id of a first part already sent.

    Raises OutsideWindowError, before storing anything, when Meta's window does not allow
    the message (staff_message_tag). Raises a messenger.errors.DeliveryError when sending
    fails; the messages stay stored, marked failed with the reason, for staff to see in the
    transcript. Transient failures are marked failed too: the sender gets a definite "not
    sent" now and decides whether to send again, instead of the recovery sweep sending it
    later behind their back.
    """
    tag = staff_message_tag(conversation=conversation)
    with transaction.atomic():
        messages = outgoing_text_store(
            conversation=conversation, text=text, role=Message.Role.STAFF, sent_by=sent_by
        )
        if first_part_sent:
            _message_mark_sent(message=messages[0], message_id=first_part_sent)
        if settings.STAFF_REPLY_PAUSES_BOT:
            conversation_bot_pause(conversation=conversation, by=sent_by)
    try:
        outgoing_messages_send(messages=messages, tag=tag)
    except TransientDeliveryError as error:
        outgoing_messages_fail(messages=messages, error=error)
        raise
    conversation_staff_answered(conversation=conversation)
    # A person answered what was waiting; once resumed, the bot must not answer it again.
    conversation.messages.filter(
        role=Message.Role.CLIENT, status=Message.Status.RECEIVED, created_at__lte=messages[0].created_at
    ).update(status=Message.Status.ANSWERED)
    return messages


def staff_message_tag(*, conversation: Conversation) -> str | None:
    """The Meta message tag a staff message to this person needs now, if any.

    Raises OutsideWindowError when Meta would refuse it: past 24 hours without
    FACEBOOK_HUMAN_AGENT_TAG, or past 7 days. With no message from the person stored, the
    window is unknown: it is sent, and Meta decides.
    """
    state = messaging_window(person_last_wrote_at=conversation.person_last_wrote_at, now=timezone.now())
    if state.window is Window.HUMAN_AGENT and settings.FACEBOOK_HUMAN_AGENT_TAG:
        return HUMAN_AGENT_TAG
    if state.window is Window.HUMAN_AGENT:
        raise OutsideWindowError(
            "Not sent: the person last wrote more than 24 hours ago. Messenger then allows a message "
            "from staff only with the HUMAN_AGENT tag (set FACEBOOK_HUMAN_AGENT_TAG once Meta granted it)."
        )
    if state.window is Window.CLOSED:
        raise OutsideWindowError(
            "Not sent: the person last wrote more than 7 days ago, and Messenger allows no message then."
        )
    return None


def _conversation_by_first_send(*, page: PageInfo, psid: str, text: str) -> tuple[Conversation, str]:
    """Send the first part of `text` to someone with no conversation yet, on Messenger, then create theirs.

    Returns the conversation and the Messenger id of the part sent. Nothing is stored when
    Meta refuses. The Page's id (when the environment's Page names none, Graph's) is asked
    first, so that their conversation is the one their own messages will arrive in.
    """
    client = page.graph_client()
    page_id = page.page_id or client.page_get().get("id", "")
    message_id = client.send_text(psid=psid, text=split_message(text)[0], metadata=OUR_METADATA_MARKER)
    return conversation_get_or_create(page_id=page_id, external_id=psid), message_id


def _message_mark_sent(*, message: Message, message_id: str) -> None:
    message.external_id, message.status, message.sent_at = message_id, Message.Status.SENT, timezone.now()
    message.save(update_fields=["external_id", "status", "sent_at"])


def system_prompt_update(*, text: str, created_by: AbstractBaseUser | None = None) -> SystemPrompt:
    """Make `text` the system prompt. A new row each time: the older rows are its history."""
    return SystemPrompt.objects.create(text=text.strip(), created_by=created_by)
