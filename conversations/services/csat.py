"""How we did (CSAT): when staff hand a conversation back to the bot after a handoff, the person
is asked CSAT_QUESTION once, with five quick replies (payloads CSAT_1 … CSAT_5); their answer is
stored on that handoff, counted, and thanked once (CSAT_THANKS).

A tap on CSAT_n is never the LLM's to answer: with a question pending it is the answer; without
one (a second tap, an old button, a postback someone forged) it is stored, marked answered and
ignored. The question and the thanks are bot messages like any other: stored, then sent by the
reply job, once, and only within Messenger's 24-hour window.
"""

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from conversations import payloads, selectors
from conversations.insights.metrics import CSAT_ANSWERS
from conversations.models import ChannelIdentity, Conversation, Handoff, Message
from conversations.pages import page_for_conversation
from conversations.services.delivery import QUICK_REPLIES, outgoing_text_store
from messenger.window import Window, messaging_window

logger = logging.getLogger(__name__)

# "1 ★" … "5 ★★★★★": Meta shows at most 20 characters of a quick reply's title.
QUESTION_BUTTONS = [(f"{score} {'★' * score}", payload) for payload, score in payloads.CSAT_SCORES.items()]
# Message.details of the question: the handoff it asks about.
QUESTION_HANDOFF = "csat_handoff"


def csat_question_store(*, conversation: Conversation, paused_at: datetime | None) -> list[Message]:
    """Store the question about the conversation's latest handoff, when it is to be asked; the parts
    to send (none when it is not).

    Asked when CSAT is on, the handoff was made since the bot was paused (`paused_at`, before
    staff resumed it), it was not asked about before, and Messenger lets the bot write to the
    person (they wrote within 24 hours). Run it in the transaction that resumes the bot.
    """
    chosen = selectors.handoff_settings(page=page_for_conversation(identity=conversation.identity))
    handoff = selectors.handoff_latest(conversation=conversation)
    now = timezone.now()
    if (
        not chosen.csat_enabled
        or paused_at is None
        or handoff is None
        or handoff.created_at < paused_at
        or conversation.identity.channel == ChannelIdentity.Channel.CONSOLE
        or messaging_window(person_last_wrote_at=conversation.person_last_wrote_at, now=now).window
        is not Window.OPEN
    ):
        return []
    if not Handoff.objects.filter(pk=handoff.pk, csat_asked_at__isnull=True).update(csat_asked_at=now):
        return []  # asked already
    return outgoing_text_store(
        conversation=conversation,
        text=chosen.csat_question,
        role=Message.Role.SYSTEM,
        details={QUICK_REPLIES: QUESTION_BUTTONS, QUESTION_HANDOFF: handoff.pk},
    )


def csat_answer(*, conversation: Conversation, waiting: list[Message]) -> list[Message]:
    """Take the CSAT taps out of `waiting`: each answers the question pending, if one is, and all
    are marked answered. What is left of `waiting`, for the bot.

    An answer is stored on its handoff and counted; while the bot is active it is thanked, the
    thanks stored here to go out with the bot's other unsent messages.
    """
    taps = [(message, _score(message)) for message in waiting]
    taps = [(message, score) for message, score in taps if score is not None]
    if not taps:
        return waiting
    thanks = selectors.handoff_settings(
        page=page_for_conversation(identity=conversation.identity)
    ).csat_thanks
    with transaction.atomic():
        for message, score in taps:
            pending = (
                Handoff.objects.select_for_update()
                .filter(conversation=conversation, csat_asked_at__isnull=False, csat_answered_at__isnull=True)
                .order_by("-created_at", "-id")
                .first()
            )
            if pending is None:
                logger.info("Ignored a rating with no question pending: conversation=%s", conversation.pk)
                continue
            pending.csat_score, pending.csat_answered_at = score, message.created_at
            pending.save(update_fields=["csat_score", "csat_answered_at"])
            CSAT_ANSWERS.labels(score=str(score)).inc()
            if conversation.bot_active:
                outgoing_text_store(
                    conversation=conversation, text=thanks, role=Message.Role.SYSTEM, reply_to=message
                )
        Message.objects.filter(pk__in=[message.pk for message, _ in taps]).update(
            status=Message.Status.ANSWERED
        )
    answered = {message.pk for message, _ in taps}
    return [message for message in waiting if message.pk not in answered]


def _score(message: Message) -> int | None:
    payload = message.details.get("quick_reply_payload") or message.details.get("postback_payload")
    return payloads.CSAT_SCORES.get(payload)
