"""Typed Messenger webhook events.

Plain frozen dataclasses produced by `messenger.parser.parse_webhook`. They know nothing of
Django or the database; the services turn them into rows. Every id is a string, every
time is an aware UTC datetime, and `raw` keeps the original event dict for debugging.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Channel = Literal["messaging", "standby"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every Messenger event carries.

    `channel` is "standby" when another app (usually the Page inbox) has thread control and
    we only observe the conversation.
    """

    page_id: str
    sender_id: str
    recipient_id: str
    timestamp: datetime
    channel: Channel
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def psid(self) -> str:
        """The person's page-scoped id, whichever side of the event they are on."""
        return self.sender_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """One attachment of a message.

    `type` is Meta's own (image, audio, video, file, location, fallback, template, sticker,
    reel, ig_reel, post, ig_post, ...). `payload` is Meta's payload dict (empty when absent),
    e.g. `{"coordinates": {"lat": ..., "long": ...}}` for a location.
    """

    type: str
    url: str | None
    title: str | None
    payload: dict[str, Any]
    sticker_id: str | None

    @property
    def is_sticker(self) -> bool:
        # Stickers long came as `image` attachments carrying a sticker_id; newer webhooks
        # use a `sticker` type.
        return self.type == "sticker" or self.sticker_id is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEvent(Event):
    """A message from the person, or an echo of one the Page sent (`is_echo`).

    For an echo, sender is the Page and recipient is the person; use `psid`.
    `app_id` tells which app sent an echo: ours, or another one (263902037430900 is Meta's
    Page inbox, i.e. a human), or None when Meta did not say. Only a match with our own app
    id means the bot sent it.
    """

    mid: str
    text: str | None
    quick_reply_payload: str | None
    reply_to_mid: str | None
    attachments: tuple[Attachment, ...]
    is_echo: bool
    app_id: int | None
    metadata: str | None

    @property
    def psid(self) -> str:
        return self.recipient_id if self.is_echo else self.sender_id


@dataclass(frozen=True, slots=True, kw_only=True)
class PostbackEvent(Event):
    """A tap on a postback button, Get Started or a persistent menu item."""

    mid: str | None
    title: str | None
    payload: str | None
    referral: dict[str, Any] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryEvent(Event):
    """Page messages delivered: those in `mids`, and every one sent before `watermark`."""

    mids: tuple[str, ...]
    watermark: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadEvent(Event):
    """The person has read every Page message sent before `watermark`."""

    watermark: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ReactionEvent(Event):
    """The person reacted ("react") to a message, or took the reaction back ("unreact")."""

    mid: str
    action: str
    reaction: str | None
    emoji: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferralEvent(Event):
    """The person came back to an existing thread from an m.me link, an ad, etc."""

    ref: str | None
    source: str | None
    type: str | None
    referral: dict[str, Any]
