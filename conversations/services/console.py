"""`manage.py chat`: an operator talks to the bot in a terminal, through the same prompt, knowledge
and LLM as on Messenger, before Facebook is connected. Stored under the console channel, so
the conversation reads in the admin like any other."""

from django.db import transaction
from django.utils import timezone

from conversations.llm import LLMError
from conversations.models import ChannelIdentity, Contact, Conversation, Message
from conversations.services.conversations import conversation_get_or_create, conversation_touch
from conversations.services.delivery import error_description
from conversations.services.handoff import handoff_alerts_schedule
from conversations.services.replies import reply_compose, reply_record

# Console conversations belong to no Page.
CONSOLE_PAGE_ID = "console"


def console_conversation_get_or_create(*, name: str) -> Conversation:
    """The console conversation of `name` (an operator's login, say), which goes on across runs."""
    conversation = conversation_get_or_create(
        page_id=CONSOLE_PAGE_ID, external_id=name, channel=ChannelIdentity.Channel.CONSOLE
    )
    Contact.objects.filter(pk=conversation.identity.contact_id, name="").update(name=f"{name} (console)")
    return conversation


def console_message_answer(*, conversation: Conversation, text: str) -> list[Message]:
    """Store `text` as the operator's message and the bot's answer to it; the answer's parts.

    Raises LLMError when the LLM does not answer; the message is then marked failed with why.
    """
    now = timezone.now()
    with transaction.atomic():
        message = Message.objects.create(
            conversation=conversation,
            role=Message.Role.CLIENT,
            text=text,
            status=Message.Status.RECEIVED,
            sent_at=now,
        )
        conversation_touch(conversation_id=conversation.pk, at=message.created_at, preview=text)
    try:
        reply = reply_compose(conversation=conversation, waiting=[message])
    except LLMError as error:
        message.error_code, message.error_detail = error_description(error=error)
        message.status = Message.Status.FAILED
        message.save(update_fields=["status", "error_code", "error_detail"])
        raise
    with transaction.atomic():
        parts = reply_record(conversation=conversation, waiting=[message], reply=reply)
        # Printing it is the console's delivery.
        Message.objects.filter(pk__in=[part.pk for part in parts]).update(
            status=Message.Status.SENT, sent_at=timezone.now()
        )
    handoff_alerts_schedule(sent=parts)
    return parts
