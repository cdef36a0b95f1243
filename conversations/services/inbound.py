"""Store what people send the Pages, on Messenger and Instagram: messages, postbacks, receipts,
reactions, and comments on the Pages' posts (conversations.services.comments). Each event is
routed by its entry's id to its Page (conversations.pages).

Takes the typed events of messenger.events (never Meta's JSON) and turns them into rows,
all in one transaction, so an acknowledged webhook is a stored one. Reply jobs are queued
only once that transaction has committed.

Dedup: a Messenger `mid` is Message.external_id, unique in the database, so the database
decides, also between twins racing from two web workers: a message whose mid is already
stored is not inserted again, nor answered (Meta redelivers what it is not sure arrived). A
postback Meta sends without a mid gets an id made of its sender, time and payload instead.
A message of a person who was since forgotten is no longer stored, so their tombstone
(conversations.models.Tombstone) decides: ignored, rather than re-creating them.
"""

import functools
import hashlib
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce

from conversations.insights.metrics import MESSAGES_RECEIVED, message_kind
from conversations.models import ChannelIdentity, Message
from conversations.pages import Pages, pages_current
from conversations.selectors import conversation_id_by_sender, tombstone_covers
from conversations.services.comments import comment_receive
from conversations.services.conversations import (
    conversation_bot_pause,
    conversation_get_or_create,
    conversation_touch,
)
from conversations.services.ratelimit import rate_limit_apply
from conversations.services.replies import reply_schedule
from conversations.text import text_storable
from messenger.events import (
    Attachment,
    CommentEvent,
    DeliveryEvent,
    Event,
    MessageEditEvent,
    MessageEvent,
    PostbackEvent,
    ReactionEvent,
    ReadEvent,
    ReferralEvent,
    StoryReply,
)
from messenger.graph import OUR_METADATA_MARKER

logger = logging.getLogger(__name__)

# Meta's ids are short printable ASCII; anything else cannot be one (nor fit the columns).
_ID = re.compile(r"[!-~]+")
_ID_MAX_LENGTH = {"page_id": 64, "psid": 64, "mid": 255, "comment": 255}
# Meta's events are a few levels deep; deeper junk is cut off so saving it cannot recurse away.
_RAW_MAX_DEPTH = 32
_REACTION_LENGTH = Message._meta.get_field("reaction").max_length
_OTHER_PAGES_LOGGED: set[tuple[str, str]] = set()


class _UnstorableEvent(ValueError):
    """An event whose ids cannot be Meta's; it is skipped and logged, the batch goes on."""


def inbound_events_store(*, events: Sequence[Event]) -> None:
    """Store every event of one webhook delivery in one transaction.

    Each event goes to the Page its entry names (conversations.pages); an event of any other
    Page or Instagram account is not stored. New client messages get a reply job once the
    transaction commits, unless the sender is over the rate limit. Nothing is answered
    twice, and nothing but a database outage raises.
    """
    stored: dict[int, Message] = {}
    person_wrote_at: dict[int, datetime] = {}
    received: list[tuple[str, str]] = []
    pages = pages_current() if events else None
    with transaction.atomic():
        for event in events:
            route = _route(event=event, pages=pages)
            if route is None:
                continue
            handler = _HANDLERS.get(type(event))
            if handler is None:  # a kind the core does not handle: acknowledged
                logger.debug("Ignored %s from page %r: not handled", type(event).__name__, event.page_id)
                continue
            try:
                message = handler(event, route)
            except _UnstorableEvent as error:
                logger.warning("Skipped %s from page %r: %s", type(event).__name__, event.page_id, error)
                continue
            if message is not None:
                stored[message.conversation_id] = message
                if message.role == Message.Role.CLIENT:
                    person_wrote_at[message.conversation_id] = message.sent_at
                    received.append((message_kind(message=message), route.channel))
        # In id order, so two deliveries touching the same conversations cannot deadlock.
        for conversation_id in sorted(stored):
            newest = stored[conversation_id]
            conversation_touch(
                conversation_id=conversation_id,
                at=newest.created_at,
                preview=_preview(newest),
                person_wrote_at=person_wrote_at.get(conversation_id),
            )
    for kind, channel in received:  # counted once stored for good
        MESSAGES_RECEIVED.labels(kind=kind, channel=channel).inc()


@dataclass(frozen=True)
class _Route:
    """Where an event goes in the core: its channel, and the Facebook Page answering it (on
    Instagram, the Page the account is linked to)."""

    channel: str
    page_id: str


def _route(*, event: Event, pages: Pages) -> _Route | None:
    """The event's route, or None for a Page (or Instagram account) that is not ours.

    Logged once per process and id: an app subscribed to several Pages gets them all.
    """
    page = pages.for_event(platform=event.platform, entry_id=event.page_id)
    if page is not None:
        return _Route(channel=ChannelIdentity.Channel(event.platform), page_id=page.page_id)
    if (event.platform, event.page_id) not in _OTHER_PAGES_LOGGED:
        _OTHER_PAGES_LOGGED.add((event.platform, event.page_id))
        what = "Instagram account" if event.platform == "instagram" else "page"
        logger.warning(
            "Ignored events for %s %r: not a connected Page's (manage.py pages list), nor FACEBOOK_PAGE_ID",
            what,
            event.page_id,
        )
    return None


def _message_receive(event: MessageEvent, route: _Route) -> Message | None:
    if event.is_deleted:  # the person unsent a message (Instagram): not handled yet, acknowledged
        logger.debug("Ignored an unsent message from page %r: not handled", event.page_id)
        return None
    if event.is_echo:
        return _echo_receive(event, route)
    return _client_message_store(event, route)


def _client_message(event: MessageEvent | PostbackEvent) -> Message:
    """The unsaved row for something a person sent: a message (not an echo) or a postback."""
    if isinstance(event, MessageEvent):
        text, reply_to_mid = event.text, event.reply_to_mid
        attachments = [_attachment_json(attachment) for attachment in event.attachments]
        details = {
            "quick_reply_payload": event.quick_reply_payload,
            "reply_to_mid": event.reply_to_mid,
            # An Instagram story the message answers: the prompt says so (conversations.prompts).
            "story_reply": _story_json(event.story_reply),
        }
        external_id = _id(event.mid, kind="mid")
    else:
        # The button's title is what the person saw and tapped, so it is what gets answered.
        text, reply_to_mid, attachments = event.title or event.payload, None, []
        details = {"postback_payload": event.payload, "referral": event.referral}
        external_id = _id(event.mid, kind="mid") if event.mid else _postback_id(event)
    return Message(
        role=Message.Role.CLIENT,
        status=Message.Status.RECEIVED,
        external_id=external_id,
        text=text_storable(text or ""),
        attachments=_storable_json(attachments),
        details=_storable_json({key: value for key, value in details.items() if value is not None}),
        reply_to=_message_by_mid(mid=reply_to_mid),
        sent_at=event.timestamp,
        raw=_storable_json(event.raw),
    )


def _postback_id(event: PostbackEvent) -> str:
    """The id of a postback that came without a `mid`: the same tap delivered again gets the same
    one, so it is deduplicated, and remembered when its sender is forgotten, as a mid is."""
    key = "\n".join([event.page_id, event.psid, event.timestamp.isoformat(), event.payload or ""])
    return "postback:" + hashlib.sha256(text_storable(key).encode()).hexdigest()


def _client_message_store(event: MessageEvent | PostbackEvent, route: _Route) -> Message | None:
    message = _client_message(event)
    if not _message_insert(message=message, event=event, route=route):
        return None
    if event.channel == "standby":
        # Another app (usually the Page inbox) has thread control: someone else is answering.
        conversation_bot_pause(conversation=message.conversation, by=None)
    # Counted only once stored, so a redelivered mid does not use up the sender's window.
    if rate_limit_apply(message=message, sender=f"{route.page_id}:{event.psid}"):  # answer, or notice
        transaction.on_commit(
            functools.partial(reply_schedule, message=message, sender=event.psid), robust=True
        )
    return message


def _echo_receive(event: MessageEvent, route: _Route) -> Message | None:
    """A copy of something the Page sent: ours is ignored, anyone else's is staff taking over."""
    if event.metadata == OUR_METADATA_MARKER or (
        settings.FACEBOOK_APP_ID and str(event.app_id) == settings.FACEBOOK_APP_ID
    ):
        return None
    message = Message(
        role=Message.Role.STAFF,
        status=Message.Status.SENT,
        external_id=_id(event.mid, kind="mid"),
        text=text_storable(event.text or ""),
        attachments=_storable_json([_attachment_json(attachment) for attachment in event.attachments]),
        sent_at=event.timestamp,
        raw=_storable_json(event.raw),
    )
    if not _message_insert(message=message, event=event, route=route):
        return None
    conversation_bot_pause(conversation=message.conversation, by=None)
    logger.info("Staff replied from another app; bot paused: sender=%s mid=%s", event.psid, event.mid)
    return message


def _delivery_record(event: DeliveryEvent, route: _Route) -> None:
    mids = [mid for mid in event.mids if _ID.fullmatch(mid)]
    _outgoing_messages(event=event, route=route).filter(
        Q(external_id__in=mids) | Q(sent_at__lte=event.watermark), delivered_at__isnull=True
    ).update(delivered_at=event.timestamp)


def _read_record(event: ReadEvent, route: _Route) -> None:
    # Read implies delivered, whether or not the delivery receipt came first.
    _outgoing_messages(event=event, route=route).filter(
        sent_at__lte=event.watermark, read_at__isnull=True
    ).update(read_at=event.timestamp, delivered_at=Coalesce("delivered_at", event.timestamp))


def _reaction_record(event: ReactionEvent, route: _Route) -> None:
    reaction = (event.emoji or event.reaction or "") if event.action == "react" else ""
    Message.objects.filter(
        external_id=_id(event.mid, kind="mid"), conversation__identity__in=_identity(event=event, route=route)
    ).update(reaction=text_storable(reaction)[:_REACTION_LENGTH])


def _edit_record(event: MessageEditEvent, route: _Route) -> None:
    """The person edited a message of theirs: its text becomes the new one, the first text is kept
    in `details` (staff see it as edited). Nothing is queued: a message still waiting is answered
    with whatever text it has when its reply is written, and an answered one is not answered again.

    Matched by mid, within the sender's conversation when Meta names the sender. An older edit
    arriving after a newer one (by num_edit) changes nothing.
    """
    messages = Message.objects.select_for_update().filter(
        external_id=_id(event.mid, kind="mid"), role=Message.Role.CLIENT
    )
    if event.sender_id is not None:
        messages = messages.filter(
            conversation__identity__in=ChannelIdentity.objects.filter(
                channel=route.channel,
                page_id=_id(route.page_id, kind="page_id"),
                external_id=_id(event.sender_id, kind="psid"),
            )
        )
    message = messages.first()
    if message is None or event.text is None:
        logger.info("Ignored an edit of a message not stored: mid=%s", event.mid)
        return
    edits = message.details.get(Message.EDIT) or {}
    if event.num_edit is not None and event.num_edit <= (edits.get("num_edit") or 0):
        return  # this edit, or a later one, is applied already
    message.details[Message.EDIT] = {
        "original_text": edits.get("original_text", message.text),
        "num_edit": event.num_edit,
        "edited_at": event.timestamp.isoformat(),
    }
    message.text = text_storable(event.text)
    message.save(update_fields=["text", "details"])
    logger.info("Message edited: mid=%s answered=%s", event.mid, message.status != Message.Status.RECEIVED)


def _comment_receive(event: CommentEvent, route: _Route) -> None:
    """A comment on the Page's post or Instagram media: stored, and answered privately by a job."""
    for value, kind in (
        (event.author_id, "psid"),
        (event.comment_id, "comment"),
        (event.post_id, "comment"),
        (event.parent_id, "comment"),
    ):
        if value is not None:
            _id(value, kind=kind)
    comment_receive(event=event, page_id=_id(route.page_id, kind="page_id"), raw=_storable_json(event.raw))


def _referral_ignore(event: ReferralEvent, route: _Route) -> None:
    # Nothing to answer and nowhere to keep it; a postback's referral is kept on that message.
    logger.info("Ignored referral: sender=%s source=%s ref=%s", event.psid, event.source, event.ref)


_HANDLERS: dict[type[Event], Callable[[Any, _Route], Message | None]] = {
    MessageEvent: _message_receive,
    PostbackEvent: _client_message_store,
    DeliveryEvent: _delivery_record,
    ReadEvent: _read_record,
    ReactionEvent: _reaction_record,
    ReferralEvent: _referral_ignore,
    MessageEditEvent: _edit_record,
    CommentEvent: _comment_receive,
}


def _message_insert(*, message: Message, event: Event, route: _Route) -> bool:
    """Store `message` in the conversation with the event's sender; False when its mid is already
    stored, or when it belongs to a person who was forgotten since (a late retry, a replay).

    Someone who wrote before costs one small query for their conversation's id; their first
    message creates their contact and conversation.
    """
    sender = {
        "channel": route.channel,
        "page_id": _id(route.page_id, kind="page_id"),
        "psid": _id(event.psid, kind="psid"),
    }
    if tombstone_covers(**sender, external_id=message.external_id, sent_at=message.sent_at):
        # Without the sender's id: they asked for it to be deleted, logs included.
        logger.info("Ignored a message of a person who was forgotten since it was sent")
        return False
    message.conversation_id = conversation_id_by_sender(**sender)
    if message.conversation_id is None:
        message.conversation = conversation_get_or_create(
            channel=route.channel, page_id=sender["page_id"], external_id=sender["psid"]
        )
    try:
        # A savepoint, so a duplicate mid fails this insert and not the whole delivery.
        with transaction.atomic():
            message.save(force_insert=True)
    except IntegrityError:
        if not Message.objects.filter(external_id=message.external_id).exists():
            raise
        logger.info("Ignored a message already stored: sender=%s mid=%s", event.psid, message.external_id)
        return False
    return True


def _identity(*, event: Event, route: _Route) -> QuerySet[ChannelIdentity]:
    return ChannelIdentity.objects.filter(
        channel=route.channel,
        page_id=_id(route.page_id, kind="page_id"),
        external_id=_id(event.psid, kind="psid"),
    )


def _outgoing_messages(*, event: Event, route: _Route) -> QuerySet[Message]:
    return Message.objects.filter(
        conversation__identity__in=_identity(event=event, route=route), role__in=Message.OUTGOING_ROLES
    )


def _message_by_mid(*, mid: str | None) -> Message | None:
    if not mid or not _ID.fullmatch(mid):
        return None
    return Message.objects.filter(external_id=mid).first()


def _preview(message: Message) -> str:
    if message.text:
        return message.text
    return " ".join(f"[{attachment['type']}]" for attachment in message.attachments)


def _story_json(story: StoryReply | None) -> dict[str, str] | None:
    if story is None:
        return None
    return {key: value for key, value in (("id", story.id), ("url", story.url)) if value}


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


def _storable_json(value: Any, depth: int = 0) -> Any:
    """`value` with every string made storable and NaN/Infinity (which JSONB refuses) dropped."""
    if depth > _RAW_MAX_DEPTH:
        return None
    if isinstance(value, str):
        return text_storable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {text_storable(str(key)): _storable_json(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_storable_json(item, depth + 1) for item in value]
    return value
