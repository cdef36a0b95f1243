"""Parse a webhook body of Meta's platform (Messenger, Instagram, Page feed) into typed events.

Pure Python on purpose: no Django, no database, so it is trivially testable. The signature
must be checked (messenger.signature) before calling it.

Leniency, from the outside in:
- The envelope must be a JSON object with `"object"` "page" (Messenger and the Page's feed)
  or "instagram", and `entry` a list of objects; otherwise `MalformedEnvelope` is raised
  (the view answers 400, since Meta's retries would not help).
- Each entry's `messaging` and `standby` events are all parsed, and so are its `changes`:
  comments (Facebook `feed` changes of item "comment", Instagram `comments`) and the
  messaging events Meta's dashboard sends as test deliveries (`field: "messages"` and the
  like, whose `value` is one messaging event). Other changes (posts, likes, reactions to
  posts, ...) are ignored at DEBUG.
- One malformed event (not an object, no sender or recipient id, a message without mid, a
  comment without author, ...) is skipped and logged at WARNING with the reason; its
  siblings are still returned. Unknown kinds (optin, account_linking, ...) are ignored at
  DEBUG. Unknown fields are ignored, and an optional field of the wrong type is dropped.
- What real deliveries do besides Meta's documentation is understood: ids as JSON numbers,
  times in milliseconds, in seconds (told apart by magnitude) or as ISO 8601 strings
  ("2024-05-01T12:00:00+0000"), flags as the string "true", the old feed shape (`sender_id`
  and `sender_name` instead of `from`), an edit without its sender.
- Nothing but `MalformedEnvelope` is ever raised, whatever JSON value comes in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from messenger.events import (
    Attachment,
    Channel,
    CommentEvent,
    DeliveryEvent,
    Event,
    MessageEditEvent,
    MessageEvent,
    Platform,
    PostbackEvent,
    ReactionEvent,
    ReadEvent,
    ReferralEvent,
    StoryReply,
)

logger = logging.getLogger("messenger.parser")

# Meta's `object` → the platform its events come from.
_PLATFORMS: dict[str, Platform] = {"page": "messenger", "instagram": "instagram"}
_CHANNELS: tuple[Channel, ...] = ("messaging", "standby")
# Fields whose `changes[].value` is one messaging event: what Meta's dashboard sends when a
# field's "Test" button is pressed (Instagram's test deliveries).
_MESSAGING_FIELDS = frozenset(
    {
        "messages",
        "messaging_postbacks",
        "message_reactions",
        "message_edit",
        "message_edits",
        "messaging_seen",
        "messaging_referral",
        "standby",
    }
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Epoch times below this are seconds (until the year 5138), above it milliseconds (after 1973).
_MILLISECONDS_FROM = 10**11
# Longer digit strings are neither ids nor timestamps.
_MAX_DIGITS = 20
# Longer strings are not ISO 8601 times; they are not even tried.
_MAX_ISO_LENGTH = 40
_COMMENT_ITEM = "comment"
# An Instagram comment notification is always a new comment.
_INSTAGRAM_COMMENT_VERB = "add"


class MalformedEnvelope(ValueError):
    """The body is not a webhook envelope of Meta's; `str()` is a short reason for a 400."""


class _SkippedEvent(Exception):
    """One event cannot be used; the reason is logged and the batch goes on."""


@dataclass(frozen=True, slots=True)
class _Source:
    """Where an event was found: its dict, its entry's Page (or account) and the fallback time."""

    item: dict[str, Any]
    page_id: str
    platform: Platform
    channel: Channel
    fallback_time: datetime


def parse_webhook(payload: object, *, received_at: datetime | None = None) -> list[Event]:
    """Every usable event of a decoded webhook body, in the order Meta sent them.

    An event without a usable time takes its entry's `time`, else `received_at` (now):
    Meta will not send it again, so it is kept with the best time there is.
    """
    events: list[Event] = []
    received_at = received_at or datetime.now(UTC)
    platform, entries = _envelope(payload=payload)
    for entry in entries:
        fallback_time = _as_datetime(entry.get("time")) or received_at
        events.extend(_entry_events(entry=entry, platform=platform, fallback_time=fallback_time))
    return events


def _envelope(*, payload: object) -> tuple[Platform, list[dict[str, Any]]]:
    if not isinstance(payload, dict):
        raise MalformedEnvelope("body is not a JSON object")
    kind = payload.get("object")
    platform = _PLATFORMS.get(kind) if isinstance(kind, str) else None
    if platform is None:
        raise MalformedEnvelope('"object" is not "page" or "instagram"')
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise MalformedEnvelope('"entry" is not a list')
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise MalformedEnvelope(f'"entry[{index}]" is not an object')
    return platform, entries


def _entry_events(*, entry: dict[str, Any], platform: Platform, fallback_time: datetime) -> Iterator[Event]:
    page_id = _as_id(entry.get("id"))
    for name in (*_CHANNELS, "changes"):
        items = entry.get(name)
        if items is None:
            continue
        if not isinstance(items, list):
            logger.warning("Skipped %s of page %s: not a list", name, page_id)
            continue
        for index, item in enumerate(items):
            try:
                if page_id is None:
                    raise _SkippedEvent("entry has no id")
                if name == "changes":
                    event = _change_event(
                        change=item, page_id=page_id, platform=platform, fallback_time=fallback_time
                    )
                else:
                    source = _source(
                        item, page_id=page_id, platform=platform, channel=name, time=fallback_time
                    )
                    event = _messaging_event(source=source)
            except _SkippedEvent as skipped:
                logger.warning("Skipped %s[%d] of page %s: %s", name, index, page_id, skipped)
                continue
            if event is not None:
                yield event


def _source(item: object, *, page_id: str, platform: Platform, channel: Channel, time: datetime) -> _Source:
    if not isinstance(item, dict):
        raise _SkippedEvent("event is not an object")
    return _Source(item=item, page_id=page_id, platform=platform, channel=channel, fallback_time=time)


def _messaging_event(*, source: _Source) -> Event | None:
    kind = next((key for key in _BUILDERS if key in source.item), None)
    if kind is None:
        logger.debug("Ignored %s event with keys %s", source.channel, ", ".join(map(str, source.item)))
        return None
    body = source.item[kind]
    if not isinstance(body, dict):
        raise _SkippedEvent(f'"{kind}" is not an object')
    return _BUILDERS[kind](body, source)


def _change_event(
    *, change: object, page_id: str, platform: Platform, fallback_time: datetime
) -> Event | None:
    if not isinstance(change, dict):
        raise _SkippedEvent("change is not an object")
    field, value = change.get("field"), change.get("value")
    if not isinstance(field, str):
        raise _SkippedEvent("change has no field")
    if field in _MESSAGING_FIELDS:
        source = _source(value, page_id=page_id, platform=platform, channel="messaging", time=fallback_time)
        return _messaging_event(source=source)
    builder = _COMMENT_BUILDERS.get((platform, field))
    if builder is None:
        logger.debug("Ignored %s change of field %r", platform, field)
        return None
    if not isinstance(value, dict):
        raise _SkippedEvent(f'"{field}" change value is not an object')
    source = _Source(
        item=value, page_id=page_id, platform=platform, channel="messaging", fallback_time=fallback_time
    )
    return builder(value, source)


# --- messaging events --------------------------------------------------------------------


def _messaging_fields(source: _Source, *, default_time: datetime | None = None) -> dict[str, Any]:
    """The fields of a MessagingEvent: its own time, else `default_time`, else the entry's or the arrival's."""
    sender_id = _party_id(source.item.get("sender"))
    if sender_id is None:
        # Also the case of chat-plugin guests, who only have a `user_ref`.
        raise _SkippedEvent("sender has no id")
    recipient_id = _party_id(source.item.get("recipient"))
    if recipient_id is None:
        raise _SkippedEvent("recipient has no id")
    return {
        **_event_fields(source, time=_as_datetime(source.item.get("timestamp")) or default_time),
        "sender_id": sender_id,
        "recipient_id": recipient_id,
        "channel": source.channel,
    }


def _event_fields(source: _Source, *, time: datetime | None) -> dict[str, Any]:
    return {
        "page_id": source.page_id,
        "platform": source.platform,
        "timestamp": time or source.fallback_time,
        "raw": source.item,
    }


def _message_event(message: dict[str, Any], source: _Source) -> MessageEvent:
    fields = _messaging_fields(source)
    mid = _as_id(message.get("mid"))
    if mid is None:
        raise _SkippedEvent("message has no mid")
    attachments = _attachments(message=message)
    return MessageEvent(
        **fields,
        mid=mid,
        text=_as_str(message.get("text")),
        quick_reply_payload=_as_str(_field(message, "quick_reply", "payload")),
        reply_to_mid=_as_id(_field(message, "reply_to", "mid")),
        story_reply=_story_reply(_field(message, "reply_to", "story")),
        attachments=attachments,
        is_echo=_flag(message.get("is_echo")),
        is_deleted=_flag(message.get("is_deleted")),
        # Meta flags what it cannot deliver in two ways: the message, or an attachment's type.
        is_unsupported=_flag(message.get("is_unsupported"))
        or any(attachment.type == "unsupported_type" for attachment in attachments),
        app_id=_as_int(message.get("app_id")),
        metadata=_as_str(message.get("metadata")),
    )


def _postback_event(postback: dict[str, Any], source: _Source) -> PostbackEvent:
    return PostbackEvent(
        **_messaging_fields(source),
        mid=_as_id(postback.get("mid")),
        title=_as_str(postback.get("title")),
        payload=_as_str(postback.get("payload")),
        referral=_as_dict(postback.get("referral")),
    )


def _reaction_event(reaction: dict[str, Any], source: _Source) -> ReactionEvent:
    fields = _messaging_fields(source)
    mid = _as_id(reaction.get("mid"))
    if mid is None:
        raise _SkippedEvent("reaction has no mid")
    action = _as_str(reaction.get("action"))
    if action is None:
        raise _SkippedEvent("reaction has no action")
    return ReactionEvent(
        **fields,
        mid=mid,
        action=action,
        reaction=_as_str(reaction.get("reaction")),
        emoji=_as_str(reaction.get("emoji")),
    )


def _referral_event(referral: dict[str, Any], source: _Source) -> ReferralEvent:
    return ReferralEvent(
        **_messaging_fields(source),
        ref=_as_str(referral.get("ref")),
        source=_as_str(referral.get("source")),
        type=_as_str(referral.get("type")),
        referral=referral,
    )


def _delivery_event(delivery: dict[str, Any], source: _Source) -> DeliveryEvent:
    watermark = _watermark(receipt=delivery)
    mids = delivery.get("mids")
    return DeliveryEvent(
        **_messaging_fields(source, default_time=watermark),
        # Meta documents `mids` as sometimes absent; the watermark is what always counts.
        mids=tuple(_ids(mids)) if isinstance(mids, list) else (),
        watermark=watermark,
    )


def _read_event(read: dict[str, Any], source: _Source) -> ReadEvent:
    watermark = _as_datetime(read.get("watermark"))
    if watermark is None and _as_id(read.get("mid")) is not None:
        # Instagram names the message read instead: everything before the event was read.
        watermark = _as_datetime(source.item.get("timestamp")) or source.fallback_time
    if watermark is None:
        raise _SkippedEvent("watermark is missing or not a number")
    return ReadEvent(**_messaging_fields(source, default_time=watermark), watermark=watermark)


def _message_edit_event(edit: dict[str, Any], source: _Source) -> MessageEditEvent:
    mid = _as_id(edit.get("mid"))
    if mid is None:
        raise _SkippedEvent("message_edit has no mid")
    return MessageEditEvent(
        **_event_fields(source, time=_as_datetime(source.item.get("timestamp"))),
        sender_id=_party_id(source.item.get("sender")),
        channel=source.channel,
        mid=mid,
        text=_as_str(edit.get("text")),
        num_edit=_as_int(edit.get("num_edit")),
    )


# A messaging event holds exactly one of these keys; it names the kind.
_BUILDERS: dict[str, Callable[[dict[str, Any], _Source], Event]] = {
    "message": _message_event,
    "postback": _postback_event,
    "reaction": _reaction_event,
    "referral": _referral_event,
    "delivery": _delivery_event,
    "read": _read_event,
    "message_edit": _message_edit_event,
}


def _watermark(*, receipt: dict[str, Any]) -> datetime:
    watermark = _as_datetime(receipt.get("watermark"))
    if watermark is None:
        raise _SkippedEvent("watermark is missing or not a number")
    return watermark


def _story_reply(story: object) -> StoryReply | None:
    if not isinstance(story, dict):
        return None
    reply = StoryReply(id=_as_id(story.get("id")), url=_first_str(story.get("url")))
    return reply if reply.id or reply.url else None


def _attachments(*, message: dict[str, Any]) -> tuple[Attachment, ...]:
    items = message.get("attachments")
    if not isinstance(items, list):
        return ()
    # Legacy stickers put sticker_id on the message, next to a plain image attachment.
    message_sticker_id = _as_id(message.get("sticker_id"))
    attachments = tuple(
        attachment
        for item in items
        if (attachment := _attachment(item=item, message_sticker_id=message_sticker_id)) is not None
    )
    return _without_sticker_duplicates(attachments=attachments)


def _attachment(*, item: object, message_sticker_id: str | None) -> Attachment | None:
    if not isinstance(item, dict) or not _as_str(item.get("type")):
        return None
    kind = item["type"]
    payload = _as_dict(item.get("payload")) or {}
    sticker_id = _as_id(payload.get("sticker_id"))
    if sticker_id is None and kind == "image":
        sticker_id = message_sticker_id
    return Attachment(
        type=kind,
        # Older fallback and location attachments carry url and title beside the payload.
        url=_first_str(payload.get("url"), item.get("url")),
        title=_first_str(item.get("title"), payload.get("title")),
        payload=payload,
        sticker_id=sticker_id,
    )


def _without_sticker_duplicates(*, attachments: tuple[Attachment, ...]) -> tuple[Attachment, ...]:
    # While Meta moves stickers to their own type (until August 2026) one sticker arrives both
    # as `sticker` and as `image`; keep only the `sticker` one.
    sticker_ids = {a.sticker_id for a in attachments if a.type == "sticker" and a.sticker_id}
    return tuple(a for a in attachments if not (a.type == "image" and a.sticker_id in sticker_ids))


# --- comments ----------------------------------------------------------------------------


def _facebook_comment(value: dict[str, Any], source: _Source) -> CommentEvent | None:
    """A Page `feed` change: only comments are kept, in today's shape (`from`) or the old one
    (`sender_id`, `sender_name`)."""
    item = value.get("item")
    if item != _COMMENT_ITEM:
        logger.debug("Ignored feed change of item %r", item)
        return None
    author = _as_dict(value.get("from")) or {}
    return _comment(
        source,
        comment_id=value.get("comment_id"),
        post_id=_as_id(value.get("post_id")) or _as_id(_field(value, "post", "id")),
        author_id=_as_id(author.get("id")) or _as_id(value.get("sender_id")),
        author_name=_first_str(author.get("name"), value.get("sender_name")),
        text=value.get("message"),
        verb=_as_str(value.get("verb")),
    )


def _instagram_comment(value: dict[str, Any], source: _Source) -> CommentEvent:
    author = _as_dict(value.get("from")) or {}
    return _comment(
        source,
        comment_id=value.get("id"),
        post_id=_as_id(_field(value, "media", "id")),
        author_id=_as_id(author.get("id")),
        author_name=_first_str(author.get("username")),
        text=value.get("text"),
        verb=_INSTAGRAM_COMMENT_VERB,
    )


def _comment(
    source: _Source,
    *,
    comment_id: object,
    post_id: str | None,
    author_id: str | None,
    author_name: str | None,
    text: object,
    verb: str | None,
) -> CommentEvent:
    value = source.item
    if (comment_id := _as_id(comment_id)) is None:
        raise _SkippedEvent("comment has no id")
    if author_id is None:
        raise _SkippedEvent("comment has no author")
    if not verb:
        raise _SkippedEvent("comment has no verb")
    time = _as_datetime(value.get("created_time")) or _as_datetime(value.get("timestamp"))
    return CommentEvent(
        **_event_fields(source, time=time),
        comment_id=comment_id,
        post_id=post_id,
        parent_id=_as_id(value.get("parent_id")),
        author_id=author_id,
        author_name=author_name,
        text=_as_str(text),
        verb=verb,
    )


# (platform, field) of a change → its comment builder: the Page's feed, the account's comments.
_COMMENT_BUILDERS: dict[tuple[Platform, str], Callable[[dict[str, Any], _Source], CommentEvent | None]] = {
    ("messenger", "feed"): _facebook_comment,
    ("instagram", "comments"): _instagram_comment,
}


# --- values ------------------------------------------------------------------------------


def _party_id(party: object) -> str | None:
    return _as_id(party.get("id")) if isinstance(party, dict) else None


def _field(container: dict[str, Any], name: str, key: str) -> object:
    inner = container.get(name)
    return inner.get(key) if isinstance(inner, dict) else None


def _ids(values: list[object]) -> Iterator[str]:
    for value in values:
        if (id_ := _as_id(value)) is not None:
            yield id_


def _as_id(value: object) -> str | None:
    # Meta sends ids as strings; numbers (from test tools, or sticker ids) are coerced.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) and value else None


def _as_int(value: object) -> int | None:
    if isinstance(value, str):
        return _digits(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _digits(value: str) -> int | None:
    # Bounded, since int() refuses digit strings past a few thousand characters.
    if value.isascii() and value.isdigit() and len(value) <= _MAX_DIGITS:
        return int(value)
    return None


def _flag(value: object) -> bool:
    # Meta's own examples send some flags as the string "true" (`"is_deleted": "true"`).
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _as_dict(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _first_str(*values: object) -> str | None:
    return next((value for value in values if isinstance(value, str) and value), None)


def _as_datetime(value: object) -> datetime | None:
    """UTC datetime from Meta's epoch milliseconds or seconds (a number or a digit string) or an
    ISO 8601 string; None for anything else."""
    if isinstance(value, str):
        number = _digits(value)
        if number is None:
            return _iso_datetime(value)
        value = number
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    try:
        if value >= _MILLISECONDS_FROM:
            return _EPOCH + timedelta(milliseconds=value)
        return _EPOCH + timedelta(seconds=value)
    except (OverflowError, ValueError):  # beyond year 9999, or NaN
        return None


def _iso_datetime(value: str) -> datetime | None:
    """A time such as Graph's "2024-05-01T12:00:00+0000" in UTC; one without an offset is taken as UTC."""
    if len(value) > _MAX_ISO_LENGTH:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
