"""The Messenger webhook over HTTP: Meta's documented payloads in, rows and reply jobs out."""

import json
import logging
from datetime import UTC, datetime

import pytest

from conversations.apis.webhooks import _log_missing_app_secret
from conversations.models import Comment, Conversation, Message
from devtools.webhook import PAGE_ID, PSID, WEBHOOK_PATH, post_signed, signature, text_message
from tests.jobs import queued_reply_jobs
from tests.messenger.fixtures import fixture

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture(autouse=True)
def empty_queue(redis_conn):
    """Every test starts with no queued jobs and no rate-limit history."""


def conversation() -> Conversation:
    return Conversation.objects.get(identity__page_id=PAGE_ID, identity__external_id=PSID)


def outgoing(*, mid: str, sent_at_ms: int) -> Message:
    return Message.objects.create(
        conversation=conversation(),
        role=Message.Role.AI,
        status=Message.Status.SENT,
        text="Our reply",
        external_id=mid,
        sent_at=datetime.fromtimestamp(sent_at_ms / 1000, tz=UTC),
    )


# Handshake


@pytest.mark.parametrize("path", [WEBHOOK_PATH, WEBHOOK_PATH + "/"])
def test_handshake_echoes_the_challenge_as_plain_text(client, path):
    response = client.get(
        path,
        {"hub.mode": "subscribe", "hub.verify_token": "test-verify-token", "hub.challenge": "1158201444"},
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"1158201444"


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "test-verify-token", "hub.challenge": "1"},
        {"hub.challenge": "1"},
    ],
)
def test_handshake_without_the_right_token_is_refused(client, query):
    assert client.get(WEBHOOK_PATH, query).status_code == 403


# Signature


def test_trailing_slash_is_served_without_a_redirect(client):
    response = post_signed(client, fixture("text_message"), path=WEBHOOK_PATH + "/")
    assert response.status_code == 200
    assert Message.objects.count() == 1


@pytest.mark.parametrize(
    "header",
    [
        None,
        signature(json.dumps(fixture("text_message")).encode(), secret="not-the-app-secret"),
        signature(b'{"object": "page", "entry": []}'),
        "sha1=" + "0" * 40,
        "sha256=not-hex",
    ],
    ids=["missing", "wrong-secret", "tampered-body", "sha1-only", "malformed"],
)
def test_unsigned_or_badly_signed_posts_are_refused_and_nothing_is_stored(client, header):
    body = json.dumps(fixture("text_message")).encode()
    headers = {} if header is None else {"X-Hub-Signature-256": header}
    response = client.post(WEBHOOK_PATH, data=body, content_type="application/json", headers=headers)
    assert response.status_code == 403
    assert not Message.objects.exists()
    assert not queued_reply_jobs()


def test_without_an_app_secret_every_post_is_refused_and_logged_once(client, settings, caplog):
    settings.FACEBOOK_APP_SECRET = ""
    _log_missing_app_secret.cache_clear()
    with caplog.at_level(logging.ERROR, logger="conversations.apis.webhooks"):
        responses = [
            post_signed(client, fixture("text_message"), **{"X-Hub-Signature-256": "sha256=" + "0" * 64})
            for _ in range(3)
        ]
    assert [response.status_code for response in responses] == [403] * 3
    assert not Message.objects.exists()
    assert caplog.text.count("FACEBOOK_APP_SECRET is not set") == 1


# What each kind of event stores and enqueues


def test_text_message_is_stored_and_queued_for_a_reply(client):
    response = post_signed(client, fixture("text_message"))
    assert response.status_code == 200
    message = Message.objects.get()
    assert message.role == Message.Role.CLIENT
    assert message.status == Message.Status.RECEIVED
    assert message.text == "Hi! What are your opening hours on Saturday?"
    assert message.external_id.startswith("m_MuzK4rQoDou7t")
    assert message.raw["message"]["mid"] == message.external_id
    assert conversation().last_message_text == message.text
    assert len(queued_reply_jobs()) == 1


def test_quick_reply_keeps_its_payload_and_is_answered_like_text(client):
    post_signed(client, fixture("quick_reply"))
    message = Message.objects.get()
    assert (message.text, message.details["quick_reply_payload"]) == ("Opening hours", "OPENING_HOURS")
    assert len(queued_reply_jobs()) == 1


def test_reply_to_links_the_quoted_message_when_it_is_known(client):
    quoted_mid = fixture("reply_to")["entry"][0]["messaging"][0]["message"]["reply_to"]["mid"]
    post_signed(client, text_message(mid=quoted_mid, text="The blue one or the red one?"))
    post_signed(client, fixture("reply_to"))
    reply = Message.objects.get(text="Yes, that one please")
    assert reply.reply_to.external_id == quoted_mid
    assert reply.details["reply_to_mid"] == quoted_mid
    assert len(queued_reply_jobs()) == 2


@pytest.mark.parametrize(
    ("name", "kind", "url_start"),
    [
        ("attachment_image", "image", "https://scontent.xx.fbcdn.net/"),
        ("attachment_audio", "audio", "https://cdn.fbsbx.com/"),
        ("attachment_video", "video", "https://video.xx.fbcdn.net/"),
        ("attachment_file", "file", "https://cdn.fbsbx.com/"),
        ("attachment_location", "location", "https://l.facebook.com/"),
        ("attachment_fallback", "fallback", "https://l.facebook.com/"),
        ("attachment_sticker", "sticker", "https://scontent.xx.fbcdn.net/"),
        ("attachment_reel", "reel", "https://www.facebook.com/reel/"),
        ("attachment_post", "post", "https://www.facebook.com/"),
    ],
)
def test_attachments_are_stored_with_their_urls_and_answered(client, name, kind, url_start):
    post_signed(client, fixture(name))
    message = Message.objects.get()
    [attachment] = message.attachments
    assert attachment["type"] == kind
    assert attachment["url"].startswith(url_start)
    assert message.status == Message.Status.RECEIVED
    assert conversation().last_message_text == (message.text or f"[{kind}]")
    assert len(queued_reply_jobs()) == 1


def test_location_keeps_its_coordinates(client):
    post_signed(client, fixture("attachment_location"))
    [attachment] = Message.objects.get().attachments
    assert attachment["payload"]["coordinates"] == {"lat": 48.8583701, "long": 2.2944813}
    assert attachment["title"] == "Pinned Location"


def test_postback_is_answered_like_text_and_keeps_payload_and_referral(client):
    post_signed(client, fixture("postback"))
    message = Message.objects.get()
    assert message.text == "Get Started"
    assert message.details["postback_payload"] == "GET_STARTED"
    assert message.details["referral"]["ref"] == "autumn-promo"
    assert message.status == Message.Status.RECEIVED
    assert len(queued_reply_jobs()) == 1


def test_echo_of_our_own_send_is_ignored(client, settings):
    settings.FACEBOOK_APP_ID = "842137569012345"  # the app id in echo_app.json
    post_signed(client, fixture("text_message"))
    post_signed(client, fixture("echo_app"))
    assert list(Message.objects.values_list("role", flat=True)) == [Message.Role.CLIENT]
    assert conversation().bot_active
    assert len(queued_reply_jobs()) == 1


def test_echo_from_the_page_inbox_is_stored_as_staff_and_pauses_the_bot(client):
    post_signed(client, fixture("echo_inbox"))
    message = Message.objects.get()
    assert message.role == Message.Role.STAFF
    assert message.status == Message.Status.SENT
    assert message.text == "Hi, Anna from the team here. I will take it from here!"
    assert message.conversation.identity.external_id == PSID  # the person, not the Page
    assert not conversation().bot_active
    assert not queued_reply_jobs()


def test_delivery_marks_our_message_delivered_and_is_not_answered(client):
    post_signed(client, fixture("text_message"))
    delivered_mid = fixture("delivery")["entry"][0]["messaging"][0]["delivery"]["mids"][0]
    reply = outgoing(mid=delivered_mid, sent_at_ms=1732551306500)  # after the watermark: by mid only
    post_signed(client, fixture("delivery"))
    reply.refresh_from_db()
    assert reply.delivered_at is not None
    assert Message.objects.count() == 2
    assert len(queued_reply_jobs()) == 1


def test_read_marks_what_was_sent_before_the_watermark(client):
    post_signed(client, fixture("text_message"))
    before = outgoing(mid="m_before", sent_at_ms=1732551363000)
    after = outgoing(mid="m_after", sent_at_ms=1732551364000)  # watermark is 1732551363385
    post_signed(client, fixture("read"))
    before.refresh_from_db()
    after.refresh_from_db()
    assert before.read_at is not None and before.delivered_at is not None
    assert after.read_at is None
    assert len(queued_reply_jobs()) == 1


def test_reaction_is_stored_on_the_message_and_taken_back_on_unreact(client):
    post_signed(client, fixture("text_message"))
    reacted_mid = fixture("reaction_react")["entry"][0]["messaging"][0]["reaction"]["mid"]
    reply = outgoing(mid=reacted_mid, sent_at_ms=1732551400000)
    post_signed(client, fixture("reaction_react"))
    reply.refresh_from_db()
    assert reply.reaction == "\u2764\ufe0f"
    post_signed(client, fixture("reaction_unreact"))
    reply.refresh_from_db()
    assert reply.reaction == ""
    assert len(queued_reply_jobs()) == 1


def test_referral_is_acknowledged_and_neither_stored_nor_answered(client):
    response = post_signed(client, fixture("referral"))
    assert response.status_code == 200
    assert not Message.objects.exists()
    assert not queued_reply_jobs()


def test_standby_message_is_stored_and_the_bot_steps_back(client):
    post_signed(client, fixture("standby"))
    message = Message.objects.get()
    assert message.text == "Are you still there?"
    assert not conversation().bot_active


# Batches, redelivery, rate limit


@pytest.mark.parametrize(
    "name",
    [
        "instagram_text",
        "instagram_story_mention",
        "instagram_test_delivery",
        "instagram_comment",
        "feed_comment",
        "feed_comment_old",
        "message_edit",
    ],
)
def test_instagram_deliveries_comments_and_edits_are_acknowledged_and_store_nothing_yet(client, name):
    # Comments: COMMENT_REPLIES is off by default (tests/conversations/services/test_comments.py).
    response = post_signed(client, fixture(name))

    assert response.status_code == 200
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()
    assert not Comment.objects.exists()
    assert queued_reply_jobs() == []


def test_batch_of_two_entries_with_three_messages_each_stores_and_queues_six(client):
    assert post_signed(client, fixture("batch_2x3")).status_code == 200
    assert Message.objects.filter(role=Message.Role.CLIENT, status=Message.Status.RECEIVED).count() == 6
    assert Conversation.objects.count() == 2
    assert len(queued_reply_jobs()) == 6


def test_same_mid_delivered_three_times_is_stored_and_queued_once(client):
    responses = [post_signed(client, fixture("text_message")) for _ in range(3)]
    assert [response.status_code for response in responses] == [200] * 3
    assert Message.objects.count() == 1
    assert len(queued_reply_jobs()) == 1


def test_a_batch_carrying_an_already_stored_mid_stores_the_rest(client):
    post_signed(client, text_message(mid="m_first"))
    batch = text_message(mid="m_second", text="And another thing")
    batch["entry"][0]["messaging"].insert(0, text_message(mid="m_first")["entry"][0]["messaging"][0])
    assert post_signed(client, batch).status_code == 200
    assert sorted(Message.objects.values_list("external_id", flat=True)) == ["m_first", "m_second"]
    assert len(queued_reply_jobs()) == 2


def test_a_redelivered_standby_message_leaves_a_resumed_bot_alone(client):
    post_signed(client, fixture("standby"))
    Conversation.objects.update(bot_active=True)  # staff resumed the bot
    assert post_signed(client, fixture("standby")).status_code == 200
    assert Message.objects.count() == 1
    assert conversation().bot_active


def test_fourteen_messages_in_a_minute_store_fourteen_and_queue_ten_and_the_notice(client, settings):
    settings.FACEBOOK_RATE_LIMIT_MESSAGES_PER_MINUTE = 10
    for number in range(14):
        assert post_signed(client, text_message(mid=f"m_burst_{number}")).status_code == 200
    assert Message.objects.count() == 14
    # Ten to answer, and the first one over the limit, whose job sends the one short notice.
    queued = [Message.objects.get(pk=job.args[0]).external_id for job in queued_reply_jobs()]
    assert queued == [f"m_burst_{n}" for n in range(11)]
    limited = Message.objects.filter(status=Message.Status.RATE_LIMITED).order_by("id")
    assert [message.external_id for message in limited] == [f"m_burst_{n}" for n in range(10, 14)]
    assert [message.details.get("rate_limit_notice") for message in limited] == ["pending", None, None, None]


# Bad input never makes it answer 5xx


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"[]",
        b'{"object": "page"}',
        b'{"object": "page", "entry": {"id": "1"}}',
        b'{"object": "page", "entry": ["garbage"]}',
        b'{"object": "user", "entry": []}',
        b"\xff\xfe\x00garbage",
        b"[" * 100_000,
    ],
    ids=[
        "not-json",
        "empty",
        "array",
        "no-entry",
        "entry-not-list",
        "entry-not-object",
        "not-page-or-instagram",
        "invalid-utf8",
        "deeply-nested",
    ],
)
def test_signed_bodies_that_are_not_envelopes_are_rejected_with_400(client, body):
    response = post_signed(client, body)
    assert response.status_code == 400
    assert "detail" in response.json()
    assert not Message.objects.exists()


def test_garbage_events_are_skipped_and_the_rest_of_the_batch_is_stored(client):
    payload = text_message(mid="m_good")
    payload["entry"][0]["messaging"] = [
        "garbage",
        {"sender": {"id": PSID}},
        {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": 1, "message": {"text": "no mid"}},
        {
            "sender": {"id": "\u0000" * 3},
            "recipient": {"id": PAGE_ID},
            "timestamp": 1,
            "message": {"mid": "m_x"},
        },
        {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": 1, "message": {"mid": "m" * 300}},
        {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": 1, "optin": {"ref": "x"}},
        *payload["entry"][0]["messaging"],
    ]
    assert post_signed(client, payload).status_code == 200
    assert list(Message.objects.values_list("external_id", flat=True)) == ["m_good"]
    assert len(queued_reply_jobs()) == 1


def test_a_thirty_thousand_character_text_is_stored_whole(client):
    text = "x" * 30_000
    assert post_signed(client, text_message(mid="m_long", text=text)).status_code == 200
    assert Message.objects.get().text == text
    assert len(conversation().last_message_text) == 255


def test_nul_bytes_and_lone_surrogates_are_cleaned_not_refused(client):
    body = json.dumps(text_message(mid="m_nul", text="a\u0000b\ud800c")).encode()
    body = body.replace(b'"timestamp"', b'"junk\\u0000": "\\u0000", "nan": NaN, "timestamp"', 1)
    assert post_signed(client, body).status_code == 200
    message = Message.objects.get()
    assert message.text == "ab\ufffdc"
    assert message.raw["junk"] == "" and message.raw["nan"] is None
    assert len(queued_reply_jobs()) == 1
