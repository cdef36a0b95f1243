"""Parse a Messenger webhook body into typed events.

Pure Python on purpose: no Django, no database, so it is trivially testable. The signature
must be checked (messenger.signature) before calling it.

Leniency, from the outside in:
- The envelope must be a JSON object with `"object": "page"` and `entry` a list of objects;
  otherwise `MalformedEnvelope` is raised (the view answers 400, since Meta's retries would
  not help). Other objects, Instagram's `"instagram"` included, are out of scope and
  rejected the same way.
- Each entry's `messaging` and `standby` events are all parsed; entries without them (e.g.
  `changes`) yield nothing.
- One malformed event (not an object, no sender or recipient id, a message without mid, a
  missing or non-numeric timestamp, ...) is skipped and logged at WARNING with the reason;
  its siblings are still returned. Unknown kinds (optin, account_linking, ...) are ignored
  at DEBUG. Unknown fields are ignored, and an optional field of the wrong type is dropped.
- Nothing but `MalformedEnvelope` is ever raised, whatever JSON value comes in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from messenger.events import (
    Attachment,
    Channel,
    DeliveryEvent,
    Event,
    MessageEvent,
    PostbackEvent,
    ReactionEvent,
    ReadEvent,
    ReferralEvent,
)

logger = logging.getLogger("messenger.parser")

_CHANNELS: tuple[Channel, ...] = ("messaging", "standby")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Longer digit strings are neither ids nor millisecond timestamps.
_MAX_DIGITS = 20


class MalformedEnvelope(ValueError):
    """The body is not a Messenger webhook envelope; `str()` is a short reason for a 400."""


class _SkippedEvent(Exception):
    """One event cannot be used; the reason is logged and the batch goes on."""


def parse_webhook(payload: object, *, received_at: datetime | None = None) -> list[Event]:
    """Every usable event of a decoded webhook body, in the order Meta sent them.

    An event without a usable timestamp takes its entry's `time`, else `received_at` (now):
    Meta will not send it again, so it is kept with the best time there is.
    """
    events: list[Event] = []
    received_at = received_at or datetime.now(UTC)
    for entry in _entries(payload=payload):
        events.extend(
            _entry_events(entry=entry, fallback_time=_as_datetime(entry.get("time")) or received_at)
        )
    return events


def _entries(*, payload: object) -> list[dict[str, Any]]:
    if not isinstance(payload, dict):
        raise MalformedEnvelope("body is not a JSON object")
    if payload.get("object") != "page":
        raise MalformedEnvelope('"object" is not "page"')
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise MalformedEnvelope('"entry" is not a list')
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise MalformedEnvelope(f'"entry[{index}]" is not an object')
    return entries


def _entry_events(*, entry: dict[str, Any], fallback_time: datetime) -> Iterator[Event]:
    page_id = _as_id(entry.get("id"))
    for channel in _CHANNELS:
        items = entry.get(channel)
        if items is None:
            continue
        if not isinstance(items, list):
            logger.warning("Skipped %s of page %s: not a list", channel, page_id)
            continue
        for index, item in enumerate(items):
            try:
                event = _event(item=item, page_id=page_id, channel=channel, fallback_time=fallback_time)
            except _SkippedEvent as skipped:
                logger.warning("Skipped %s[%d] of page %s: %s", channel, index, page_id, skipped)
                continue
            if event is not None:
                yield event


def _event(*, item: object, page_id: str | None, channel: Channel, fallback_time: datetime) -> Event | None:
    if not isinstance(item, dict):
        raise _SkippedEvent("event is not an object")
    kind = next((key for key in _BUILDERS if key in item), None)
    if kind is None:
        logger.debug("Ignored %s event with keys %s", channel, ", ".join(map(str, item)))
        return None
    body = item[kind]
    if not isinstance(body, dict):
        raise _SkippedEvent(f'"{kind}" is not an object')
    if page_id is None:
        raise _SkippedEvent("entry has no id")
    common = _common_fields(item=item, page_id=page_id, channel=channel, fallback_time=fallback_time)
    return _BUILDERS[kind](body, common)


def _common_fields(
    *, item: dict[str, Any], page_id: str, channel: Channel, fallback_time: datetime
) -> dict[str, Any]:
    sender_id = _party_id(item.get("sender"))
    if sender_id is None:
        # Also the case of chat-plugin guests, who only have a `user_ref`.
        raise _SkippedEvent("sender has no id")
    recipient_id = _party_id(item.get("recipient"))
    if recipient_id is None:
        raise _SkippedEvent("recipient has no id")
    return {
        "page_id": page_id,
        "sender_id": sender_id,
        "recipient_id": recipient_id,
        # Without one, receipts take their watermark and the rest the entry's time (_with_timestamp).
        "timestamp": _as_datetime(item.get("timestamp")),
        "fallback_time": fallback_time,
        "channel": channel,
        "raw": item,
    }


def _message_event(message: dict[str, Any], common: dict[str, Any]) -> MessageEvent:
    mid = _as_id(message.get("mid"))
    if mid is None:
        raise _SkippedEvent("message has no mid")
    return MessageEvent(
        **_with_timestamp(common=common),
        mid=mid,
        text=_as_str(message.get("text")),
        quick_reply_payload=_as_str(_field(message, "quick_reply", "payload")),
        reply_to_mid=_as_id(_field(message, "reply_to", "mid")),
        attachments=_attachments(message=message),
        is_echo=message.get("is_echo") is True,
        app_id=_as_int(message.get("app_id")),
        metadata=_as_str(message.get("metadata")),
    )


def _postback_event(postback: dict[str, Any], common: dict[str, Any]) -> PostbackEvent:
    return PostbackEvent(
        **_with_timestamp(common=common),
        mid=_as_id(postback.get("mid")),
        title=_as_str(postback.get("title")),
        payload=_as_str(postback.get("payload")),
        referral=_as_dict(postback.get("referral")),
    )


def _reaction_event(reaction: dict[str, Any], common: dict[str, Any]) -> ReactionEvent:
    mid = _as_id(reaction.get("mid"))
    if mid is None:
        raise _SkippedEvent("reaction has no mid")
    action = _as_str(reaction.get("action"))
    if action is None:
        raise _SkippedEvent("reaction has no action")
    return ReactionEvent(
        **_with_timestamp(common=common),
        mid=mid,
        action=action,
        reaction=_as_str(reaction.get("reaction")),
        emoji=_as_str(reaction.get("emoji")),
    )


def _referral_event(referral: dict[str, Any], common: dict[str, Any]) -> ReferralEvent:
    return ReferralEvent(
        **_with_timestamp(common=common),
        ref=_as_str(referral.get("ref")),
        source=_as_str(referral.get("source")),
        type=_as_str(referral.get("type")),
        referral=referral,
    )


def _delivery_event(delivery: dict[str, Any], common: dict[str, Any]) -> DeliveryEvent:
    watermark = _watermark(receipt=delivery)
    mids = delivery.get("mids")
    return DeliveryEvent(
        **_with_timestamp(common=common, default=watermark),
        # Meta documents `mids` as sometimes absent; the watermark is what always counts.
        mids=tuple(_ids(mids)) if isinstance(mids, list) else (),
        watermark=watermark,
    )


def _read_event(read: dict[str, Any], common: dict[str, Any]) -> ReadEvent:
    watermark = _watermark(receipt=read)
    return ReadEvent(**_with_timestamp(common=common, default=watermark), watermark=watermark)


# A Messenger event holds exactly one of these keys; it names the kind.
_BUILDERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], Event]] = {
    "message": _message_event,
    "postback": _postback_event,
    "reaction": _reaction_event,
    "referral": _referral_event,
    "delivery": _delivery_event,
    "read": _read_event,
}


def _with_timestamp(*, common: dict[str, Any], default: datetime | None = None) -> dict[str, Any]:
    """The event's fields: its own timestamp, else `default`, else the entry's time or the arrival's."""
    fields = {key: value for key, value in common.items() if key != "fallback_time"}
    fields["timestamp"] = common["timestamp"] or default or common["fallback_time"]
    return fields


def _watermark(*, receipt: dict[str, Any]) -> datetime:
    watermark = _as_datetime(receipt.get("watermark"))
    if watermark is None:
        raise _SkippedEvent("watermark is missing or not a number")
    return watermark


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


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _as_dict(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _first_str(*values: object) -> str | None:
    return next((value for value in values if isinstance(value, str) and value), None)


def _as_datetime(value: object) -> datetime | None:
    """UTC datetime from Meta's milliseconds since the epoch (a number or a digit string)."""
    if isinstance(value, str):
        value = _digits(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    try:
        return _EPOCH + timedelta(milliseconds=value)
    except (OverflowError, ValueError):  # beyond year 9999, or NaN
        return None
