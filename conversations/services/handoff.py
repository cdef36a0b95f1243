"""Handing a person over to staff: when the model calls handoff_to_human, or the person taps
"Talk to a person" (payload HUMAN_AGENT).

The bot is paused in that conversation with the reason, the conversation is marked waiting
for staff, and the person is told (their Page's handoff message, else HANDOFF_MESSAGE; outside business
hours HANDOFF_MESSAGE_CLOSED with when staff are back). Once that message was sent (or could not
be), a job has the LLM summarise the conversation for staff and raises staff's alert with the
summary, or without it when the LLM fails or is late: the summary never delays the person's
message, and the alert goes out whatever becomes of the summary. The recovery sweep queues that
job again for a handoff whose alert was not raised (a worker died, Redis was down).
A staff reply, or resuming the bot, ends the wait (conversations.services.conversations).
"""

import functools
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError

from conversations import payloads, selectors
from conversations.alerts import AlertKind, alert_raise
from conversations.insights.metrics import HANDOFFS
from conversations.llm import LLMError, llm_summarise
from conversations.models import Conversation, Handoff, Message
from conversations.pages import PageInfo, page_for_conversation
from conversations.prompts import summary_prompt_build
from conversations.queues import queue_default, redis_connection
from conversations.services.delivery import outgoing_text_store

logger = logging.getLogger(__name__)

SUMMARY_JOB = "conversations.jobs.handoff_summarise_run"
SUMMARY_MAX_CHARS = 1000
# A handoff's summary job is queued once within this long (set in Redis), so the sweep does not
# queue a second one behind a job that is still to run or running.
_SUMMARY_QUEUED_KEY = "handoffs:summary-queued:{handoff}"
_SUMMARY_QUEUED_MARGIN_SECONDS = 60
# Older handoffs are past alerting: the person's wait is in the admin's list.
_SWEEP_MAX_AGE = timedelta(hours=24)

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
    the first reason and time stay, and the alert is not repeated within minutes. Staff's
    alert waits for the message parts to be sent: then call handoff_alerts_schedule.
    """
    now = timezone.now()
    handoff_record(conversation=conversation, reason=reason, trigger=trigger, at=now)
    return outgoing_text_store(
        conversation=conversation,
        text=handoff_message(page=page_for_conversation(identity=conversation.identity), at=now),
        role=Message.Role.SYSTEM,
        reply_to=reply_to,
        details={Message.HANDOFF_NOTICE: True},
    )


def handoff_message(*, page: PageInfo | None, at: datetime) -> str:
    """What a person handed over to staff at `at` is told: their Page's handoff message (else
    HANDOFF_MESSAGE); outside business hours, HANDOFF_MESSAGE_CLOSED with when staff are back."""
    chosen = selectors.handoff_settings(page=page)
    if chosen.hours.is_open(at):
        return chosen.message
    opens = chosen.hours.opening_words(chosen.hours.next_opening(at), now=at)
    # Not str.format: any other braces in the operator's text stay as they are.
    return chosen.message_closed.replace("{opens}", opens)


def handoff_record(
    *,
    conversation: Conversation,
    reason: str,
    trigger: str,
    at: datetime | None = None,
    alert_reason: str | None = None,
) -> None:
    """Hand the conversation over to staff without telling the person (the caller does), in the
    caller's transaction: the bot paused, the conversation waiting. Staff are alerted by the
    summary job once the person's notice was sent (handoff_alerts_schedule); with `alert_reason`,
    when no notice of ours tells the person, at once on commit, naming that instead of `reason`."""
    now = at or timezone.now()
    handoff = Handoff.objects.create(
        conversation=conversation, trigger=trigger, reason=reason, created_at=now
    )
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
    if alert_reason is not None:
        # No message of ours tells the person (a private reply does, sent by the caller), so there is
        # no notice to wait for: staff are alerted once this commits, with no summary.
        Handoff.objects.filter(pk=handoff.pk).update(alerted_at=now)
        transaction.on_commit(
            functools.partial(
                alert_raise, kind=AlertKind.HANDOFF, reason=alert_reason, conversation_id=conversation.pk
            ),
            robust=True,
        )


def handoff_alerts_schedule(*, sent: list[Message]) -> None:
    """Queue the summary job of each handoff still to alert, when `sent` (message parts just sent,
    or tried) told a person they were handed over: after their message, never before it."""
    notices = [message for message in sent if message.details.get(Message.HANDOFF_NOTICE)]
    if not notices:
        return
    for handoff_id in Handoff.objects.filter(
        conversation_id=notices[0].conversation_id, alerted_at__isnull=True
    ).values_list("pk", flat=True):
        _summary_job_enqueue(handoff_id=handoff_id)


def handoff_alerts_sweep() -> int:
    """Queue the summary job of handoffs whose alert should have been raised by now (their job
    was lost with a worker, or Redis was down); the number queued."""
    now = timezone.now()
    handoff_ids = Handoff.objects.filter(
        alerted_at__isnull=True,
        created_at__lt=now - timedelta(seconds=settings.REPLY_SWEEP_GRACE_SECONDS),
        created_at__gte=now - _SWEEP_MAX_AGE,
    ).values_list("pk", flat=True)
    queued = sum(_summary_job_enqueue(handoff_id=handoff_id) for handoff_id in handoff_ids)
    if queued:
        logger.info("Recovery sweep re-queued %d handoff alert(s)", queued)
    return queued


def handoff_summarise(*, handoff_id: int) -> None:
    """Have the LLM summarise the handoff's conversation for staff, store it on the handoff and
    raise staff's alert with it: once per handoff. When the LLM fails or is late the alert goes
    without it, at once."""
    handoff = (
        Handoff.objects.select_related("conversation").filter(pk=handoff_id, alerted_at__isnull=True).first()
    )
    if handoff is None:
        return  # alerted already, or the person was forgotten meanwhile
    summary = _summary_write(handoff=handoff)
    if Handoff.objects.filter(pk=handoff.pk, alerted_at__isnull=True).update(
        summary=summary, alerted_at=timezone.now()
    ):
        alert_raise(
            kind=AlertKind.HANDOFF,
            reason=handoff.reason,
            summary=summary,
            conversation_id=handoff.conversation_id,
        )


def _summary_write(*, handoff: Handoff) -> str:
    conversation = handoff.conversation
    prompt = summary_prompt_build(
        history=selectors.messages_history(conversation=conversation, limit=settings.LLM_HISTORY_LIMIT),
        reason=handoff.reason,
        message_max_chars=settings.LLM_MESSAGE_MAX_CHARS,
        max_chars=settings.LLM_PROMPT_MAX_CHARS,
    )
    try:
        return llm_summarise(prompt=prompt, waiter=f"handoff:{handoff.pk}")[:SUMMARY_MAX_CHARS]
    except LLMError as error:
        logger.warning(
            "Handoff summary not written, alerting without it: conversation=%s reason=%s",
            conversation.pk,
            error.reason,
        )
    except Exception:  # a bug must not keep staff from hearing that someone waits
        logger.exception("Handoff summary failed, alerting without it: conversation=%s", conversation.pk)
    return ""


def _summary_job_enqueue(*, handoff_id: int) -> bool:
    """Queue the handoff's summary job unless it was queued within the job's time; whether it was."""
    try:
        if not redis_connection().set(
            _SUMMARY_QUEUED_KEY.format(handoff=handoff_id),
            1,
            nx=True,
            ex=round(settings.HANDOFF_SUMMARY_TIMEOUT_SECONDS) + _SUMMARY_QUEUED_MARGIN_SECONDS,
        ):
            return False
        job = queue_default().enqueue(SUMMARY_JOB, handoff_id=handoff_id, result_ttl=0)
    except RedisError as error:
        logger.warning(
            "Handoff summary not queued (Redis unavailable; the recovery sweep will): handoff=%s %s",
            handoff_id,
            error,
        )
        return False
    logger.info("Queued handoff summary job: handoff=%s job=%s", handoff_id, job.id)
    return True
