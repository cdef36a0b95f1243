"""Typed webhook events of Meta's platform: Messenger, Instagram, and Page and Instagram comments.

Plain frozen dataclasses produced by `messenger.parser.parse_webhook`. They know nothing of
Django or the database; the services turn them into rows. Every id is a string, every
time is an aware UTC datetime, and `raw` keeps the original event dict for debugging.

    Event                      page_id, platform, timestamp, raw
    ├── MessagingEvent         + sender_id, recipient_id, channel, psid
    │   ├── MessageEvent, PostbackEvent, DeliveryEvent, ReadEvent, ReactionEvent, ReferralEvent
    ├── MessageEditEvent       a person edited a message (its sender may be unknown)
    └── CommentEvent           a comment on a Facebook Page post or an Instagram media
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Channel = Literal["messaging", "standby"]
# Facebook's side (Messenger conversations, Page feed comments) or Instagram's.
Platform = Literal["messenger", "instagram"]
PLATFORMS: tuple[Platform, ...] = ("messenger", "instagram")


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every event carries.

    `page_id` is the webhook entry's id: the Facebook Page on Messenger and for Page
    comments, the Instagram professional account on Instagram (Meta's test deliveries use
    "0"). `platform` says which of the two sent it.
    """

    page_id: str
    platform: Platform
    timestamp: datetime
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class MessagingEvent(Event):
    """An event of a conversation between a person and the Page (or Instagram account).

    `channel` is "standby" when another app (usually the Page inbox) has thread control and
    we only observe the conversation. On Instagram the person's id is their IGSID.
    """

    sender_id: str
    recipient_id: str
    channel: Channel

    @property
    def psid(self) -> str:
        """The person's page-scoped id, whichever side of the event they are on."""
        return self.sender_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """One attachment of a message.

    `type` is Meta's own (image, audio, video, file, location, fallback, template, sticker,
    reel, ig_reel, post, ig_post, share, story_mention, unsupported_type, ...). `payload` is
    Meta's payload dict (empty when absent), e.g. `{"coordinates": {"lat": ..., "long": ...}}`
    for a location. A story mention's `url` is the story's media on Meta's CDN.
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

    @property
    def is_story_mention(self) -> bool:
        return self.type == "story_mention"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoryReply:
    """The Instagram story a message answers (`message.reply_to.story`); either field may be missing."""

    id: str | None
    url: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEvent(MessagingEvent):
    """A message from the person, or an echo of one the Page sent (`is_echo`).

    For an echo, sender is the Page and recipient is the person; use `psid`.
    `app_id` tells which app sent an echo: ours, or another one (263902037430900 is Meta's
    Page inbox, i.e. a human), or None when Meta did not say. Only a match with our own app
    id means the bot sent it.

    `is_deleted`: the person unsent the message `mid` (Instagram); nothing else is in it.
    `is_unsupported`: the person sent something Meta does not deliver to apps (flagged by
    `is_unsupported`, or by an attachment of type `unsupported_type`): store it, describe it.
    `story_reply`: the Instagram story this message answers.
    """

    mid: str
    text: str | None
    quick_reply_payload: str | None
    reply_to_mid: str | None
    story_reply: StoryReply | None
    attachments: tuple[Attachment, ...]
    is_echo: bool
    is_deleted: bool
    is_unsupported: bool
    app_id: int | None
    metadata: str | None

    @property
    def psid(self) -> str:
        return self.recipient_id if self.is_echo else self.sender_id


@dataclass(frozen=True, slots=True, kw_only=True)
class PostbackEvent(MessagingEvent):
    """A tap on a postback button, Get Started or a persistent menu item (or an Instagram ice breaker)."""

    mid: str | None
    title: str | None
    payload: str | None
    referral: dict[str, Any] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryEvent(MessagingEvent):
    """Page messages delivered: those in `mids`, and every one sent before `watermark`."""

    mids: tuple[str, ...]
    watermark: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadEvent(MessagingEvent):
    """The person has read every Page message sent before `watermark` (Instagram names one `mid`)."""

    watermark: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ReactionEvent(MessagingEvent):
    """The person reacted ("react") to a message, or took the reaction back ("unreact")."""

    mid: str
    action: str
    reaction: str | None
    emoji: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferralEvent(MessagingEvent):
    """The person came back to an existing thread from an m.me link, an ad, etc."""

    ref: str | None
    source: str | None
    type: str | None
    referral: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEditEvent(Event):
    """The person edited their message `mid`: its text is now `text`, after `num_edit` edits.

    `sender_id` is None when Meta left the sender out (Instagram does, at times): the mid
    alone names the message.
    """

    sender_id: str | None
    channel: Channel
    mid: str
    text: str | None
    num_edit: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommentEvent(Event):
    """A comment on one of the Page's posts (Facebook) or on the account's media (Instagram).

    `verb` is Facebook's: "add", "edited", "remove", "hide", "unhide", ...; an Instagram
    comment is always "add" (Instagram notifies new comments only). `post_id` is the
    Facebook post or the Instagram media; `parent_id` the comment answered, when this one is
    a reply (on Facebook a top-level comment's parent is the post itself). The author is
    the Page itself when `author_id == page_id`. `author_name` is the Facebook name or the
    Instagram username. `timestamp` is when the comment was made, when Meta says so.
    """

    comment_id: str
    post_id: str | None
    parent_id: str | None
    author_id: str
    author_name: str | None
    text: str | None
    verb: str

    @property
    def is_reply(self) -> bool:
        """Whether the comment answers another comment rather than the post."""
        return self.parent_id is not None and self.parent_id != self.post_id
