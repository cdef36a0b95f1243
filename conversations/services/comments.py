"""Comments into conversations: a new comment on a Page's post (Facebook) or on its Instagram
account's media gets one private reply, written by the LLM, in the commenter's inbox; with
COMMENT_PUBLIC_REPLY set, also one public reply under it. COMMENT_REPLIES turns it on.

Stored before the webhook's 200 (conversations.services.inbound calls `comment_receive` in its
transaction) and deduplicated by comment id, as messages are by mid. What gets nothing:
- not stored: every comment while COMMENT_REPLIES is off; edits, removals and Meta's other
  verbs (they are about a comment, not a new one); the Page's own comments, which are also
  staff replying as the Page and the service's own public replies; comments of a person
  forgotten since;
- stored as ignored, with why, for staff to see: comments made more than 7 days before they
  arrive (Meta allows no private reply then), with no text, without one of COMMENT_KEYWORDS, or
  over their author's rate limit (FACEBOOK_RATE_LIMIT_MESSAGES_PER_MINUTE, shared on Instagram
  with their direct messages); and those still waiting for their reply when COMMENT_REPLIES is
  turned off.

A job (queued once the comment is committed; re-queued by the recovery sweep) writes the reply
from the comment, the post's text (cached per post), the Page's knowledge and system prompt.
It is stored before it is sent, so re-running the job (RQ's retries, the sweep) sends the stored
reply and never asks the LLM again; Meta itself refuses a second private reply to a comment.
When the model hands over, the private reply is the handoff message and staff are alerted
naming the comment. Once Meta accepts it, the private reply is also a message of the person's
conversation (created then), where their answers arrive: on Facebook the one with the PSID Meta
answered with, on Instagram the one with the commenter's IGSID.

Meta's refusals of a private reply (messenger.errors.CommentUnavailableError: already answered,
too old, deleted) are recorded on the comment and never retried.
"""

import functools
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone
from redis.exceptions import LockError, RedisError
from redis.lock import Lock
from rq import Retry

from conversations.alerts import AlertKind, alert_raise
from conversations.insights.metrics import COMMENTS_RECEIVED, PRIVATE_REPLIES_SENT
from conversations.knowledge.search import knowledge_relevant
from conversations.llm import Completion, TransientLLMError, llm_complete
from conversations.models import ChannelIdentity, Comment, Contact, Conversation, Handoff, Message
from conversations.pages import PageInfo, PageNotConnectedError, pages_current
from conversations.prompts import COMMENT_REPLY_INSTRUCTIONS, comment_details, prompt_build
from conversations.queues import queue_default, redis_connection
from conversations.selectors import comments_needing_reply_job, system_prompt_current, tombstone_covers
from conversations.services.conversations import conversation_get_or_create, conversation_touch
from conversations.services.delivery import error_description, message_character_limit, page_token_refused
from conversations.services.handoff import handoff_message, handoff_record
from conversations.services.ratelimit import rate_limit_allows
from conversations.services.replies import jobs_requeue, llm_job_timeout
from conversations.text import text_storable
from messenger.errors import (
    DeliveryError,
    InvalidTokenError,
    RecipientUnreachableError,
    TransientDeliveryError,
)
from messenger.events import CommentEvent
from messenger.graph import OUR_METADATA_MARKER, SentMessage, split_message

logger = logging.getLogger(__name__)

REPLY_JOB = "conversations.jobs.comment_reply"
# Meta takes a private reply within 7 days of the comment.
MAX_AGE = timedelta(days=7)
# A post's text hardly changes while people comment on it: read once an hour at most.
POST_TEXT_CACHE_SECONDS = 3600
_AUTHOR_NAME_MAX_CHARS = Comment._meta.get_field("author_name").max_length
# How much of a comment an alert quotes.
_ALERT_QUOTE_CHARS = 200
# Why a stored comment is not answered: (code, sentence for staff).
TOO_OLD = ("too_old", "Made more than 7 days before it arrived: Meta allows no private reply.")
NO_TEXT = ("no_text", "Nothing to answer: the comment has no text.")
NO_KEYWORD = ("no_keyword", "Contains none of COMMENT_KEYWORDS.")
TURNED_OFF = ("turned_off", "COMMENT_REPLIES was turned off before its reply was written.")
RATE_LIMITED = (
    "rate_limited",
    "Over the person's rate limit (FACEBOOK_RATE_LIMIT_MESSAGES_PER_MINUTE): not answered.",
)


def comment_receive(*, event: CommentEvent, page_id: str, raw: object) -> Comment | None:
    """Store a new comment on Page `page_id` (on Instagram, the Page the account is linked to), in
    the caller's transaction; its reply job is queued once that commits. None when it is not
    stored: see the module's docstring. `raw` is the event made storable."""
    if settings.COMMENT_REPLIES != "on":
        logger.debug("Ignored a comment: COMMENT_REPLIES is not on")
        return None
    if event.verb != "add":
        logger.debug("Ignored a comment's %r: only new comments are answered", event.verb)
        return None
    if event.author_id == event.page_id:
        logger.debug("Ignored the Page's own comment: comment=%s", event.comment_id)
        return None
    if tombstone_covers(
        channel=event.platform,
        page_id=page_id,
        psid=event.author_id,
        external_id=event.comment_id,
        sent_at=event.timestamp,
    ):
        # Without the author's id: they asked for it to be deleted, logs included.
        logger.info("Ignored a comment of a person who was forgotten since it was made")
        return None
    comment = Comment(
        page_id=page_id,
        platform=event.platform,
        comment_id=event.comment_id,
        post_id=event.post_id or "",
        parent_id=event.parent_id or "",
        author_id=event.author_id,
        author_name=text_storable(event.author_name or "")[:_AUTHOR_NAME_MAX_CHARS],
        text=text_storable(event.text or ""),
        commented_at=event.timestamp,
        status=Comment.Status.RECEIVED,
        raw=raw,
    )
    _ignore_when(comment, _ignored_why(comment))
    try:
        # A savepoint, so a comment stored already fails this insert and not the whole delivery.
        with transaction.atomic():
            comment.save(force_insert=True)
    except IntegrityError:
        if not Comment.objects.filter(comment_id=comment.comment_id).exists():
            raise
        logger.info("Ignored a comment already stored: comment=%s", comment.comment_id)
        return None
    # Counted only once stored, so a redelivered comment does not use up its author's window.
    if comment.status == Comment.Status.RECEIVED and not rate_limit_allows(
        sender=f"{page_id}:{comment.author_id}"
    ):
        _ignore_when(comment, RATE_LIMITED)
        comment.save(update_fields=["status", "reason_code", "reason"])
    transaction.on_commit(COMMENTS_RECEIVED.labels(channel=comment.platform).inc, robust=True)
    if comment.status == Comment.Status.RECEIVED:
        transaction.on_commit(functools.partial(comment_reply_schedule, comment=comment), robust=True)
    logger.info(
        "Comment stored: comment=%s status=%s%s",
        comment.comment_id,
        comment.status,
        f" ({comment.reason_code})" if comment.reason_code else "",
    )
    return comment


def _ignored_why(comment: Comment) -> tuple[str, str] | None:
    if comment.commented_at < timezone.now() - MAX_AGE:
        return TOO_OLD
    if not comment.text.strip():
        return NO_TEXT
    keywords = [keyword.casefold() for keyword in settings.COMMENT_KEYWORDS]
    if keywords and not any(keyword in comment.text.casefold() for keyword in keywords):
        return NO_KEYWORD
    return None


def _ignore_when(comment: Comment, why: tuple[str, str] | None) -> None:
    if why is not None:
        comment.status = Comment.Status.IGNORED
        comment.reason_code, comment.reason = why


def comment_reply_schedule(*, comment: Comment) -> str | None:
    """Queue the reply job of a stored comment; its id, or None when Redis is down (the recovery
    sweep queues it later). Call it once the comment is committed."""
    return _job_enqueue(comment_pk=comment.pk, job_id=_job_id(comment.pk))


def comment_reply_produce(*, comment_pk: int, final_attempt: bool) -> None:
    """What the reply job does for one comment: write its private reply (once), send it, then post
    the public reply, each step only when the one before is done (see the module's docstring)."""
    comment = Comment.objects.filter(pk=comment_pk).first()
    if comment is None:
        return  # its author was forgotten meanwhile
    lock = _comment_lock(comment_pk)
    if not lock.acquire(blocking=False):
        return  # another run of this job is at it, and finishes what is left
    try:
        comment.refresh_from_db()
        _comment_answer(comment=comment, lock=lock, final_attempt=final_attempt)
    finally:
        try:
            lock.release()
        except LockError:
            logger.warning("Comment lock expired before the reply finished: comment=%s", comment.comment_id)


def comments_sweep() -> int:
    """Re-queue the jobs of comments whose reply should have happened by now (Redis was down when
    they arrived, a worker died mid-job); the number queued. Safe from several workers at once."""
    now = timezone.now()
    overdue = comments_needing_reply_job(
        stale_before=now - timedelta(seconds=settings.REPLY_SWEEP_GRACE_SECONDS), since=now - MAX_AGE
    )
    queued = jobs_requeue(
        items=overdue,
        job_id=_job_id,
        enqueue=lambda comment_pk, job_id: _job_enqueue(comment_pk=comment_pk, job_id=job_id),
        in_hand=lambda comment_pk: _comment_lock(comment_pk).locked(),
    )
    if queued:
        logger.info("Recovery sweep re-queued %d comment reply job(s)", queued)
    return queued


# --- the job's work, holding the comment's lock -----------------------------------------------


def _comment_answer(*, comment: Comment, lock: Lock, final_attempt: bool) -> None:
    try:
        page = pages_current().get(page_id=comment.page_id)
        if page is None:
            raise PageNotConnectedError(
                f"Page {comment.page_id} is not connected: its comments are not answered."
            )
        if comment.status == Comment.Status.RECEIVED and settings.COMMENT_REPLIES != "on":
            # The operator's switch holds for the comments still waiting too.
            Comment.objects.filter(pk=comment.pk, status=Comment.Status.RECEIVED).update(
                status=Comment.Status.IGNORED, reason_code=TURNED_OFF[0], reason=TURNED_OFF[1]
            )
            return
        if comment.status == Comment.Status.RECEIVED:
            _private_reply_write(comment=comment, page=page, lock=lock)
            # The LLM call may have used most of the lock's time; the sends get a full period.
            lock.reacquire()
        if comment.status == Comment.Status.SENDING:
            _private_reply_send(comment=comment, page=page)
        if comment.public_reply_status == Comment.PublicReply.PENDING:
            _public_reply_post(comment=comment, page=page)
    except (TransientLLMError, TransientDeliveryError, LockError) as error:
        if not final_attempt:
            logger.warning("Comment reply will be retried: comment=%s reason=%s", comment.comment_id, error)
            raise
        _comment_give_up(comment=comment, error=error)
    except Exception as error:  # permanent errors, and bugs: retrying cannot help
        _comment_give_up(comment=comment, error=error)


def _private_reply_write(*, comment: Comment, page: PageInfo, lock: Lock) -> None:
    """Ask the LLM for the private reply and store it (with the public reply to post after it),
    unless another run stored one meanwhile."""
    query = Message(
        role=Message.Role.CLIENT,
        text=comment.text,
        details=comment_details(post_text=_post_text(comment=comment, page=page)),
    )
    articles = knowledge_relevant(query=[query], history=[], page_id=page.page_id)
    prompt = prompt_build(
        system_prompt=f"{page.system_prompt or system_prompt_current()}\n\n{COMMENT_REPLY_INSTRUCTIONS}",
        knowledge=articles,
        history=[],
        query=[query],
        knowledge_max_chars=settings.KNOWLEDGE_MAX_CHARS,
        message_max_chars=settings.LLM_MESSAGE_MAX_CHARS,
        max_chars=settings.LLM_PROMPT_MAX_CHARS,
    )
    completion = llm_complete(
        prompt=prompt,
        waiter=f"comment:{comment.pk}",
        waiting_since=comment.received_at.timestamp(),
        before_wait=lambda seconds: lock.extend(
            seconds + settings.REPLY_LOCK_MARGIN_SECONDS, replace_ttl=True
        ),
    )
    text = (
        completion.text
        if completion.handoff_reason is None
        else handoff_message(page=page, at=timezone.now())
    )
    public_text = settings.COMMENT_PUBLIC_REPLY
    with transaction.atomic():
        written = Comment.objects.filter(pk=comment.pk, status=Comment.Status.RECEIVED).update(
            status=Comment.Status.SENDING,
            reply_text=_one_message(text, comment=comment),
            reply_llm=_llm_facts(completion),
            handoff_reason=completion.handoff_reason or "",
            public_reply_text=public_text,
            public_reply_status=Comment.PublicReply.PENDING if public_text else Comment.PublicReply.NONE,
        )
        if written:
            comment.knowledge_articles.set(articles)
    comment.refresh_from_db()


def _one_message(text: str, *, comment: Comment) -> str:
    """`text` as the one message a private reply is: cut at a paragraph, sentence or word that fits
    the channel's limit (Messenger 2,000 characters, Instagram 1,000), the rest left out."""
    limit = message_character_limit(channel=comment.platform)
    if len(text) <= limit:
        return text
    logger.warning(
        "Private reply cut to %d characters: only one message may answer a comment=%s",
        limit,
        comment.comment_id,
    )
    return split_message(text, limit=limit)[0]


def _llm_facts(completion: Completion) -> dict[str, object]:
    return {
        "llm_model": completion.model,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "llm_latency_ms": completion.latency_ms,
    }


def _post_text(*, comment: Comment, page: PageInfo) -> str:
    """The text of the post (or media) the comment is on, "" when Graph gives none; cached per post.

    A failure leaves it out: the reply is written from the comment alone.
    """
    if not comment.post_id:
        return ""
    key = f"comments:post:{comment.platform}:{comment.post_id}"
    try:
        cached = cache.get(key)
    except RedisError:
        cached = None
    if cached is not None:
        return cached
    try:
        text = page.graph_client().post_text_get(post_id=comment.post_id, platform=comment.platform)
    except DeliveryError as error:
        logger.warning(
            "Post text not read, replying without it: post=%s reason=%s", comment.post_id, error.reason
        )
        return ""
    try:
        cache.set(key, text, POST_TEXT_CACHE_SECONDS)
    except RedisError:
        logger.warning("Post text not cached: the cache is unavailable")
    return text


def _private_reply_send(*, comment: Comment, page: PageInfo) -> None:
    """Send the stored private reply; once Meta accepted it, record it and file it in the person's
    conversation (handing them over when the model asked to)."""
    sent = page.graph_client().private_reply_send(
        comment_id=comment.comment_id, text=comment.reply_text, metadata=OUR_METADATA_MARKER
    )
    now = timezone.now()
    with transaction.atomic():
        conversation = _reply_file(comment=comment, sent=sent, at=now)
        Comment.objects.filter(pk=comment.pk).update(
            status=Comment.Status.ANSWERED,
            reply_mid=sent.message_id,
            reply_sent_at=now,
            conversation=conversation,
        )
    PRIVATE_REPLIES_SENT.labels(channel=comment.platform).inc()
    comment.refresh_from_db()


def _reply_file(*, comment: Comment, sent: SentMessage, at: datetime) -> Conversation | None:
    """The private reply as a message of the commenter's conversation (created for a person who
    never wrote); None when Meta did not say who they are (their answers then start one)."""
    psid = comment.author_id if comment.platform == ChannelIdentity.Channel.INSTAGRAM else sent.recipient_id
    if not psid:
        logger.info(
            "Private reply not filed in a conversation: Meta named no recipient, comment=%s",
            comment.comment_id,
        )
        return None
    conversation = conversation_get_or_create(
        channel=comment.platform, page_id=comment.page_id, external_id=psid
    )
    if comment.author_name:  # the name the comment showed, until their profile gives one
        Contact.objects.filter(pk=conversation.identity.contact_id, name="").update(name=comment.author_name)
    handed_over = bool(comment.handoff_reason)
    details = comment_details(comment_text=comment.text)
    if handed_over:
        details[Message.HANDOFF_NOTICE] = True
    if not Message.objects.filter(external_id=sent.message_id).exists():
        message = Message.objects.create(
            conversation=conversation,
            role=Message.Role.SYSTEM if handed_over else Message.Role.AI,
            status=Message.Status.SENT,
            text=comment.reply_text,
            external_id=sent.message_id,
            details=details,
            created_at=at,
            sent_at=at,
            **({} if handed_over else comment.reply_llm or {}),
        )
        if not handed_over:
            message.knowledge_articles.set(comment.knowledge_articles.all())
    conversation_touch(conversation_id=conversation.pk, at=at, preview=comment.reply_text)
    if handed_over:
        handoff_record(
            conversation=conversation,
            reason=comment.handoff_reason,
            trigger=Handoff.Trigger.MODEL,
            alert_reason=_handoff_alert_reason(comment),
        )
    return conversation


def _public_reply_post(*, comment: Comment, page: PageInfo) -> None:
    reply_id = page.graph_client().comment_reply(
        comment_id=comment.comment_id, text=comment.public_reply_text, platform=comment.platform
    )
    Comment.objects.filter(pk=comment.pk).update(
        public_reply_status=Comment.PublicReply.POSTED, public_reply_id=reply_id
    )
    comment.refresh_from_db()


def _comment_give_up(*, comment: Comment, error: Exception) -> None:
    """The final failure, recorded on the comment: its private reply (nothing was sent), or its public
    reply (the private one went). Staff are alerted when they can do something about it: a
    handover the model asked for, a reply that failed for another reason than Meta's refusal.
    """
    code, reason = error_description(error=error)
    comment.refresh_from_db()
    page = pages_current().get(page_id=comment.page_id)
    if comment.status in (Comment.Status.RECEIVED, Comment.Status.SENDING):
        logger.log(
            logging.WARNING if isinstance(error, RecipientUnreachableError) else logging.ERROR,
            "Private reply not sent: comment=%s reason=%s",
            comment.comment_id,
            reason,
            exc_info=not isinstance(error, DeliveryError),
        )
        # Not over a success: a run that lost its lock may fail against the one that sent it.
        Comment.objects.filter(
            pk=comment.pk, status__in=[Comment.Status.RECEIVED, Comment.Status.SENDING]
        ).update(
            status=Comment.Status.FAILED,
            reason_code=code,
            reason=reason,
            public_reply_status=Comment.PublicReply.NONE,
        )
        if isinstance(error, InvalidTokenError):
            if page is not None:
                page_token_refused(page=page, reason=reason)
        elif comment.handoff_reason:
            alert_raise(
                kind=AlertKind.HANDOFF,
                reason=f"{_handoff_alert_reason(comment)}\nThe private reply was not sent: {reason}",
                comment_id=comment.pk,
            )
        elif not isinstance(error, RecipientUnreachableError):
            alert_raise(
                kind=AlertKind.REPLY_FAILED,
                reason=f"Private reply to a comment: {reason}",
                comment_id=comment.pk,
            )
    elif comment.public_reply_status == Comment.PublicReply.PENDING:
        logger.error("Public reply not posted: comment=%s reason=%s", comment.comment_id, reason)
        Comment.objects.filter(pk=comment.pk, public_reply_status=Comment.PublicReply.PENDING).update(
            public_reply_status=Comment.PublicReply.FAILED, public_reply_error=reason
        )
        if isinstance(error, InvalidTokenError) and page is not None:
            page_token_refused(page=page, reason=reason, conversation_id=comment.conversation_id)


def _handoff_alert_reason(comment: Comment) -> str:
    """The handoff's reason, and the comment it came from, for staff."""
    where = "Instagram post" if comment.platform == ChannelIdentity.Channel.INSTAGRAM else "Facebook post"
    quote = " ".join(comment.text.split())
    if len(quote) > _ALERT_QUOTE_CHARS:
        quote = quote[: _ALERT_QUOTE_CHARS - 1] + "…"
    return f'{comment.handoff_reason}\nFrom a comment on the {where} {comment.post_id}: "{quote}"'


# --- queueing ---------------------------------------------------------------------------------


def _job_enqueue(*, comment_pk: int, job_id: str | None) -> str | None:
    retry = Retry(max=len(settings.REPLY_RETRY_INTERVALS), interval=settings.REPLY_RETRY_INTERVALS)
    try:
        job = queue_default().enqueue(
            REPLY_JOB, comment_pk, job_id=job_id, retry=retry, job_timeout=llm_job_timeout()
        )
    except RedisError:
        logger.warning(
            "Could not queue comment reply job (Redis unavailable; the recovery sweep will): comment=%s",
            comment_pk,
            exc_info=True,
        )
        return None
    logger.info("Queued comment reply job: comment=%s job=%s", comment_pk, job.id)
    return job.id


def _job_id(comment_pk: int) -> str:
    # One id per comment, so the sweep can tell whether its job is still alive.
    return f"comment-{comment_pk}"


def _comment_lock(comment_pk: int) -> Lock:
    # Held for one LLM call and two Graph calls; expires by itself if the worker is killed.
    return redis_connection().lock(
        f"comments:comment:{comment_pk}",
        timeout=settings.GROQ_TIMEOUT_SECONDS + settings.REPLY_LOCK_MARGIN_SECONDS,
    )
