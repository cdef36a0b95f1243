"""A person deletes their own data from Messenger: the "Delete my data" menu item (payload
DELETE_MY_DATA), a confirmation with two quick replies, and then everything about them deleted
(contact_forget, as staff's "Forget this contact" does) and one last message to say so.

It runs in the reply job, under the conversation's lock, whatever the bot's state: a paused
bot does not hold up a person's request to be forgotten. A confirmation that comes again (a
second tap, or for someone already deleted) deletes what there is again, which is harmless.
"""

import logging

from django.db import transaction

from conversations import payloads
from conversations.models import Conversation, Message
from conversations.pages import graph_client_for
from conversations.services.conversations import contact_forget
from conversations.services.delivery import QUICK_REPLIES, outgoing_text_store
from messenger.errors import DeliveryError
from messenger.graph import OUR_METADATA_MARKER

logger = logging.getLogger(__name__)

QUESTION_TEXT = (
    "Do you want us to delete everything we keep about you: your messages and your name? "
    "This cannot be undone."
)
QUESTION_BUTTONS = [
    ("Yes, delete it", payloads.DELETE_MY_DATA_CONFIRM),
    ("No, keep it", payloads.DELETE_MY_DATA_CANCEL),
]
DELETED_TEXT = "Done: we have deleted your messages and everything else we kept about you."
KEPT_TEXT = "OK, nothing was deleted."


def data_deletion_answer(*, conversation: Conversation, waiting: list[Message]) -> list[Message] | None:
    """Answer a deletion request among `waiting`: the parts to send, or None when there is none.

    A confirmation deletes the person at once (and sends its own last message: there is then
    nothing left to store it in).
    """
    asked = {_payload(message) for message in waiting}
    if payloads.DELETE_MY_DATA_CONFIRM in asked:
        data_deletion_confirm(conversation=conversation)
        return []
    for payload, text, details in (
        (payloads.DELETE_MY_DATA, QUESTION_TEXT, {QUICK_REPLIES: QUESTION_BUTTONS}),
        (payloads.DELETE_MY_DATA_CANCEL, KEPT_TEXT, {}),
    ):
        if payload in asked:
            with transaction.atomic():
                parts = outgoing_text_store(
                    conversation=conversation,
                    text=text,
                    role=Message.Role.SYSTEM,
                    reply_to=waiting[-1],
                    details=details,
                )
                Message.objects.filter(pk__in=[message.pk for message in waiting]).update(
                    status=Message.Status.ANSWERED
                )
            return parts
    return None


def data_deletion_confirm(*, conversation: Conversation) -> None:
    """Delete the person and everything about them, then tell them, once."""
    psid, page_id = conversation.identity.external_id, conversation.identity.page_id
    contact_forget(contact=conversation.identity.contact)
    logger.info("Deleted at the person's request: sender=%s", psid)
    try:
        graph_client_for(page_id=page_id).send_text(
            psid=psid, text=DELETED_TEXT, metadata=OUR_METADATA_MARKER
        )
    except DeliveryError as error:
        # Nothing is left to retry from: the deletion, which is what they asked for, is done.
        logger.warning("Deletion confirmation not sent: sender=%s reason=%s", psid, error.reason)


def _payload(message: Message) -> str | None:
    return message.details.get("quick_reply_payload") or message.details.get("postback_payload")
