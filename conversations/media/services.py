"""Reading what people send before the bot answers: voice messages and images, fetched, kept for
staff and put into words (conversations.media.fetching, .understanding).

The reply job calls media_understand on the messages it is about to answer, before it builds
the prompt. It never raises for a file: one that cannot be fetched or understood is recorded
with why (shown to staff, counted in /metrics) and the prompt says it could not be read. It is
idempotent: an attachment read once is never read again; one whose try failed for a reason
that may pass (a timeout, Groq or the CDN down) is tried again by a later run of the job while
its message still waits, up to MAX_ATTEMPTS; refusals are final.

Files live in Django's default storage (settings.STORAGES, MEDIA_ROOT) and go when the person is
forgotten (media_files_forget) or after MEDIA_RETENTION_DAYS (media_files_expire, hourly); the
transcript or description stays with the message.
"""

import logging
import mimetypes
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from conversations.insights.metrics import MEDIA_UNREADABLE
from conversations.llm import LLMError, TransientLLMError
from conversations.media.fetching import MediaFetchError, media_fetch
from conversations.media.understanding import Understanding, audio_transcribe, image_describe
from conversations.models import Message, MessageAttachment

logger = logging.getLogger(__name__)

# The attachment types put into words: `attachments[i]["type"]` as inbound stores it (a sticker
# is never "image" there).
UNDERSTOOD_KINDS = (MessageAttachment.Kind.AUDIO, MessageAttachment.Kind.IMAGE)
MAX_ATTEMPTS = 3
# All the media work of one reply job stops being started past this: the job has RQ's 180 s
# in all, and the LLM call and the sends come after it.
BUDGET_SECONDS = 90
EXPIRE_BATCH = 500


def attachment_seconds() -> float:
    """The longest one attachment may take: its fetch (whose last read may start just before its
    deadline and last as long again) and one Groq call."""
    return 2 * settings.MEDIA_FETCH_TIMEOUT_SECONDS + settings.GROQ_TIMEOUT_SECONDS


def media_readable(*, message: Message) -> bool:
    """Whether `message` has a voice message or an image for the LLM to read (in words, or as
    one that could not be read): MEDIA_UNDERSTANDING is on and it has one."""
    return settings.MEDIA_UNDERSTANDING and any(
        isinstance(item, dict) and item.get("type") in UNDERSTOOD_KINDS
        for item in (message.attachments if isinstance(message.attachments, list) else [])
    )


def media_understand(*, messages: Iterable[Message], before_each: Callable[[], None] | None = None) -> int:
    """Read every voice message and image of `messages` not read yet; how many were tried.

    `before_each` runs before each file (the reply job extends its lock there by
    attachment_seconds()). Nothing is done when MEDIA_UNDERSTANDING is off.
    """
    if not settings.MEDIA_UNDERSTANDING:
        return 0
    attachments = _attachments_to_read(messages=list(messages))
    deadline = time.monotonic() + BUDGET_SECONDS
    for attachment, url in attachments:
        if time.monotonic() > deadline:
            _failed(
                attachment, code="time_up", reason="No time was left to read it before the reply", final=False
            )
            continue
        if before_each is not None:
            before_each()
        try:
            _attachment_read(attachment, url=url)
        except Exception:  # a bug here must not cost the person their reply
            logger.exception("Reading an attachment failed: attachment=%s", attachment.pk)
            _failed(attachment, code="error", reason="An unexpected error (see the worker's log)")
    return len(attachments)


def media_files_forget(*, messages: QuerySet[Message]) -> None:
    """Delete the files of `messages` once the transaction that deletes them has committed
    (a rollback keeps rows and files together)."""
    names = list(
        MessageAttachment.objects.filter(message__in=messages).exclude(file="").values_list("file", flat=True)
    )
    if names:
        transaction.on_commit(lambda: _files_delete(names), robust=True)


def media_files_expire() -> int:
    """Delete the files kept longer than MEDIA_RETENTION_DAYS (their text stays); how many.

    At most EXPIRE_BATCH a run: the hourly job gets through a backlog in a few runs.
    """
    cutoff = timezone.now() - timedelta(days=settings.MEDIA_RETENTION_DAYS)
    expired = list(
        MessageAttachment.objects.filter(created_at__lt=cutoff)
        .exclude(file="")
        .order_by("created_at")
        .values_list("pk", "file")[:EXPIRE_BATCH]
    )
    _files_delete([name for _, name in expired])
    MessageAttachment.objects.filter(pk__in=[pk for pk, _ in expired]).update(
        file="", file_removed_at=timezone.now()
    )
    if expired:
        logger.info(
            "Removed %d media file(s) kept longer than %d days", len(expired), settings.MEDIA_RETENTION_DAYS
        )
    return len(expired)


def _attachments_to_read(*, messages: list[Message]) -> list[tuple[MessageAttachment, str]]:
    """Each attachment of `messages` still to read, with its URL, in message order; their rows
    are created on the first run (the unique (message, position) keeps a second run from doubling them)."""
    urls: dict[tuple[int, int], str] = {}
    wanted = []
    for message in messages:
        for position, item in enumerate(message.attachments if isinstance(message.attachments, list) else []):
            kind = item.get("type") if isinstance(item, dict) else None
            if kind in UNDERSTOOD_KINDS:
                url = item.get("url")
                urls[(message.pk, position)] = url if isinstance(url, str) else ""
                wanted.append(MessageAttachment(message=message, position=position, kind=kind))
    if not wanted:
        return []
    MessageAttachment.objects.bulk_create(wanted, ignore_conflicts=True)
    pending = MessageAttachment.objects.filter(
        message__in=[message.pk for message in messages],
        state=MessageAttachment.State.PENDING,
        attempts__lt=MAX_ATTEMPTS,
    ).order_by("message__created_at", "message_id", "position")
    return [
        (attachment, urls.get((attachment.message_id, attachment.position), "")) for attachment in pending
    ]


def _attachment_read(attachment: MessageAttachment, *, url: str) -> None:
    """Fetch (unless kept already), keep and put into words one attachment; failures recorded."""
    body = _kept_body(attachment)
    if body is None:
        body = _fetched_body(attachment, url=url)
    if body is None:
        return  # why is recorded
    try:
        understanding = _understanding(attachment, body=body, url=url)
    except LLMError as error:
        _failed(
            attachment,
            code="not_understood",
            reason=error.reason,
            final=not isinstance(error, TransientLLMError),
        )
        return
    attachment.state = MessageAttachment.State.UNDERSTOOD
    attachment.text = understanding.text
    attachment.model = understanding.model
    attachment.latency_ms = understanding.latency_ms
    attachment.attempts += 1
    attachment.error_code = attachment.error_detail = ""
    attachment.understood_at = timezone.now()
    attachment.save()


def _kept_body(attachment: MessageAttachment) -> bytes | None:
    """The file as kept by an earlier try, or None (then it is fetched again)."""
    if not attachment.file:
        return None
    try:
        with default_storage.open(attachment.file.name) as kept:
            return kept.read()
    except OSError:
        logger.warning("A kept media file is missing, fetching it again: attachment=%s", attachment.pk)
        attachment.file = ""
        return None


def _fetched_body(attachment: MessageAttachment, *, url: str) -> bytes | None:
    """The file fetched from `url`, and kept; None when it could not be (and why is recorded)."""
    if not url:
        _failed(attachment, code="no_url", reason="Meta sent no address for the file")
        return None
    try:
        fetched = media_fetch(url=url)
    except MediaFetchError as error:
        _failed(attachment, code=error.code, reason=error.reason, final=not error.transient)
        return None
    attachment.content_type = fetched.content_type[:100]
    attachment.size = len(fetched.body)
    _file_keep(attachment, body=fetched.body)
    return fetched.body


def _understanding(attachment: MessageAttachment, *, body: bytes, url: str) -> Understanding:
    if attachment.kind == MessageAttachment.Kind.AUDIO:
        return audio_transcribe(body=body, content_type=attachment.content_type)
    return image_describe(body=body, content_type=attachment.content_type, url=url)


def _file_keep(attachment: MessageAttachment, *, body: bytes) -> None:
    """Keep the file for staff; a storage that fails loses the file, never the reply."""
    extension = mimetypes.guess_extension(attachment.content_type) or ""
    try:
        attachment.file.save(f"{uuid.uuid4().hex}{extension}", ContentFile(body), save=False)
    except Exception:  # any storage backend's error: S3's, a full disk
        logger.exception("Media file not kept: attachment=%s", attachment.pk)
        attachment.file = ""


def _failed(attachment: MessageAttachment, *, code: str, reason: str, final: bool = True) -> None:
    """Record why `attachment` could not be read; `final` unless a later try may succeed."""
    attachment.attempts += 1
    if final or attachment.attempts >= MAX_ATTEMPTS:
        attachment.state = MessageAttachment.State.UNREADABLE
    attachment.error_code = code
    attachment.error_detail = reason[: MessageAttachment._meta.get_field("error_detail").max_length]
    attachment.save()
    MEDIA_UNREADABLE.labels(kind=attachment.kind, reason=code).inc()
    logger.warning(
        "Could not read %s: attachment=%s reason=%s%s",
        "a voice message" if attachment.kind == MessageAttachment.Kind.AUDIO else "an image",
        attachment.pk,
        reason,
        "" if attachment.state == MessageAttachment.State.UNREADABLE else " (tried again while it waits)",
    )


def _files_delete(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:  # any storage backend's error; the next forget or expiry cannot retry it
            logger.exception("Media file not deleted: %s", name)
