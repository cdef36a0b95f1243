"""The bot's replies: queue a job per client message; the job answers the conversation, exactly once.

One reply at a time per conversation, in message order: a job holds a Redis
lock on its conversation while it works. A job that finds the lock taken re-queues itself a
moment later instead of blocking a worker; when it runs again, whoever held the lock has
answered everything that had arrived, so it answers only what is left (often nothing).
Every client message still waiting when a job holds the lock goes into that one reply.

Exactly once, whoever runs the job again (an RQ retry, a killed worker, the recovery sweep):
the reply is stored, and its client messages marked answered, in one transaction before
anything is sent; a later run finds no message waiting and only sends the stored parts still
`sending`. Retries are RQ's: transient errors re-raise while the job has tries left;
permanent ones, and the last try, give up (see `_reply_give_up`).
"""

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import LockError, RedisError
from redis.lock import Lock
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from conversations import selectors
from conversations.alerts import AlertKind, alert_raise
from conversations.insights.metrics import AI_REPLIES, FAILURES, reply_sent_observe
from conversations.knowledge.search import knowledge_relevant
from conversations.knowledge.services import knowledge_reply_record
from conversations.llm import Completion, TransientLLMError, llm_complete
from conversations.log_context import log_context
from conversations.media.services import attachment_seconds, media_readable, media_understand
from conversations.models import Conversation, Handoff, KnowledgeArticle, Message
from conversations.pages import graph_client_for, page_for_conversation
from conversations.prompts import message_mentions_story, prompt_build
from conversations.queues import QUEUE_NAME, queue_default, redis_connection
from conversations.services.conversations import conversation_bot_resume
from conversations.services.csat import csat_answer, csat_question_store
from conversations.services.data_deletion import data_deletion_answer
from conversations.services.delivery import (
    error_description,
    outgoing_messages_fail,
    outgoing_messages_send,
    outgoing_text_store,
    page_token_refused,
)
from conversations.services.handoff import (
    ASKED_FOR_A_PERSON,
    conversation_handoff,
    handoff_alerts_schedule,
    handoff_requested,
)
from conversations.services.ratelimit import rate_limit_notices_send
from messenger.errors import (
    InvalidTokenError,
    OutsideWindowError,
    RecipientUnreachableError,
    TransientDeliveryError,
)
from messenger.window import Window, messaging_window

logger = logging.getLogger(__name__)
T = TypeVar("T")


REPLY_JOB = "conversations.jobs.reply_to_message"
# Fixed texts, never written by the LLM.
APOLOGY_TEXT = "Sorry, I couldn't answer your message just now. Please try again in a little while."
ATTACHMENT_REPLY_TEXT = (
    "Thanks for sending that! I can't open this kind of file. Could you tell me in words how I can help?"
)
# A job that found its conversation busy looks again after this long (the scheduler ticks each second).
LOCK_WAIT_SECONDS = 2
# Messenger only lets a page answer within 24 hours; older messages are not worth re-driving.
SWEEP_MAX_AGE = timedelta(hours=24)
# Jobs with these statuses will run (a scheduled one is a retry waiting its turn): the sweep
# must not queue another, which would multiply the attempts against a failing service.
_WAITING_JOB_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED})


def reply_schedule(*, message: Message, sender: str | None = None) -> str | None:
    """Queue the reply job for a stored client message; its id, or None when Redis is down.

    Call it once the message is committed. A message left waiting by a Redis outage is
    re-queued by the recovery sweep, so the failure is only logged. `sender`, the PSID the
    log line names, spares reading the conversation when the caller knows it.
    """
    return _reply_job_enqueue(message=message, job_id=_reply_job_id(message), sender=sender)


def reply_retry(*, message: Message) -> str | None:
    """Staff's "retry": answer again the client message behind `message` (itself, or the one it answered).

    Every failed client message of the conversation up to that one waits again, and the
    answer is produced afresh; the failed reply stays in the transcript as it was.
    """
    client_message = message if message.role == Message.Role.CLIENT else message.reply_to
    if client_message is None:
        raise ValueError("This message answers no client message, so there is nothing to retry.")
    client_message.conversation.messages.filter(
        Q(status=Message.Status.FAILED, created_at__lte=client_message.created_at) | Q(pk=client_message.pk),
        role=Message.Role.CLIENT,
    ).update(status=Message.Status.RECEIVED, error_code="", error_detail="")
    return _reply_job_enqueue(message=client_message, job_id=_reply_job_id(client_message))


def conversation_hand_back(*, conversation: Conversation) -> bool:
    """Staff hand the conversation back to the bot: it answers again, and after a handoff the
    person is asked how we did (conversations.services.csat); whether they are.

    The question is stored with the bot resumed, and sent by a reply job once committed.
    """
    paused_at = None if conversation.bot_active else conversation.bot_paused_at
    with transaction.atomic():
        conversation_bot_resume(conversation=conversation)
        question = csat_question_store(conversation=conversation, paused_at=paused_at)
        if question:
            transaction.on_commit(functools.partial(reply_schedule, message=question[0]), robust=True)
    return bool(question)


def reply_produce(*, message_id: int, final_attempt: bool) -> None:
    """What the reply job does for the conversation of `message_id` (see the module's docstring)."""
    # Read when the job runs, not when it was queued: staff may have paused the bot meanwhile.
    message = Message.objects.select_related("conversation__identity__contact").filter(pk=message_id).first()
    if message is None:
        return  # the person was forgotten meanwhile
    conversation = message.conversation
    with log_context(conversation_id=conversation.pk, mid=message.external_id):
        lock = _conversation_lock(conversation.pk)
        if not lock.acquire(blocking=False):
            _reply_job_enqueue(message=message, delay=LOCK_WAIT_SECONDS)
            return
        try:
            _conversation_answer(conversation=conversation, lock=lock, final_attempt=final_attempt)
        finally:
            try:
                lock.release()
            except LockError:
                logger.warning(
                    "Conversation lock expired before the reply finished: conversation=%s", conversation.pk
                )


def replies_sweep() -> int:
    """Re-queue replies that should have happened by now; the number of jobs queued.

    Finds messages waiting longer than the grace period (Redis was down when they arrived,
    a worker died mid-job) and pending rate-limit notices. Safe any time and from several
    workers at once: a message whose job is still waiting to run is skipped, and the job
    itself is idempotent and serialised per conversation.
    """
    now = timezone.now()
    overdue = selectors.messages_needing_reply_job(
        stale_before=now - timedelta(seconds=settings.REPLY_SWEEP_GRACE_SECONDS), since=now - SWEEP_MAX_AGE
    )
    queued = jobs_requeue(
        items=overdue,
        job_id=_reply_job_id,
        enqueue=lambda message, job_id: _reply_job_enqueue(message=message, job_id=job_id),
        in_hand=lambda message: _conversation_lock(message.conversation_id).locked(),
    )
    if queued:
        logger.info("Recovery sweep re-queued %d reply job(s)", queued)
    return queued


def jobs_requeue(
    *,
    items: Iterable[T],
    job_id: Callable[[T], str],
    enqueue: Callable[[T, str | None], str | None],
    in_hand: Callable[[T], bool],
) -> int:
    """Queue again the job of each of `items` (its id `job_id(item)`) unless that job still waits
    to run, or runs with the item's lock held (`in_hand(item)`: waiting for Groq's budget, say);
    how many were queued. `enqueue(item, job_id)` queues one, None when it could not.

    A "started" job whose lock has expired died with its worker (RQ notices only minutes later);
    a second job is harmless, the work being idempotent. It gets its own id so neither
    overwrites the other.
    """
    queued = 0
    for item in items:
        status = _job_status(job_id(item))
        if status in _WAITING_JOB_STATUSES or (status == JobStatus.STARTED and in_hand(item)):
            continue
        if enqueue(item, None if status == JobStatus.STARTED else job_id(item)):
            queued += 1
    return queued


# --- the job's work, holding the conversation's lock ------------------------------------------


def _conversation_answer(*, conversation: Conversation, lock: Lock, final_attempt: bool) -> None:
    def before_llm_wait(seconds: float) -> None:
        # The lock lasts the wait for Groq's budget; a database connection is not held through it
        # (a burst would otherwise keep one open per waiting thread).
        lock.extend(seconds + settings.REPLY_LOCK_MARGIN_SECONDS, replace_ttl=True)
        if not connection.in_atomic_block:
            connection.close()

    try:
        waiting = selectors.messages_awaiting_reply(conversation=conversation)
        # A request to be deleted is answered whatever the bot's state.
        deletion = data_deletion_answer(conversation=conversation, waiting=waiting)
        if deletion is not None:
            outgoing_messages_send(messages=deletion)
            return
        # A rating is recorded whatever the bot's state, and never answered by the LLM.
        waiting = csat_answer(conversation=conversation, waiting=waiting)
        if not conversation.bot_active:
            # A paused bot says nothing more, but the notice that it handed the person over.
            outgoing_messages_send(
                messages=selectors.messages_bot_unsent(conversation=conversation, handoff=True)
            )
            return
        _window_require(conversation=conversation)
        outgoing_messages_send(messages=selectors.messages_bot_unsent(conversation=conversation))
        rate_limit_notices_send(conversation=conversation)
        if waiting:
            if _llm_reads(waiting) and not handoff_requested(messages=waiting):
                _sender_actions_send(conversation=conversation)
            # Each file may take longer than the lock's period: the lock is made to last it.
            lock_stretch = attachment_seconds() + settings.REPLY_LOCK_MARGIN_SECONDS
            if media_understand(
                messages=waiting, before_each=lambda: lock.extend(lock_stretch, replace_ttl=True)
            ):
                lock.reacquire()  # the LLM call gets a full period
            reply = _reply_store(conversation=conversation, waiting=waiting, before_llm_wait=before_llm_wait)
            # The LLM call may have used most of the lock's time; the sends get a full period.
            lock.reacquire()
            try:
                outgoing_messages_send(messages=reply)
            finally:
                # Staff's alert of a handoff, with its summary, only once the person was told.
                handoff_alerts_schedule(sent=reply)
            if reply:
                reply_sent_observe(received_at=waiting[0].created_at)
    except (TransientLLMError, TransientDeliveryError, LockError) as error:
        if not final_attempt:
            logger.warning("Reply will be retried: sender=%s reason=%s", _psid(conversation), error)
            raise
        _reply_give_up(conversation=conversation, error=error)
    except Exception as error:  # permanent errors, and bugs: retrying cannot help
        _reply_give_up(conversation=conversation, error=error)


def _window_require(*, conversation: Conversation) -> None:
    """Raise OutsideWindowError when the person last wrote more than 24 hours ago: the bot may not write."""
    state = messaging_window(person_last_wrote_at=conversation.person_last_wrote_at, now=timezone.now())
    if state.window in (Window.HUMAN_AGENT, Window.CLOSED):
        raise OutsideWindowError(
            "Not sent: the person last wrote more than 24 hours ago (outside the 24-hour window)"
        )


@dataclass(frozen=True)
class ComposedReply:
    """What the bot will say to the messages waiting, not stored yet: a text, a handover, or both."""

    text: str
    role: str
    completion: Completion | None = None
    articles: list[KnowledgeArticle] = field(default_factory=list)
    # Set to hand the person over to staff, with why.
    handoff_reason: str | None = None


def reply_compose(
    *,
    conversation: Conversation,
    waiting: list[Message],
    before_llm_wait: Callable[[float], None] | None = None,
) -> ComposedReply:
    """The answer to `waiting`: the LLM's, given the history and the knowledge that matches them.

    A tap on "Talk to a person" hands over with no LLM call; messages with nothing the LLM can
    read (no text, no voice message or image read by conversations.media) get a fixed reply.
    Waiting for Groq's budget, the oldest replies go first; `before_llm_wait` as llm_complete's.
    """
    if handoff_requested(messages=waiting):
        return ComposedReply(text="", role=Message.Role.SYSTEM, handoff_reason=ASKED_FOR_A_PERSON)
    if not _llm_reads(waiting):
        return ComposedReply(text=ATTACHMENT_REPLY_TEXT, role=Message.Role.SYSTEM)
    selectors.messages_attachments_prefetch(messages=waiting, quoted=True)
    history = selectors.messages_history(
        conversation=conversation, before=waiting[0], limit=settings.LLM_HISTORY_LIMIT
    )
    page = page_for_conversation(identity=conversation.identity)
    articles = knowledge_relevant(query=waiting, history=history, page_id=page.page_id if page else None)
    prompt = prompt_build(
        system_prompt=(page and page.system_prompt) or selectors.system_prompt_current(),
        person_first_name=conversation.identity.contact.first_name,
        knowledge=articles,
        history=history,
        query=waiting,
        knowledge_max_chars=settings.KNOWLEDGE_MAX_CHARS,
        message_max_chars=settings.LLM_MESSAGE_MAX_CHARS,
        max_chars=settings.LLM_PROMPT_MAX_CHARS,
    )
    completion = llm_complete(
        prompt=prompt,
        waiter=f"conversation:{conversation.pk}",
        waiting_since=waiting[0].created_at.timestamp(),
        before_wait=before_llm_wait,
    )
    return ComposedReply(
        text=completion.text,
        role=Message.Role.AI,
        completion=completion,
        articles=articles,
        handoff_reason=completion.handoff_reason,
    )


def reply_record(
    *, conversation: Conversation, waiting: list[Message], reply: ComposedReply
) -> list[Message]:
    """Store `reply` as the outgoing parts answering `waiting`, mark `waiting` answered, and hand
    over when the reply says so; the parts to send, in order.

    Run it inside a transaction, so that all of it is stored together or not at all.
    """
    parts = []
    if reply.text:
        parts = outgoing_text_store(
            conversation=conversation,
            text=reply.text,
            role=reply.role,
            reply_to=waiting[-1],
            completion=reply.completion,
        )
        if reply.role == Message.Role.AI:
            knowledge_reply_record(reply=parts[0], articles=reply.articles, answered=waiting)
            AI_REPLIES.labels(knowledge="yes" if reply.articles else "no").inc()
    Message.objects.filter(pk__in=[message.pk for message in waiting]).update(status=Message.Status.ANSWERED)
    if reply.handoff_reason is not None:
        trigger = Handoff.Trigger.MODEL if reply.role == Message.Role.AI else Handoff.Trigger.PERSON
        parts += conversation_handoff(
            conversation=conversation, reason=reply.handoff_reason, trigger=trigger, reply_to=waiting[-1]
        )
    return parts


def _reply_store(
    *, conversation: Conversation, waiting: list[Message], before_llm_wait: Callable[[float], None]
) -> list[Message]:
    """The reply to `waiting`, stored as parts to send; `waiting` marked answered in the same transaction.

    No parts (and `waiting` left as it is) when the bot was paused meanwhile.
    """
    reply = reply_compose(conversation=conversation, waiting=waiting, before_llm_wait=before_llm_wait)
    with transaction.atomic():
        # Staff may have taken over during the LLM call: their send pauses the bot in the
        # transaction that stores their message, so this row lock orders the two.
        if not Conversation.objects.select_for_update().filter(pk=conversation.pk, bot_active=True).exists():
            return []
        return reply_record(conversation=conversation, waiting=waiting, reply=reply)


def _llm_reads(messages: list[Message]) -> bool:
    """Whether the LLM has something to read in `messages`: text, a story mention (which the prompt
    describes), or a voice message or an image (read, or said to be unreadable: conversations.media)."""
    return any(
        message.text.strip() or message_mentions_story(message) or media_readable(message=message)
        for message in messages
    )


def _sender_actions_send(*, conversation: Conversation) -> None:
    """Seen, then typing, before the LLM call; a permanent failure stops the reply before the LLM is paid."""
    client = graph_client_for(page_id=conversation.identity.page_id)
    for action in ("mark_seen", "typing_on"):
        try:
            client.send_action(psid=_psid(conversation), action=action)
        except TransientDeliveryError as error:
            logger.warning(
                "Sender action %s failed: sender=%s reason=%s", action, _psid(conversation), error.reason
            )


def _reply_give_up(*, conversation: Conversation, error: Exception) -> None:
    """The final failure: what waits is marked failed with the reason, staff are alerted, and the
    person gets an apology.

    No apology when it could not arrive anyway (the person cannot be reached, the page's
    token is refused, the window is closed), and no alert when staff can do nothing about it.
    The apology is tried once; its own failure is only logged.
    """
    _reply_failure_log(conversation=conversation, error=error)
    code, reason = error_description(error=error)
    waiting = selectors.messages_awaiting_reply(conversation=conversation)
    with transaction.atomic():
        outgoing_messages_fail(messages=selectors.messages_bot_unsent(conversation=conversation), error=error)
        Message.objects.filter(pk__in=[message.pk for message in waiting]).update(
            status=Message.Status.FAILED, error_code=code, error_detail=reason
        )
    FAILURES.labels(reason=code).inc(len(waiting))
    if isinstance(error, InvalidTokenError):
        page = page_for_conversation(identity=conversation.identity)
        if page is not None:  # None: the Page was disconnected meanwhile, a token nobody need fix
            page_token_refused(page=page, reason=reason, conversation_id=conversation.pk)
    elif not isinstance(error, RecipientUnreachableError):
        alert_raise(kind=AlertKind.REPLY_FAILED, reason=reason, conversation_id=conversation.pk)
    if isinstance(error, (RecipientUnreachableError, InvalidTokenError)):
        return
    last_client_message = (
        waiting[-1]
        if waiting
        else conversation.messages.filter(role=Message.Role.CLIENT).order_by("created_at", "id").last()
    )
    apology = outgoing_text_store(
        conversation=conversation, text=APOLOGY_TEXT, role=Message.Role.SYSTEM, reply_to=last_client_message
    )
    try:
        outgoing_messages_send(messages=apology)
    except Exception as apology_error:
        outgoing_messages_fail(messages=apology, error=apology_error)
        logger.error("Apology not sent: sender=%s", _psid(conversation), exc_info=apology_error)


def _reply_failure_log(*, conversation: Conversation, error: Exception) -> None:
    psid = _psid(conversation)
    if isinstance(error, OutsideWindowError):
        logger.warning("Reply not sent: sender=%s reason=%s", psid, error.reason)
    elif isinstance(error, InvalidTokenError):
        logger.error(
            "The Page access token was refused: nothing can be sent as Page %s until its token is fixed "
            "(FACEBOOK_PAGE_ACCESS_TOKEN, or manage.py pages connect). sender=%s reason=%s",
            conversation.identity.page_id,
            psid,
            error.reason,
            exc_info=error,
        )
    else:
        logger.error("Reply failed: sender=%s", psid, exc_info=error)


# --- queueing ---------------------------------------------------------------------------------


def _reply_job_enqueue(
    *, message: Message, job_id: str | None = None, delay: int | None = None, sender: str | None = None
) -> str | None:
    """Queue (or, with `delay`, schedule) a reply job; its id, or None when Redis is down."""
    sender = sender or _psid(message.conversation)
    queue = queue_default()
    options = {"job_id": job_id, "retry": _reply_retry(), "job_timeout": llm_job_timeout()}
    try:
        if delay:
            job = queue.enqueue_in(timedelta(seconds=delay), REPLY_JOB, message.pk, **options)
        else:
            job = queue.enqueue(REPLY_JOB, message.pk, **options)
    except RedisError:
        logger.warning(
            "Could not queue reply job (Redis unavailable; the recovery sweep will): sender=%s message=%s",
            sender,
            message.pk,
            exc_info=True,
        )
        return None
    logger.info("Queued reply job: sender=%s job=%s", sender, job.id)
    return job.id


def _reply_retry() -> Retry:
    return Retry(max=len(settings.REPLY_RETRY_INTERVALS), interval=settings.REPLY_RETRY_INTERVALS)


def llm_job_timeout() -> int:
    """The timeout of a job that asks the LLM: the queue's own, and whatever it may wait for
    Groq's budget on top of it."""
    return (
        settings.RQ_QUEUES[QUEUE_NAME].get("DEFAULT_TIMEOUT", Queue.DEFAULT_TIMEOUT)
        + settings.REPLY_MAX_WAIT_SECONDS
    )


def _reply_job_id(message: Message) -> str:
    # One id per message, so the sweep can tell whether its job is still alive.
    return f"reply-{message.pk}"


def _job_status(job_id: str) -> JobStatus | None:
    try:
        return Job.fetch(job_id, connection=redis_connection()).get_status()
    except NoSuchJobError:
        return None


def _conversation_lock(conversation_id: int) -> Lock:
    # Held for one LLM call and a few sends (stretched while it waits for Groq's budget);
    # expires by itself if the worker is killed.
    return redis_connection().lock(
        f"replies:conversation:{conversation_id}",
        timeout=settings.GROQ_TIMEOUT_SECONDS + settings.REPLY_LOCK_MARGIN_SECONDS,
    )


def _psid(conversation: Conversation) -> str:
    return conversation.identity.external_id
