"""Store what people send the Page: messages, postbacks, receipts and reactions.

Takes the typed events of messenger.events (never Meta's JSON) and turns them into rows,
all in one transaction, so an acknowledged webhook is a stored one (DESIGN rule 5).
Reply jobs are enqueued only once that transaction has committed.

Dedup: a Messenger `mid` is Message.external_id, unique in the database, so the database
decides, also between twins racing from two workers: a message is inserted with ON CONFLICT
DO NOTHING, and one whose mid is already stored is simply not inserted, nor answered (rule 4).
"""
import functools
import logging
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce

from conversations.models import ChannelIdentity, Conversation, Message
from conversations.ratelimit import RateLimitVerdict, rate_limit_hit, rate_limit_refund
from conversations.selectors import OUTGOING_ROLES, RATE_LIMIT_NOTICE_PENDING
from conversations.services.conversations import conversation_bot_pause, conversation_get_or_create
from conversations.services.replies import reply_schedule
from messenger.events import (
    Attachment,
    DeliveryEvent,
    Event,
    MessageEvent,
    PostbackEvent,
    ReactionEvent,
    ReadEvent,
    ReferralEvent,
)
from messenger.graph import OUR_METADATA_MARKER

logger = logging.getLogger(__name__)

# PostgreSQL refuses NUL in text and lone UTF-16 surrogates (which JSON can smuggle in).
_SURROGATES = re.compile("[\ud800-\udfff]")
# Meta's ids are short printable ASCII; anything else cannot be one (nor fit the columns).
_ID = re.compile(r"[!-~]+")
_ID_MAX_LENGTH = {"page_id": 64, "psid": 64, "mid": 255}
# Meta's events are a few levels deep; deeper junk is cut off so saving it cannot recurse away.
_RAW_MAX_DEPTH = 32
_PREVIEW_LENGTH = Conversation._meta.get_field("last_message_text").max_length
_REACTION_LENGTH = Message._meta.get_field("reaction").max_length


class _UnstorableEvent(ValueError):
    """An event whose ids cannot be Meta's; it is skipped and logged, the batch goes on."""


def inbound_events_store(*, events: Sequence[Event]) -> None:
    """Store every event of one webhook delivery in one transaction.

    New client messages get a reply job once the transaction commits, unless the sender is
    over the rate limit. Nothing is answered twice, and nothing but a database outage raises.
    """
    if len(events) == 1 and _client_message_store_in_one_statement(event=events[0]):
        return
    stored: dict[int, Message] = {}
    with transaction.atomic():
        for event in events:
            try:
                message = _HANDLERS[type(event)](event)
            except _UnstorableEvent as error:
                logger.warning("Skipped %s from page %r: %s", type(event).__name__, event.page_id, error)
                continue
            if message is not None:
                stored[message.conversation_id] = message
        # In id order, so two deliveries touching the same conversations cannot deadlock.
        for conversation_id in sorted(stored):
            _conversation_touch(message=stored[conversation_id])


def _message_receive(event: MessageEvent) -> Message | None:
    if event.is_echo:
        return _echo_receive(event)
    return _client_message_store(event)


def _client_message(event: MessageEvent | PostbackEvent) -> Message:
    """The unsaved row for something a person sent: a message (not an echo) or a postback."""
    if isinstance(event, MessageEvent):
        text, reply_to_mid = event.text, event.reply_to_mid
        attachments = [_attachment_json(attachment) for attachment in event.attachments]
        details = {"quick_reply_payload": event.quick_reply_payload, "reply_to_mid": event.reply_to_mid}
    else:
        # The button's title is what the person saw and tapped, so it is what gets answered.
        text, reply_to_mid, attachments = event.title or event.payload, None, []
        details = {"postback_payload": event.payload, "referral": event.referral}
    return Message(
        role=Message.Role.CLIENT,
        status=Message.Status.RECEIVED,
        external_id=_id(event.mid, kind="mid") if event.mid else None,
        text=_storable_text(text or ""),
        attachments=_storable_json(attachments),
        details=_storable_json({key: value for key, value in details.items() if value is not None}),
        reply_to=_message_by_mid(mid=reply_to_mid),
        sent_at=event.timestamp,
        raw=_storable_json(event.raw),
    )


def _client_message_store(event: MessageEvent | PostbackEvent) -> Message | None:
    message = _client_message(event)
    if not _message_insert(message=message, event=event):
        return None
    if event.channel == "standby":
        # Another app (usually the Page inbox) has thread control: someone else is answering.
        conversation_bot_pause(conversation=message.conversation, by=None)
    # Counted only once stored, so a redelivered mid does not use up the sender's window.
    verdict = rate_limit_hit(sender=_sender(event=event))
    _message_rate_limit(message=message, verdict=verdict)
    if verdict is not RateLimitVerdict.ALLOWED:
        message.save(update_fields=["status", "details"])
    _reply_schedule_on_commit(message=message, verdict=verdict, event=event)
    return message


def _client_message_store_in_one_statement(*, event: Event) -> bool:
    """One message from someone who wrote before, stored in one statement; False when it was not.

    On PostgreSQL the insert and the conversation's last-activity update are one
    data-modifying statement, run outside a transaction: a single statement is atomic and
    committed when it returns, which spares BEGIN and COMMIT and the UPDATE's own round trip
    (bench/ingest: see docs/bench-ingest.md). Reply jobs are still queued only after the
    commit (on_commit runs them at once in autocommit), and the 200 still goes out after it.

    The rate-limit verdict is needed before that statement, so that an over-limit message is
    stored already marked (a reply job must never see it unmarked). When nothing was stored
    (a redelivered mid, or a sender without a conversation yet) the hit is given back, and
    inbound_events_store takes its usual path, which counts only stored messages. Everything
    else (batches, echoes, standby, SQLite) takes that path too. As there, a database error
    leaves the hit counted: one message of the window, during an outage.
    """
    if (
        connection.vendor != "postgresql"
        or not isinstance(event, MessageEvent | PostbackEvent)
        or (isinstance(event, MessageEvent) and event.is_echo)
        or event.channel == "standby"
    ):
        return False
    try:
        message = _client_message(event)
        page_id, psid = _id(event.page_id, kind="page_id"), _id(event.psid, kind="psid")
    except _UnstorableEvent:
        return False  # the usual path logs and skips it
    verdict = rate_limit_hit(sender=_sender(event=event))
    _message_rate_limit(message=message, verdict=verdict)
    if not _message_insert_into_existing_conversation(
        message=message, page_id=page_id, psid=psid, touch=True
    ):
        rate_limit_refund(sender=_sender(event=event), verdict=verdict)
        return False
    _reply_schedule_on_commit(message=message, verdict=verdict, event=event)
    return True


def _sender(*, event: Event) -> str:
    return f"{event.page_id}:{event.psid}"


def _message_rate_limit(*, message: Message, verdict: RateLimitVerdict) -> None:
    if verdict is RateLimitVerdict.ALLOWED:
        return
    message.status = Message.Status.RATE_LIMITED
    if verdict is RateLimitVerdict.FIRST_OVER_LIMIT:
        # The reply job sends this one short notice and marks it "sent" (DESIGN rule 9).
        message.details["rate_limit_notice"] = RATE_LIMIT_NOTICE_PENDING


def _reply_schedule_on_commit(*, message: Message, verdict: RateLimitVerdict, event: Event) -> None:
    if verdict is RateLimitVerdict.ALLOWED:
        transaction.on_commit(
            functools.partial(reply_schedule, message=message, sender=event.psid), robust=True
        )
    else:
        logger.info("Rate-limited message: sender=%s mid=%s", event.psid, message.external_id)


def _echo_receive(event: MessageEvent) -> Message | None:
    """A copy of something the Page sent: ours is ignored, anyone else's is staff taking over."""
    if event.metadata == OUR_METADATA_MARKER or (
        settings.FACEBOOK_APP_ID and str(event.app_id) == settings.FACEBOOK_APP_ID
    ):
        return None
    message = Message(
        role=Message.Role.STAFF,
        status=Message.Status.SENT,
        external_id=_id(event.mid, kind="mid"),
        text=_storable_text(event.text or ""),
        attachments=_storable_json([_attachment_json(attachment) for attachment in event.attachments]),
        sent_at=event.timestamp,
        raw=_storable_json(event.raw),
    )
    if not _message_insert(message=message, event=event):
        return None
    conversation_bot_pause(conversation=message.conversation, by=None)
    logger.info("Staff replied from another app; bot paused: sender=%s mid=%s", event.psid, event.mid)
    return message


def _delivery_record(event: DeliveryEvent) -> None:
    mids = [mid for mid in event.mids if _ID.fullmatch(mid)]
    _outgoing_messages(event=event).filter(
        Q(external_id__in=mids) | Q(sent_at__lte=event.watermark), delivered_at__isnull=True
    ).update(delivered_at=event.timestamp)


def _read_record(event: ReadEvent) -> None:
    # Read implies delivered, whether or not the delivery receipt came first.
    _outgoing_messages(event=event).filter(sent_at__lte=event.watermark, read_at__isnull=True).update(
        read_at=event.timestamp, delivered_at=Coalesce("delivered_at", event.timestamp)
    )


def _reaction_record(event: ReactionEvent) -> None:
    reaction = (event.emoji or event.reaction or "") if event.action == "react" else ""
    Message.objects.filter(
        external_id=_id(event.mid, kind="mid"), conversation__identity__in=_identity(event=event)
    ).update(reaction=_storable_text(reaction)[:_REACTION_LENGTH])


def _referral_ignore(event: ReferralEvent) -> None:
    # Nothing to answer and nowhere to keep it; a postback's referral is kept on that message.
    logger.info("Ignored referral: sender=%s source=%s ref=%s", event.psid, event.source, event.ref)


_HANDLERS: dict[type[Event], Callable[[Any], Message | None]] = {
    MessageEvent: _message_receive,
    PostbackEvent: _client_message_store,
    DeliveryEvent: _delivery_record,
    ReadEvent: _read_record,
    ReactionEvent: _reaction_record,
    ReferralEvent: _referral_ignore,
}


def _message_insert(*, message: Message, event: Event) -> bool:
    """Store `message` in the conversation with the event's sender; False when its mid is already stored.

    Someone who wrote before costs one statement; their first message, or a redelivery,
    finds no row inserted and takes a second look.
    """
    page_id, psid = _id(event.page_id, kind="page_id"), _id(event.psid, kind="psid")
    if _message_insert_into_existing_conversation(message=message, page_id=page_id, psid=psid):
        return True
    conversation_get_or_create(page_id=page_id, external_id=psid)
    if _message_insert_into_existing_conversation(message=message, page_id=page_id, psid=psid):
        return True
    logger.info("Ignored a message already stored: sender=%s mid=%s", psid, message.external_id)
    return False


# Raw SQL because it runs for every message: the ORM's lookup and create cost about 0.9 ms of
# Python, this statement 0.1 ms. It names the columns an inbound message sets (the
# conversation comes from the SELECT); the others are NULL or have a database default, as a
# test checks, and passing them too cost a fifth of the statement's Python (bench/ingest).
# Runs on PostgreSQL and on SQLite >= 3.35.
_INSERT_FIELDS = [
    Message._meta.get_field(name)
    for name in ("role", "status", "external_id", "text", "attachments", "details", "reply_to", "raw",
                 "created_at", "sent_at")
]
_INSERT_SQL = f"""
    INSERT INTO {Message._meta.db_table} (conversation_id, {", ".join(f.column for f in _INSERT_FIELDS)})
    SELECT conversation.id, {", ".join(["%s"] * len(_INSERT_FIELDS))}
    FROM {Conversation._meta.db_table} conversation
    JOIN {ChannelIdentity._meta.db_table} identity ON identity.id = conversation.identity_id
    WHERE identity.channel = %s AND identity.page_id = %s AND identity.external_id = %s
    ON CONFLICT DO NOTHING
    RETURNING id, conversation_id
"""


# The same insert and the conversation's last-activity update as one statement (PostgreSQL
# only: SQLite has no data-modifying WITH). It locks one conversation row, so it cannot
# deadlock with a batch touching several.
_TOUCH_UPDATE = f"UPDATE {Conversation._meta.db_table} SET last_activity_at = %s, last_message_text = %s"
_INSERT_AND_TOUCH_SQL = f"""
    WITH new AS ({_INSERT_SQL})
    {_TOUCH_UPDATE}
    FROM new WHERE {Conversation._meta.db_table}.id = new.conversation_id
    RETURNING new.id, new.conversation_id
"""


def _message_insert_into_existing_conversation(
    *, message: Message, page_id: str, psid: str, touch: bool = False
) -> bool:
    """Insert `message` unless the conversation does not exist yet or the mid is already stored.

    ON CONFLICT can only be the unique mid (the id is the database's): a twin racing from
    another worker waits on it until the first commits, and then inserts nothing. With
    `touch`, the conversation's last activity is updated in the same statement.
    """
    values = [field.get_db_prep_save(getattr(message, field.attname), connection) for field in _INSERT_FIELDS]
    params = [*values, ChannelIdentity.Channel.MESSENGER, page_id, psid]
    if touch:
        params += _touch_values(message=message)
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_AND_TOUCH_SQL if touch else _INSERT_SQL, params)
        row = cursor.fetchone()
    if row is None:
        return False
    message.pk, message.conversation_id = row
    message._state.adding, message._state.db = False, connection.alias  # saved, as save() leaves it
    return True


def _identity(*, event: Event) -> QuerySet[ChannelIdentity]:
    return ChannelIdentity.objects.filter(
        channel=ChannelIdentity.Channel.MESSENGER,
        page_id=_id(event.page_id, kind="page_id"),
        external_id=_id(event.psid, kind="psid"),
    )


def _outgoing_messages(*, event: Event) -> QuerySet[Message]:
    return Message.objects.filter(conversation__identity__in=_identity(event=event), role__in=OUTGOING_ROLES)


def _message_by_mid(*, mid: str | None) -> Message | None:
    if not mid or not _ID.fullmatch(mid):
        return None
    return Message.objects.filter(external_id=mid).first()


# Raw for the same reason as the INSERT: the ORM's update costs about 0.12 ms more Python, and
# bench/ingest went from about 617 to 668 requests/s without it.
_TOUCH_SQL = f"{_TOUCH_UPDATE} WHERE id = %s"
_LAST_ACTIVITY_FIELD = Conversation._meta.get_field("last_activity_at")


def _conversation_touch(*, message: Message) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_TOUCH_SQL, [*_touch_values(message=message), message.conversation_id])


def _touch_values(*, message: Message) -> list[Any]:
    return [_LAST_ACTIVITY_FIELD.get_db_prep_save(message.created_at, connection), _preview(message=message)]


def _preview(*, message: Message) -> str:
    if message.text:
        return message.text[:_PREVIEW_LENGTH]
    return " ".join(f"[{attachment['type']}]" for attachment in message.attachments)[:_PREVIEW_LENGTH]


def _attachment_json(attachment: Attachment) -> dict[str, Any]:
    fields = {
        # Stickers come as images with a sticker id, or as their own type: one name for both.
        "type": "sticker" if attachment.is_sticker else attachment.type,
        "url": attachment.url,
        "title": attachment.title,
        "sticker_id": attachment.sticker_id,
        "payload": attachment.payload,
    }
    return {key: value for key, value in fields.items() if value}


def _id(value: str, *, kind: str) -> str:
    if not _ID.fullmatch(value) or len(value) > _ID_MAX_LENGTH[kind]:
        raise _UnstorableEvent(f"{kind} {value[:80]!r} cannot be a Messenger id")
    return value


def _storable_text(text: str) -> str:
    return _SURROGATES.sub("\ufffd", text.replace("\x00", ""))


def _storable_json(value: Any, depth: int = 0) -> Any:
    """`value` with every string made storable and NaN/Infinity (which JSONB refuses) dropped."""
    if depth > _RAW_MAX_DEPTH:
        return None
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {_storable_text(str(key)): _storable_json(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_storable_json(item, depth + 1) for item in value]
    return value
