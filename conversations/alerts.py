"""Telling staff when the bot needs them: by email (STAFF_ALERT_EMAILS, through EMAIL_URL) and to a
chat webhook (STAFF_ALERT_WEBHOOK_URL: Slack's and Mattermost's incoming webhooks take `{"text"}`).

Raised on a handoff, a reply that finally failed (to a message, or to a comment), and the Page
token refused. Each alert is delivered by jobs of its own, one per channel, tried again a few
times, so an alert never slows or blocks a reply and a channel that is down does not hold the
other back. The same alert for the same conversation (or comment) is not raised again within a
few minutes; a Page token's, until that token works again.
"""

import enum
import logging
from datetime import timedelta

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse
from redis.exceptions import RedisError
from rq import Retry

from conversations.models import Comment, Conversation
from conversations.queues import queue_default, redis_connection

logger = logging.getLogger(__name__)

DELIVER_JOB = "conversations.jobs.alert_deliver"
REPEAT_AFTER = timedelta(minutes=5)
_WEBHOOK_TIMEOUT_SECONDS = 5
# The subject: the conversation (else the comment), or for a token the Page.
_KEY = "alerts:{kind}:{subject}"


class AlertNotDelivered(Exception):
    """A channel did not take the alert; rq tries it again (ALERT_RETRY_INTERVALS)."""


class AlertKind(enum.StrEnum):
    HANDOFF = "handoff"
    REPLY_FAILED = "reply_failed"
    TOKEN_REFUSED = "token_refused"


_SUBJECTS = {
    AlertKind.HANDOFF: "{contact} needs a person",
    AlertKind.REPLY_FAILED: "A reply to {contact} failed",
    AlertKind.TOKEN_REFUSED: "Facebook refused the access token of {page}",
}


def alert_raise(
    *,
    kind: AlertKind,
    reason: str,
    conversation_id: int | None = None,
    page_id: str | None = None,
    page_name: str | None = None,
    summary: str = "",
    comment_id: int | None = None,
) -> None:
    """Queue the alert's delivery to every channel set up, unless it was raised just before.

    A token's alert is about a Page (`page_id`, named `page_name` in the alert): it is raised
    once per Page, whichever conversation met the refusal. `summary` (a handoff's, by the LLM)
    goes below the reason. An alert about a comment that led to no conversation (its private
    reply was not sent) names the comment (`comment_id`, the Comment's primary key) and links to it.

    Never raises: an alert that cannot be queued (Redis down) is logged, and what it is
    about (a handoff, a failed message) stays visible in the admin.
    """
    channels = [
        channel
        for channel, configured in (
            ("email", settings.STAFF_ALERT_EMAILS),
            ("webhook", settings.STAFF_ALERT_WEBHOOK_URL),
        )
        if configured
    ]
    if not channels:
        return
    # The token's alert stands until the token works again (alert_token_works).
    repeat_after = None if kind is AlertKind.TOKEN_REFUSED else REPEAT_AFTER
    try:
        connection = redis_connection()
        key = _key(
            kind, _subject(kind=kind, conversation_id=conversation_id, page_id=page_id, comment_id=comment_id)
        )
        if not connection.set(key, 1, nx=True, ex=repeat_after):
            return
        queue = queue_default()
        for channel in channels:
            queue.enqueue(
                DELIVER_JOB,
                channel=channel,
                kind=kind.value,
                reason=reason,
                summary=summary,
                conversation_id=conversation_id,
                page_name=page_name,
                comment_id=comment_id,
                retry=Retry(max=len(settings.ALERT_RETRY_INTERVALS), interval=settings.ALERT_RETRY_INTERVALS),
                # The reason may name the person: nothing of it stays in Redis once delivered.
                result_ttl=0,
            )
    except RedisError as error:
        logger.warning("Alert %s not queued (Redis unavailable): %s", kind.value, error)
        return
    logger.info("Alert %s queued for %s: conversation=%s", kind.value, ", ".join(channels), conversation_id)


def alert_token_works(*, page_id: str) -> None:
    """The Page's token works (again): its next refusal is alerted."""
    redis_connection().delete(_key(AlertKind.TOKEN_REFUSED, page_id))


def alert_deliver(
    *,
    channel: str,
    kind: str,
    reason: str,
    conversation_id: int | None,
    final_attempt: bool,
    page_name: str | None = None,
    summary: str = "",
    comment_id: int | None = None,
) -> None:
    """Send one alert to one channel.

    A failure is one log line naming the error's kind and status (never the channel's URL,
    whose path is its secret), then AlertNotDelivered for rq to try again later; on the last
    try it is given up with one error line.
    """
    subject, text = _alert_text(
        kind=AlertKind(kind),
        reason=reason,
        summary=summary,
        conversation_id=conversation_id,
        page_name=page_name,
        comment_id=comment_id,
    )
    try:
        if channel == "email":
            send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, settings.STAFF_ALERT_EMAILS)
        else:
            response = requests.post(
                settings.STAFF_ALERT_WEBHOOK_URL,
                json={"text": slack_escape(f"{subject}\n{text}")},
                timeout=_WEBHOOK_TIMEOUT_SECONDS,
            )
            response.raise_for_status()
    except Exception as error:
        why = _failure_text(error)
        if final_attempt:
            logger.error("Alert %s by %s given up: %s", kind, channel, why)
            return
        logger.warning("Alert %s by %s failed, to be tried again: %s", kind, channel, why)
        # From None: the original error's text may hold the URL, and rq logs the chain.
        raise AlertNotDelivered(f"{channel}: {why}") from None
    logger.info("Alert %s sent by %s: conversation=%s", kind, channel, conversation_id)


def slack_escape(text: str) -> str:
    """`text` as Slack and Mattermost show it literally: `<!channel>` and `<url|label>` links
    from a person's words or the model's reason become plain text (Slack's escaping rules)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _failure_text(error: Exception) -> str:
    """What went wrong, by kind and status only: a requests error's text names the URL."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"{type(error).__name__}, HTTP {error.response.status_code}"
    code = getattr(error, "smtp_code", None)
    return f"{type(error).__name__}, SMTP {code}" if code else type(error).__name__


def _alert_text(
    *,
    kind: AlertKind,
    reason: str,
    summary: str,
    conversation_id: int | None,
    page_name: str | None,
    comment_id: int | None = None,
) -> tuple[str, str]:
    conversation = (
        Conversation.objects.select_related("identity__contact").filter(pk=conversation_id).first()
        if conversation_id
        else None
    )
    comment = Comment.objects.filter(pk=comment_id).first() if comment_id and conversation is None else None
    if comment is not None:
        contact = comment.author_name or "A person who commented"
        url = settings.SITE_URL + reverse("admin:conversations_comment_change", args=[comment.pk])
    elif conversation is None:
        contact, url = "the Page", settings.SITE_URL + reverse("admin:index")
    else:
        contact = str(conversation.identity.contact)
        url = settings.SITE_URL + reverse("admin:conversations_conversation_change", args=[conversation.pk])
    subject = _SUBJECTS[kind].format(contact=contact, page=page_name or "the Page")
    return subject, "\n".join([reason, *([f"Summary: {summary}"] if summary else []), url])


def _subject(
    *, kind: AlertKind, conversation_id: int | None, page_id: str | None, comment_id: int | None
) -> str | int | None:
    """What an alert is about, for not raising it twice: the Page of a token, else the conversation,
    else the comment."""
    if kind is AlertKind.TOKEN_REFUSED:
        return page_id
    if conversation_id is None and comment_id is not None:
        return f"comment-{comment_id}"
    return conversation_id


def _key(kind: AlertKind, subject: int | str | None) -> str:
    return _KEY.format(kind=kind.value, subject=subject or "-")
