"""messenger.parser: Meta's documented payloads, and what real deliveries send, in; typed events out;
nothing else raises."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools import webhook
from messenger.events import (
    Attachment,
    CommentEvent,
    DeliveryEvent,
    Event,
    MessageEditEvent,
    MessageEvent,
    MessagingEvent,
    PostbackEvent,
    ReactionEvent,
    ReadEvent,
    ReferralEvent,
    StoryReply,
)
from messenger.parser import MalformedEnvelope, parse_webhook

FIXTURES = Path(__file__).parent / "fixtures"
PAGE_ID = "104728561934527"
PSID = "7395028461739201"
OTHER_PSID = "6218493057261843"
OUR_APP_ID = 842137569012345
PAGE_INBOX_APP_ID = 263902037430900


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def raw_event(name: str) -> dict[str, Any]:
    entry = load(name)["entry"][0]
    return (entry.get("messaging") or entry["standby"])[0]


def only_event(name: str) -> Event:
    events = parse_webhook(load(name))
    assert len(events) == 1
    return events[0]


def at_ms(milliseconds: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=milliseconds)


def envelope(*events: object, channel: str = "messaging") -> dict[str, Any]:
    return {"object": "page", "entry": [{"id": PAGE_ID, "time": 1732550460500, channel: list(events)}]}


def user_event(**kind: Any) -> dict[str, Any]:
    return {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": 1732550460311, **kind}


def text_event(mid: str = "m_valid", text: str = "hello") -> dict[str, Any]:
    return user_event(message={"mid": mid, "text": text})


# --- one test per documented kind -------------------------------------------------------


def test_text_message() -> None:
    event = only_event("text_message.json")

    assert isinstance(event, MessageEvent)
    assert event.page_id == PAGE_ID
    assert event.sender_id == PSID
    assert event.recipient_id == PAGE_ID
    assert event.psid == PSID
    assert event.timestamp == datetime(2024, 11, 25, 16, 1, 0, 311000, tzinfo=UTC)
    assert event.channel == "messaging"
    assert event.mid == raw_event("text_message.json")["message"]["mid"]
    assert event.mid.startswith("m_")
    assert event.text == "Hi! What are your opening hours on Saturday?"
    assert event.quick_reply_payload is None
    assert event.reply_to_mid is None
    assert event.attachments == ()
    assert event.is_echo is False
    assert event.app_id is None
    assert event.metadata is None
    assert event.raw == raw_event("text_message.json")


def test_quick_reply() -> None:
    event = only_event("quick_reply.json")

    assert isinstance(event, MessageEvent)
    assert event.text == "Opening hours"
    assert event.quick_reply_payload == "OPENING_HOURS"


def test_reply_to() -> None:
    event = only_event("reply_to.json")

    assert isinstance(event, MessageEvent)
    assert event.text == "Yes, that one please"
    assert event.reply_to_mid == raw_event("reply_to.json")["message"]["reply_to"]["mid"]
    assert event.reply_to_mid != event.mid


@pytest.mark.parametrize(
    ("kind", "host"),
    [
        ("image", "https://scontent.xx.fbcdn.net/"),
        ("audio", "https://cdn.fbsbx.com/"),
        ("video", "https://video.xx.fbcdn.net/"),
        ("file", "https://cdn.fbsbx.com/"),
    ],
)
def test_media_attachment(kind: str, host: str) -> None:
    event = only_event(f"attachment_{kind}.json")

    assert isinstance(event, MessageEvent)
    assert event.text is None
    (attachment,) = event.attachments
    assert attachment.type == kind
    assert attachment.url is not None and attachment.url.startswith(host)
    assert attachment.payload == {"url": attachment.url}
    assert attachment.title is None
    assert attachment.sticker_id is None
    assert attachment.is_sticker is False


def test_location_attachment() -> None:
    event = only_event("attachment_location.json")

    assert isinstance(event, MessageEvent)
    (attachment,) = event.attachments
    assert attachment.type == "location"
    assert attachment.title == "Pinned Location"
    assert attachment.url is not None and attachment.url.startswith("https://l.facebook.com/")
    assert attachment.payload == {"coordinates": {"lat": 48.8583701, "long": 2.2944813}}


def test_fallback_attachment() -> None:
    event = only_event("attachment_fallback.json")

    assert isinstance(event, MessageEvent)
    assert event.text == "https://example.com/menu"
    (attachment,) = event.attachments
    assert attachment.type == "fallback"
    assert attachment.title == "Our menu | Example Bistro"
    assert attachment.url is not None and attachment.url.startswith("https://l.facebook.com/")


def test_legacy_fallback_attachment_with_url_beside_a_null_payload() -> None:
    message = {
        "mid": "m_legacy",
        "attachments": [
            {"title": "Example", "url": "https://example.com", "type": "fallback", "payload": None},
        ],
    }

    (event,) = parse_webhook(envelope(user_event(message=message)))

    assert isinstance(event, MessageEvent)
    assert event.attachments == (
        Attachment(type="fallback", url="https://example.com", title="Example", payload={}, sticker_id=None),
    )


def test_sticker_is_an_image_with_the_message_sticker_id() -> None:
    event = only_event("attachment_sticker.json")

    assert isinstance(event, MessageEvent)
    assert event.text is None
    (attachment,) = event.attachments
    assert attachment.type == "image"
    assert attachment.sticker_id == "369239263222822"
    assert attachment.is_sticker is True
    assert attachment.url is not None and attachment.url.endswith("oe=674A1B2C")


def test_sticker_sent_twice_during_metas_sticker_type_transition_is_kept_once() -> None:
    payload = {"url": "https://scontent.xx.fbcdn.net/sticker.png", "sticker_id": 369239263222822}
    message = {
        "mid": "m_sticker",
        "sticker_id": 369239263222822,
        "attachments": [{"type": "sticker", "payload": payload}, {"type": "image", "payload": payload}],
    }

    (event,) = parse_webhook(envelope(user_event(message=message)))

    assert isinstance(event, MessageEvent)
    (attachment,) = event.attachments
    assert attachment.type == "sticker"
    assert attachment.sticker_id == "369239263222822"
    assert attachment.is_sticker is True


def test_reel_share() -> None:
    event = only_event("attachment_reel.json")

    assert isinstance(event, MessageEvent)
    (attachment,) = event.attachments
    assert attachment.type == "reel"
    assert attachment.url == "https://www.facebook.com/reel/1283746501928374"
    assert attachment.title == "Five-minute pasta you will make every week"
    assert attachment.payload["reel_video_id"] == "1283746501928374"


def test_post_share() -> None:
    event = only_event("attachment_post.json")

    assert isinstance(event, MessageEvent)
    (attachment,) = event.attachments
    assert attachment.type == "post"
    assert attachment.url is not None
    assert attachment.url.startswith(f"https://www.facebook.com/{PAGE_ID}/posts/")
    assert attachment.title == "New autumn menu is here!"


def test_echo_from_our_app() -> None:
    event = only_event("echo_app.json")

    assert isinstance(event, MessageEvent)
    assert event.is_echo is True
    assert event.app_id == OUR_APP_ID
    assert event.metadata == "bot"
    assert event.sender_id == PAGE_ID
    assert event.recipient_id == PSID
    assert event.psid == PSID
    assert event.text == "We are open 9:00-18:00 on Saturday. Anything else I can help with?"


def test_echo_from_metas_page_inbox() -> None:
    event = only_event("echo_inbox.json")

    assert isinstance(event, MessageEvent)
    assert event.is_echo is True
    assert event.app_id == PAGE_INBOX_APP_ID
    assert event.metadata is None
    assert event.psid == PSID
    assert event.text == "Hi, Anna from the team here. I will take it from here!"


def test_delivery_without_timestamp_is_dated_by_its_watermark() -> None:
    event = only_event("delivery.json")

    assert isinstance(event, DeliveryEvent)
    assert event.mids == tuple(raw_event("delivery.json")["delivery"]["mids"])
    assert len(event.mids) == 1
    assert event.watermark == at_ms(1732551306070)
    assert event.timestamp == event.watermark
    assert event.psid == PSID


def test_delivery_without_mids() -> None:
    (event,) = parse_webhook(envelope(user_event(delivery={"watermark": 1732551306070})))

    assert isinstance(event, DeliveryEvent)
    assert event.mids == ()


def test_read() -> None:
    event = only_event("read.json")

    assert isinstance(event, ReadEvent)
    assert event.watermark == at_ms(1732551367406 - 4021)
    assert event.timestamp == at_ms(1732551367406)
    assert event.psid == PSID


def test_postback() -> None:
    event = only_event("postback.json")

    assert isinstance(event, PostbackEvent)
    assert event.mid == raw_event("postback.json")["postback"]["mid"]
    assert event.title == "Get Started"
    assert event.payload == "GET_STARTED"
    assert event.referral == {"ref": "autumn-promo", "source": "SHORTLINK", "type": "OPEN_THREAD"}
    assert event.psid == PSID


def test_postback_without_mid_or_referral() -> None:
    (event,) = parse_webhook(envelope(user_event(postback={"title": "Menu", "payload": "MENU"})))

    assert isinstance(event, PostbackEvent)
    assert (event.mid, event.title, event.payload, event.referral) == (None, "Menu", "MENU", None)


def test_reaction_react() -> None:
    event = only_event("reaction_react.json")

    assert isinstance(event, ReactionEvent)
    assert event.mid == raw_event("reaction_react.json")["reaction"]["mid"]
    assert event.action == "react"
    assert event.reaction == "love"
    assert event.emoji == "\u2764\ufe0f"
    assert event.psid == PSID


def test_reaction_unreact() -> None:
    event = only_event("reaction_unreact.json")

    assert isinstance(event, ReactionEvent)
    assert event.mid == raw_event("reaction_react.json")["reaction"]["mid"]
    assert event.action == "unreact"
    assert event.reaction is None
    assert event.emoji is None


def test_referral() -> None:
    event = only_event("referral.json")

    assert isinstance(event, ReferralEvent)
    assert event.ref == "winter-campaign"
    assert event.source == "SHORTLINK"
    assert event.type == "OPEN_THREAD"
    assert event.referral == raw_event("referral.json")["referral"]
    assert event.psid == PSID


def test_standby_message() -> None:
    event = only_event("standby.json")

    assert isinstance(event, MessageEvent)
    assert event.channel == "standby"
    assert event.text == "Are you still there?"
    assert event.psid == PSID


def test_batch_of_two_entries_with_three_events_each() -> None:
    events = parse_webhook(load("batch_2x3.json"))

    assert len(events) == 6
    assert all(isinstance(event, MessageEvent) for event in events)
    assert [event.text for event in events] == [
        "Hello",
        "I ordered on Monday",
        "Where is my parcel?",
        "Hi there",
        "Do you deliver to Lyon?",
        "Thanks!",
    ]
    assert [event.psid for event in events] == [PSID] * 3 + [OTHER_PSID] * 3
    assert {event.page_id for event in events} == {PAGE_ID}
    assert len({event.mid for event in events}) == 6
    assert [event.timestamp for event in events] == sorted(event.timestamp for event in events)


@pytest.mark.parametrize("name", sorted(path.name for path in FIXTURES.glob("*.json")))
def test_every_fixture_gives_well_typed_events(name: str) -> None:
    events = parse_webhook(load(name))

    assert len(events) == (6 if name == "batch_2x3.json" else 1)
    for event in events:
        assert_well_typed(event)


def test_events_are_immutable() -> None:
    event = only_event("text_message.json")

    with pytest.raises(dataclasses.FrozenInstanceError):
        event.text = "changed"  # type: ignore[misc]


def test_a_message_event_with_messaging_and_standby_entries_yields_both() -> None:
    payload = envelope(text_event("m_1"))
    payload["entry"][0]["standby"] = [text_event("m_2")]

    events = parse_webhook(payload)

    assert [(event.mid, event.channel) for event in events] == [("m_1", "messaging"), ("m_2", "standby")]


# --- Instagram --------------------------------------------------------------------------

IG_ACCOUNT_ID = "17841405822304914"
IGSID = "1254459154682919"


def at_s(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def test_messenger_events_say_their_platform() -> None:
    assert {event.platform for event in parse_webhook(load("batch_2x3.json"))} == {"messenger"}


def test_instagram_direct_message() -> None:
    event = only_event("instagram_text.json")

    assert isinstance(event, MessageEvent)
    assert event.platform == "instagram"
    assert event.page_id == IG_ACCOUNT_ID
    assert (event.sender_id, event.recipient_id, event.psid) == (IGSID, IG_ACCOUNT_ID, IGSID)
    assert event.text == "Hi! Do you ship to Porto?"
    assert event.timestamp == at_ms(1732550460311)
    assert (event.is_echo, event.is_deleted, event.is_unsupported) == (False, False, False)
    assert event.story_reply is None


def test_instagram_story_reply() -> None:
    event = only_event("instagram_story_reply.json")
    story = raw_event("instagram_story_reply.json")["message"]["reply_to"]["story"]

    assert isinstance(event, MessageEvent)
    assert event.text == "Is this one still available in blue?"
    assert event.story_reply == StoryReply(id="17998765432101234", url=story["url"])
    assert event.reply_to_mid is None


def test_instagram_story_mention_keeps_the_storys_url() -> None:
    event = only_event("instagram_story_mention.json")

    assert isinstance(event, MessageEvent)
    assert event.text is None
    (attachment,) = event.attachments
    assert attachment.type == "story_mention"
    assert attachment.is_story_mention is True
    assert attachment.url is not None
    assert attachment.url.startswith(
        "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=17912345678901234"
    )


def test_instagram_reaction_is_parsed_as_on_messenger() -> None:
    event = only_event("instagram_reaction.json")

    assert isinstance(event, ReactionEvent)
    assert event.platform == "instagram"
    assert (event.action, event.reaction, event.emoji) == ("react", "love", "\u2764\ufe0f")
    assert event.mid == raw_event("instagram_text.json")["message"]["mid"]


def test_instagram_seen_names_a_message_and_is_read_up_to_its_time() -> None:
    event = only_event("instagram_seen.json")

    assert isinstance(event, ReadEvent)
    assert event.watermark == event.timestamp == at_ms(1732550800120)


def test_instagram_test_delivery_in_changes_is_parsed_as_its_messaging_event() -> None:
    event = only_event("instagram_test_delivery.json")

    assert isinstance(event, MessageEvent)
    assert (event.platform, event.page_id, event.channel) == ("instagram", "0", "messaging")
    assert (event.sender_id, event.mid, event.text) == ("12334", "random_mid", "random_text")
    # Its timestamp is a digit string of seconds.
    assert event.timestamp == at_s(1527459824)


@pytest.mark.parametrize("field", ["messages", "message_reactions", "messaging_seen", "message_edit"])
def test_each_messaging_field_of_a_test_delivery_is_parsed(field: str) -> None:
    kinds = {
        "messages": {"message": {"mid": "m_t", "text": "hi"}},
        "message_reactions": {"reaction": {"mid": "m_t", "action": "react", "emoji": "x"}},
        "messaging_seen": {"read": {"mid": "m_t"}},
        "message_edit": {"message_edit": {"mid": "m_t", "text": "hi!", "num_edit": 1}},
    }
    change = {"field": field, "value": user_event(**kinds[field])}
    payload = {"object": "instagram", "entry": [{"id": "0", "time": 1732551100, "changes": [change]}]}

    (event,) = parse_webhook(payload)

    assert event.platform == "instagram"
    assert event.timestamp == at_ms(1732550460311)


# --- deleted and unsupported messages ----------------------------------------------------


def test_a_deleted_instagram_message_is_flagged_with_its_mid_only() -> None:
    event = only_event("instagram_deleted.json")

    assert isinstance(event, MessageEvent)
    assert event.is_deleted is True
    assert event.mid == raw_event("instagram_text.json")["message"]["mid"]
    assert (event.text, event.attachments) == (None, ())


@pytest.mark.parametrize(
    ("value", "flagged"),
    [(True, True), ("true", True), ("TRUE ", True), (False, False), ("false", False), ("yes", False),
     (1, False), (None, False), ({"v": True}, False)],
)  # fmt: skip
def test_flags_are_true_as_a_boolean_or_as_metas_string(value: object, flagged: bool) -> None:
    message = {"mid": "m_f", "is_deleted": value, "is_unsupported": value, "is_echo": value}

    (event,) = parse_webhook(envelope(user_event(message=message)))

    assert isinstance(event, MessageEvent)
    assert (event.is_deleted, event.is_unsupported, event.is_echo) == (flagged, flagged, flagged)


def test_an_unsupported_message_flagged_on_the_message() -> None:
    event = only_event("instagram_unsupported.json")

    assert isinstance(event, MessageEvent)
    assert event.is_unsupported is True
    assert (event.text, event.attachments, event.is_deleted) == (None, (), False)


def test_an_unsupported_message_flagged_by_its_attachments_type() -> None:
    event = only_event("attachment_unsupported.json")

    assert isinstance(event, MessageEvent)
    assert event.is_unsupported is True
    assert event.attachments == (
        Attachment(type="unsupported_type", url=None, title=None, payload={}, sticker_id=None),
    )


def test_story_replies_of_the_wrong_shape_are_dropped() -> None:
    stories = [None, "story", {"id": None, "url": 5}, {}, ["x"], {"id": 17998765432101234}]

    events = parse_webhook(
        envelope(
            *(
                user_event(message={"mid": f"m_{i}", "reply_to": {"story": story}})
                for i, story in enumerate(stories)
            )
        )
    )

    assert [event.story_reply for event in events] == [
        None,
        None,
        None,
        None,
        None,
        StoryReply(id="17998765432101234", url=None),
    ]  # type: ignore[attr-defined]


# --- message edits -----------------------------------------------------------------------


def test_message_edit() -> None:
    event = only_event("message_edit.json")

    assert isinstance(event, MessageEditEvent)
    assert (event.platform, event.page_id, event.sender_id, event.channel) == (
        "messenger", PAGE_ID, PSID, "messaging",
    )  # fmt: skip
    assert event.mid == raw_event("text_message.json")["message"]["mid"]
    assert event.text == "Hi! What are your opening hours on Sunday?"
    assert event.num_edit == 1
    assert event.timestamp == at_ms(1732551300311)


def test_a_message_edit_without_its_sender_is_kept_by_its_mid() -> None:
    edit = {"timestamp": 1732551300311, "message_edit": {"mid": "m_e", "text": "fixed", "num_edit": "2"}}
    payload = {
        "object": "instagram",
        "entry": [{"id": IG_ACCOUNT_ID, "time": 1732551300500, "messaging": [edit]}],
    }

    (event,) = parse_webhook(payload)

    assert isinstance(event, MessageEditEvent)
    assert (event.sender_id, event.mid, event.text, event.num_edit) == (None, "m_e", "fixed", 2)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"mid": "m_e", "text": 42, "num_edit": "two"}, (None, None)),
        ({"mid": "m_e", "text": "ok", "num_edit": True}, ("ok", None)),
        ({"mid": "m_e"}, (None, None)),
    ],
)
def test_odd_fields_of_a_message_edit_are_dropped(
    edit: dict[str, Any], expected: tuple[object, object]
) -> None:
    (event,) = parse_webhook(envelope(user_event(message_edit=edit)))

    assert isinstance(event, MessageEditEvent)
    assert (event.text, event.num_edit) == expected


# --- comments ----------------------------------------------------------------------------

POST_ID = "104728561934527_122112233445566778"


def feed_change(**value: Any) -> dict[str, Any]:
    return {
        "object": "page",
        "entry": [{"id": PAGE_ID, "time": 1732551400, "changes": [{"field": "feed", "value": value}]}],
    }


def comment_value(**changes: Any) -> dict[str, Any]:
    return {**load("feed_comment.json")["entry"][0]["changes"][0]["value"], **changes}


def test_facebook_feed_comment() -> None:
    event = only_event("feed_comment.json")

    assert isinstance(event, CommentEvent)
    assert (event.platform, event.page_id, event.verb) == ("messenger", PAGE_ID, "add")
    assert event.comment_id == "122112233445566778_1087654321098765"
    assert (event.post_id, event.parent_id) == (POST_ID, POST_ID)
    assert event.is_reply is False
    assert (event.author_id, event.author_name) == ("8123456789012345", "Ada Lovelace")
    assert event.text == "How much is the blue one? Do you ship to Porto?"
    assert event.timestamp == at_s(1732551399)
    assert event.raw == load("feed_comment.json")["entry"][0]["changes"][0]["value"]


def test_facebook_feed_comment_in_the_old_shape() -> None:
    event = only_event("feed_comment_old.json")

    assert isinstance(event, CommentEvent)
    assert (event.author_id, event.author_name) == ("8234567890123456", "Grace Hopper")
    assert event.comment_id == "122112233445566778_1098765432109876"
    # A reply to Ada's comment, not to the post.
    assert event.parent_id == "122112233445566778_1087654321098765"
    assert event.is_reply is True
    assert event.text == "Same question, and is there a red one?"
    assert event.timestamp == at_s(1732551498)


def test_instagram_comment() -> None:
    event = only_event("instagram_comment.json")

    assert isinstance(event, CommentEvent)
    assert (event.platform, event.page_id, event.verb) == ("instagram", IG_ACCOUNT_ID, "add")
    assert (event.comment_id, event.post_id, event.parent_id) == (
        "17865799348089039",
        "18023456789012345",
        None,
    )
    assert (event.author_id, event.author_name) == (IGSID, "ada.lovelace")
    assert event.text == "Price please? \U0001f60d"
    # Instagram does not say when the comment was made: the entry's time (seconds) does.
    assert event.timestamp == at_s(1732551200)


def test_an_instagram_reply_to_a_comment_names_its_parent() -> None:
    value = {
        **load("instagram_comment.json")["entry"][0]["changes"][0]["value"],
        "parent_id": 17865799348080000,
    }
    payload = {
        "object": "instagram",
        "entry": [{"id": IG_ACCOUNT_ID, "changes": [{"field": "comments", "value": value}]}],
    }

    (event,) = parse_webhook(payload)

    assert isinstance(event, CommentEvent)
    assert (event.parent_id, event.is_reply) == ("17865799348080000", True)


@pytest.mark.parametrize("verb", ["edited", "remove", "hide", "unhide"])
def test_every_verb_of_a_comment_is_kept_for_the_core_to_decide(verb: str) -> None:
    (event,) = parse_webhook(feed_change(**comment_value(verb=verb)))

    assert isinstance(event, CommentEvent)
    assert event.verb == verb


def test_ids_as_json_numbers_in_a_comment_are_strings() -> None:
    value = comment_value(
        comment_id=1087654321098765,
        post_id=122112233445566778,
        parent_id=1,
        **{"from": {"id": 8123456789012345}},
    )
    payload = feed_change(**value)
    payload["entry"][0]["id"] = 104728561934527

    (event,) = parse_webhook(payload)

    assert isinstance(event, CommentEvent)
    assert (event.page_id, event.comment_id, event.post_id, event.parent_id, event.author_id) == (
        PAGE_ID, "1087654321098765", "122112233445566778", "1", "8123456789012345",
    )  # fmt: skip
    assert event.author_name is None


def test_a_comment_without_author_is_skipped_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="messenger.parser")
    anonymous = {key: value for key, value in comment_value().items() if key != "from"}
    payload = feed_change(**anonymous)
    payload["entry"][0]["changes"].append({"field": "feed", "value": comment_value(comment_id="c_ok")})

    events = parse_webhook(payload)

    assert [event.comment_id for event in events] == ["c_ok"]  # type: ignore[attr-defined]
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == f"Skipped changes[0] of page {PAGE_ID}: comment has no author"


GARBAGE_COMMENTS: list[tuple[object, str]] = [
    ("a comment", '"feed" change value is not an object'),
    (comment_value(comment_id=None), "comment has no id"),
    (comment_value(comment_id=""), "comment has no id"),
    (comment_value(comment_id=["c"]), "comment has no id"),
    (comment_value(verb=None), "comment has no verb"),
    (comment_value(verb=""), "comment has no verb"),
    (comment_value(**{"from": "8123456789012345"}), "comment has no author"),
    (comment_value(**{"from": {"id": True}}), "comment has no author"),
    (comment_value(**{"from": None}, sender_id={"id": "x"}), "comment has no author"),
]


@pytest.mark.parametrize(("value", "reason"), GARBAGE_COMMENTS)
def test_a_malformed_comment_is_skipped_and_logged_while_its_siblings_are_returned(
    value: object, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="messenger.parser")
    payload = feed_change()
    payload["entry"][0]["changes"] = [
        {"field": "feed", "value": comment_value(comment_id="c_before")},
        {"field": "feed", "value": value},
        {"field": "feed", "value": comment_value(comment_id="c_after")},
    ]

    events = parse_webhook(payload)

    assert [event.comment_id for event in events] == ["c_before", "c_after"]  # type: ignore[attr-defined]
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == f"Skipped changes[1] of page {PAGE_ID}: {reason}"


def test_optional_fields_of_a_comment_of_the_wrong_type_are_dropped() -> None:
    value = comment_value(message=42, post_id={"id": "x"}, parent_id=[], created_time="yesterday")
    value["from"] = {"id": "8123456789012345", "name": 7}
    value["post"] = "not an object"

    (event,) = parse_webhook(feed_change(**value))

    assert isinstance(event, CommentEvent)
    assert (event.text, event.post_id, event.parent_id, event.author_name) == (None, None, None, None)
    assert event.timestamp == at_s(1732551400)  # the entry's time


def test_the_post_id_falls_back_on_the_post_object() -> None:
    (event,) = parse_webhook(feed_change(**comment_value(post_id=None)))

    assert isinstance(event, CommentEvent)
    assert event.post_id == POST_ID


@pytest.mark.parametrize("item", ["status", "post", "photo", "like", "reaction", "share", None, ["comment"]])
def test_feed_changes_other_than_comments_are_ignored_at_debug(
    item: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="messenger.parser")

    assert parse_webhook(feed_change(**comment_value(item=item))) == []
    assert [record.levelno for record in caplog.records] == [logging.DEBUG]


@pytest.mark.parametrize(
    ("kind", "field"),
    [("page", "ratings"), ("page", "mention"), ("instagram", "mentions"), ("instagram", "story_insights"),
     ("page", "comments"), ("instagram", "feed")],
)  # fmt: skip
def test_changes_of_other_fields_are_ignored_at_debug(
    kind: str, field: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="messenger.parser")
    payload = {
        "object": kind,
        "entry": [{"id": PAGE_ID, "changes": [{"field": field, "value": comment_value()}]}],
    }

    assert parse_webhook(payload) == []
    assert [record.levelno for record in caplog.records] == [logging.DEBUG]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("feed", "change is not an object"),
        ({"value": comment_value()}, "change has no field"),
        ({"field": ["feed"], "value": comment_value()}, "change has no field"),
        ({"field": "messages", "value": "hi"}, "event is not an object"),
        ({"field": "messages", "value": {"message": {"mid": "m_x"}}}, "sender has no id"),
    ],
)
def test_malformed_changes_are_skipped_with_one_warning(
    change: object, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    payload = {"object": "instagram", "entry": [{"id": "0", "changes": [change]}]}

    assert parse_webhook(payload) == []
    assert caplog.messages == [f"Skipped changes[0] of page 0: {reason}"]


def test_changes_that_are_not_a_list_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    payload = envelope(text_event("m_ok"))
    payload["entry"][0]["changes"] = {"field": "feed"}

    assert [event.mid for event in parse_webhook(payload)] == ["m_ok"]  # type: ignore[attr-defined]
    assert caplog.messages == [f"Skipped changes of page {PAGE_ID}: not a list"]


# --- the deliveries tests and `make run` build (devtools.webhook) -----------------------


def test_the_built_deliveries_are_read_as_what_they_name() -> None:
    now = datetime.now(UTC)

    (dm,) = parse_webhook(webhook.instagram_message(mid="m_ig", text="Olá"))
    (edit,) = parse_webhook(webhook.message_edit(mid="m_1", text="fixed", num_edit=2))
    (fb,) = parse_webhook(webhook.feed_comment(comment_id="c_1", text="Price?", created_time=1732551399))
    (ig,) = parse_webhook(webhook.instagram_comment(comment_id="c_2", text="Price?"))

    assert isinstance(dm, MessageEvent)
    assert (dm.platform, dm.page_id, dm.psid, dm.text) == (
        "instagram",
        webhook.INSTAGRAM_ACCOUNT_ID,
        webhook.IGSID,
        "Olá",
    )
    assert isinstance(edit, MessageEditEvent)
    assert (edit.platform, edit.sender_id, edit.mid, edit.text, edit.num_edit) == (
        "messenger",
        PSID,
        "m_1",
        "fixed",
        2,
    )
    assert isinstance(fb, CommentEvent)
    assert (fb.platform, fb.page_id, fb.comment_id, fb.post_id, fb.verb) == (
        "messenger",
        PAGE_ID,
        "c_1",
        webhook.POST_ID,
        "add",
    )
    assert fb.timestamp == at_s(1732551399)
    assert isinstance(ig, CommentEvent)
    assert (ig.platform, ig.page_id, ig.comment_id, ig.post_id, ig.author_id) == (
        "instagram", webhook.INSTAGRAM_ACCOUNT_ID, "c_2", webhook.MEDIA_ID, webhook.IGSID,
    )  # fmt: skip
    assert abs(ig.timestamp - now) < timedelta(seconds=5)


# --- times -------------------------------------------------------------------------------

NOON = datetime(2024, 11, 25, 16, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        1732550460000,
        "1732550460000",
        1732550460,
        "1732550460",
        1732550460.0,
        "2024-11-25T16:01:00+0000",
        "2024-11-25T16:01:00Z",
        "2024-11-25T17:01:00+01:00",
        "2024-11-25T16:01:00",
        " 2024-11-25T16:01:00.000+00:00 ",
    ],
)
def test_times_in_milliseconds_seconds_or_iso_8601_are_understood(value: object) -> None:
    comment = comment_value(created_time=value)

    events = parse_webhook(
        {
            "object": "page",
            "entry": [
                {"id": PAGE_ID, "time": value, "messaging": [message_with(timestamp=value)]},
                {"id": PAGE_ID, "time": value, "changes": [{"field": "feed", "value": comment}]},
            ],
        }
    )

    assert [event.timestamp for event in events] == [NOON, NOON]


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2024-13-45T00:00:00",
        "0001-01-01T00:00:00+0100",
        "2024-11-25T16:01:00" + " " * 40,
        "1e12",
        "",
        -1,
    ],
)
def test_times_that_cannot_be_read_fall_back_on_the_entrys(value: object) -> None:
    payload = feed_change(**comment_value(created_time=value))
    payload["entry"][0]["messaging"] = [message_with(timestamp=value)]

    events = parse_webhook(payload)

    assert [event.timestamp for event in events] == [at_s(1732551400)] * 2


# --- envelopes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([], "body is not a JSON object"),
        ([{"object": "page", "entry": []}], "body is not a JSON object"),
        (None, "body is not a JSON object"),
        ("page", "body is not a JSON object"),
        (42, "body is not a JSON object"),
        ({"entry": []}, '"object" is not "page" or "instagram"'),
        ({"object": "user", "entry": []}, '"object" is not "page" or "instagram"'),
        ({"object": ["page"], "entry": []}, '"object" is not "page" or "instagram"'),
        ({"object": "page"}, '"entry" is not a list'),
        ({"object": "page", "entry": {"id": PAGE_ID}}, '"entry" is not a list'),
        ({"object": "page", "entry": None}, '"entry" is not a list'),
        ({"object": "page", "entry": [{"id": PAGE_ID, "messaging": []}, "x"]}, '"entry[1]" is not an object'),
    ],
)
def test_malformed_envelope_raises_with_a_short_reason(payload: object, reason: str) -> None:
    with pytest.raises(MalformedEnvelope) as raised:
        parse_webhook(payload)

    assert str(raised.value) == reason
    assert isinstance(raised.value, ValueError)


def test_empty_entry_list_is_fine() -> None:
    assert parse_webhook({"object": "page", "entry": []}) == []


def test_empty_instagram_entry_list_is_fine() -> None:
    assert parse_webhook({"object": "instagram", "entry": []}) == []


# --- skipping and leniency ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["optin", "account_linking", "policy_enforcement", "game_play", "pass_thread_control"]
)
def test_unknown_kinds_are_ignored_at_debug(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="messenger.parser")

    events = parse_webhook(envelope(user_event(**{kind: {"ref": "x"}}), text_event()))

    assert [event.mid for event in events] == ["m_valid"]  # type: ignore[attr-defined]
    assert [record.levelno for record in caplog.records] == [logging.DEBUG]
    assert kind in caplog.records[0].getMessage()


@pytest.mark.parametrize("timestamp", ["yesterday", None, True, -5, 10**30, "missing"])
def test_a_message_without_a_usable_timestamp_is_kept_with_its_entrys_time(timestamp: object) -> None:
    event = message_with(timestamp=timestamp)
    if timestamp == "missing":
        del event["timestamp"]
    body = envelope(event)
    body["entry"][0]["time"] = 1732550470000

    [parsed] = parse_webhook(body)

    assert parsed.timestamp == at_ms(1732550470000)


def test_without_the_entrys_time_either_it_is_kept_with_its_arrival_time() -> None:
    event = message_with()
    del event["timestamp"]
    body = envelope(event)
    del body["entry"][0]["time"]
    arrived = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)

    [parsed] = parse_webhook(body, received_at=arrived)

    assert parsed.timestamp == arrived


def message_with(**changes: Any) -> dict[str, Any]:
    return {**user_event(message={"mid": "m_x"}), **changes}


GARBAGE_EVENTS: list[tuple[object, str]] = [
    ("not an event", "event is not an object"),
    (42, "event is not an object"),
    (None, "event is not an object"),
    (user_event(message={"text": "no mid"}), "message has no mid"),
    (user_event(message={"mid": "", "text": "empty mid"}), "message has no mid"),
    (user_event(message="just text"), '"message" is not an object'),
    ({"recipient": {"id": PAGE_ID}, "timestamp": 1, "message": {"mid": "m_x"}}, "sender has no id"),
    (message_with(sender={"user_ref": "ref"}), "sender has no id"),
    (message_with(sender="7395028461739201"), "sender has no id"),
    (message_with(recipient={}), "recipient has no id"),
    (user_event(reaction={"action": "react"}), "reaction has no mid"),
    (user_event(reaction={"mid": "m_x"}), "reaction has no action"),
    (user_event(delivery={"mids": ["m_x"]}), "watermark is missing or not a number"),
    (user_event(read={"watermark": "soon"}), "watermark is missing or not a number"),
    (user_event(postback=["GET_STARTED"]), '"postback" is not an object'),
    (user_event(message_edit={"text": "no mid", "num_edit": 1}), "message_edit has no mid"),
    (user_event(message_edit={"mid": 7.5}), "message_edit has no mid"),
    (user_event(message_edit="fixed"), '"message_edit" is not an object'),
    (user_event(read={"mid": ""}), "watermark is missing or not a number"),
]


@pytest.mark.parametrize(("garbage", "reason"), GARBAGE_EVENTS)
def test_a_malformed_event_is_skipped_and_logged_while_its_siblings_are_returned(
    garbage: object, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="messenger.parser")

    events = parse_webhook(envelope(text_event("m_before"), garbage, text_event("m_after")))

    assert [event.mid for event in events] == ["m_before", "m_after"]  # type: ignore[attr-defined]
    (record,) = caplog.records
    assert record.name == "messenger.parser"
    assert record.levelno == logging.WARNING
    assert record.getMessage().endswith(reason)
    assert "messaging[1]" in record.getMessage()


def test_the_skip_warning_names_the_reason_but_not_the_body(caplog: pytest.LogCaptureFixture) -> None:
    secret_text = "my card number is 4111 1111 1111 1111"
    event = user_event(message={"text": secret_text})

    assert parse_webhook(envelope(event)) == []
    assert "message has no mid" in caplog.text
    assert secret_text not in caplog.text


def test_events_of_an_entry_without_id_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    entry_without_id = {"messaging": [text_event()]}
    payload = {"object": "page", "entry": [entry_without_id, *envelope(text_event("m_ok"))["entry"]]}

    events = parse_webhook(payload)

    assert [event.mid for event in events] == ["m_ok"]  # type: ignore[attr-defined]
    assert "entry has no id" in caplog.text


def test_a_messaging_value_that_is_not_a_list_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    payload = envelope(text_event("m_standby"), channel="standby")
    payload["entry"][0]["messaging"] = {"sender": {"id": PSID}}

    events = parse_webhook(payload)

    assert [event.mid for event in events] == ["m_standby"]  # type: ignore[attr-defined]
    assert "messaging of page" in caplog.text


def test_optional_fields_of_the_wrong_type_are_dropped_but_the_message_is_kept() -> None:
    message = {
        "mid": "m_odd",
        "text": 42,
        "quick_reply": "PAYLOAD",
        "reply_to": {"mid": ["m_x"]},
        "attachments": {"type": "image"},
        "is_echo": "yes",
        "app_id": "not a number",
        "metadata": {"k": "v"},
    }

    (event,) = parse_webhook(envelope(user_event(message=message)))

    assert isinstance(event, MessageEvent)
    assert event.mid == "m_odd"
    assert event.text is None
    assert event.quick_reply_payload is None
    assert event.reply_to_mid is None
    assert event.attachments == ()
    assert event.is_echo is False
    assert event.app_id is None
    assert event.metadata is None


def test_unusable_attachments_are_dropped_and_odd_payloads_emptied() -> None:
    attachments = [
        "image",
        None,
        {"payload": {"url": "https://example.com/no-type.png"}},
        {"type": 7, "payload": {}},
        {"type": "image", "payload": "https://example.com/a.png"},
        {"type": "video", "payload": {"url": 12}},
    ]

    (event,) = parse_webhook(envelope(user_event(message={"mid": "m_a", "attachments": attachments})))

    assert isinstance(event, MessageEvent)
    assert event.attachments == (
        Attachment(type="image", url=None, title=None, payload={}, sticker_id=None),
        Attachment(type="video", url=None, title=None, payload={"url": 12}, sticker_id=None),
    )


def test_numeric_ids_and_digit_string_numbers_are_coerced() -> None:
    event = {
        "sender": {"id": 7395028461739201},
        "recipient": {"id": 104728561934527},
        "timestamp": "1732550460311",
        "message": {"mid": "m_n", "is_echo": False, "app_id": "842137569012345"},
    }
    payload = {"object": "page", "entry": [{"id": 104728561934527, "messaging": [event]}]}

    (parsed,) = parse_webhook(payload)

    assert isinstance(parsed, MessageEvent)
    assert (parsed.page_id, parsed.sender_id, parsed.recipient_id) == (PAGE_ID, PSID, PAGE_ID)
    assert parsed.timestamp == datetime(2024, 11, 25, 16, 1, 0, 311000, tzinfo=UTC)
    assert parsed.app_id == OUR_APP_ID


def test_delivery_mids_that_are_not_ids_are_dropped() -> None:
    delivery = {"mids": ["m_1", None, 3, {"mid": "m_x"}, "", True], "watermark": 1732551306070}

    (event,) = parse_webhook(envelope(user_event(delivery=delivery)))

    assert isinstance(event, DeliveryEvent)
    assert event.mids == ("m_1", "3")


def test_text_is_returned_as_given() -> None:
    text = "a\x00b \u202e <SYSTEM> \U0001f600"

    (event,) = parse_webhook(envelope(text_event(text=text)))

    assert isinstance(event, MessageEvent)
    assert event.text == text


# --- fuzz --------------------------------------------------------------------------------

KEYS = [
    "object", "entry", "id", "time", "messaging", "standby", "changes", "sender", "recipient",
    "timestamp", "message", "mid", "text", "attachments", "type", "payload", "url", "title",
    "sticker_id", "quick_reply", "reply_to", "is_echo", "app_id", "metadata", "postback",
    "referral", "ref", "source", "delivery", "mids", "watermark", "read", "reaction", "action",
    "emoji", "optin", "user_ref", "coordinates", "field", "value", "item", "verb", "comment_id",
    "post_id", "parent_id", "from", "name", "username", "media", "created_time", "sender_id",
    "sender_name", "message_edit", "num_edit", "is_deleted", "is_unsupported", "story",
]  # fmt: skip
SCALARS: list[object] = [
    None, True, False, 0, -1, 1, 1732550460311, 10**40, -(10**40), 1.5, float("inf"),
    float("nan"), "", "page", "0", "1732550460311", "9" * 5000, "m_x", "\x00", "\u0663",
    "react", "image", "sha256=", "instagram", "feed", "comments", "messages", "comment", "add",
    "true", "2024-05-01T12:00:00+0000", "0001-01-01T00:00:00+0100", "unsupported_type",
]  # fmt: skip


def random_json(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if depth > 5 or roll < 0.4:
        return rng.choice(SCALARS)
    if roll < 0.65:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(KEYS): random_json(rng, depth + 1) for _ in range(rng.randint(0, 6))}


def mutated(value: object, rng: random.Random) -> object:
    """The value with one randomly chosen node replaced by random JSON."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        return {**value, key: mutated(value[key], rng)}
    if isinstance(value, list) and value and rng.random() < 0.8:
        index = rng.randrange(len(value))
        return [*value[:index], mutated(value[index], rng), *value[index + 1 :]]
    return random_json(rng)


def assert_well_typed(event: Event) -> None:
    assert isinstance(event.page_id, str) and event.page_id
    assert event.platform in ("messenger", "instagram")
    assert isinstance(event.timestamp, datetime) and event.timestamp.tzinfo is UTC
    assert isinstance(event.raw, dict)
    if isinstance(event, MessagingEvent):
        for name in ("sender_id", "recipient_id", "psid"):
            assert isinstance(getattr(event, name), str) and getattr(event, name)
        assert event.channel in ("messaging", "standby")
    if isinstance(event, MessageEvent):
        assert isinstance(event.mid, str) and event.mid
        assert event.text is None or isinstance(event.text, str)
        assert isinstance(event.is_echo, bool)
        assert isinstance(event.is_deleted, bool) and isinstance(event.is_unsupported, bool)
        if event.story_reply is not None:
            assert event.story_reply.id or event.story_reply.url
        assert event.app_id is None or type(event.app_id) is int
        for attachment in event.attachments:
            assert isinstance(attachment.type, str) and isinstance(attachment.payload, dict)
            assert attachment.url is None or isinstance(attachment.url, str)
    if isinstance(event, DeliveryEvent):
        assert all(isinstance(mid, str) for mid in event.mids)
    if isinstance(event, DeliveryEvent | ReadEvent):
        assert event.watermark.tzinfo is UTC
    if isinstance(event, MessageEditEvent):
        assert isinstance(event.mid, str) and event.mid
        assert event.sender_id is None or (isinstance(event.sender_id, str) and event.sender_id)
        assert event.num_edit is None or type(event.num_edit) is int
    if isinstance(event, CommentEvent):
        for name in ("comment_id", "author_id", "verb"):
            assert isinstance(getattr(event, name), str) and getattr(event, name)
        for name in ("post_id", "parent_id", "author_name", "text"):
            assert getattr(event, name) is None or isinstance(getattr(event, name), str)


def parse_or_reject(payload: object) -> None:
    try:
        events = parse_webhook(payload)
    except MalformedEnvelope:
        return
    for event in events:
        assert_well_typed(event)


def test_random_json_never_raises_anything_but_malformed_envelope() -> None:
    rng = random.Random(1)
    for _ in range(3000):
        parse_or_reject(random_json(rng))
        parse_or_reject({"object": "page", "entry": random_json(rng)})
        parse_or_reject({"object": "page", "entry": [{"id": PAGE_ID, "messaging": [random_json(rng)]}]})
        for kind, field in (("page", "feed"), ("instagram", "comments"), ("instagram", "messages")):
            change = {"field": field, "value": random_json(rng)}
            parse_or_reject({"object": kind, "entry": [{"id": PAGE_ID, "changes": [change]}]})


def test_mutated_fixtures_never_raise_anything_but_malformed_envelope() -> None:
    rng = random.Random(2)
    fixtures = [load(path.name) for path in sorted(FIXTURES.glob("*.json"))]
    for _ in range(400):
        for fixture in fixtures:
            parse_or_reject(mutated(copy.deepcopy(fixture), rng))
