"""The Graph client against the Graph stand-in: real requests, real sockets, real timeouts."""

import logging
import random
import re
import time

import pytest
import requests

from devtools.standins.client import standin_process
from devtools.standins.graph import PAGE_ID, commenter_psid
from devtools.standins.server import closed_port_url
from messenger.errors import (
    CommentUnavailableError,
    DeliveryError,
    InvalidTokenError,
    PermanentDeliveryError,
    RecipientUnreachableError,
    TransientDeliveryError,
    classify_graph_error,
)
from messenger.graph import (
    INSTAGRAM_MESSAGE_CHARACTER_LIMIT,
    OUR_METADATA_MARKER,
    GraphClient,
    InstagramAccount,
    SentMessage,
    split_message,
)

TOKEN = "EAAG-page-token-secret-123"
PSID = "24012345678901234"
IGSID = "1254459154682919"
COMMENT_ID = "122112233445566778_1087654321098765"
IG_COMMENT_ID = "17865799348089039"


@pytest.fixture
def client(graph):
    return GraphClient(base_url=graph.url, api_version="v24.0", access_token=TOKEN, timeout=(1, 1))


# --- sending -----------------------------------------------------------------------------


def test_send_text_posts_the_message_and_returns_metas_id(graph, client, caplog):
    caplog.set_level(logging.DEBUG)

    message_id = client.send_text(psid=PSID, text="Hello!", metadata=OUR_METADATA_MARKER)

    [call] = graph.calls()
    assert message_id.startswith("m_")
    assert (call["method"], call["path"]) == ("POST", "/v24.0/me/messages")
    assert call["json"] == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "Hello!", "metadata": OUR_METADATA_MARKER},
    }
    assert f"Message sent: sender={PSID} mid={message_id}" in caplog.messages


def test_the_token_travels_in_the_header_only(graph, client, caplog):
    caplog.set_level(logging.DEBUG)

    client.send_text(psid=PSID, text="Hi", metadata=OUR_METADATA_MARKER)
    client.send_action(psid=PSID, action="mark_seen")

    for call in graph.calls():
        assert call["headers"]["authorization"] == f"Bearer {TOKEN}"
        assert TOKEN not in call["path"] and TOKEN not in str(call["query"])
    assert TOKEN not in caplog.text


def test_send_action_posts_a_sender_action(graph, client):
    client.send_action(psid=PSID, action="typing_on")

    [call] = graph.calls(kind="action")
    assert call["json"] == {"recipient": {"id": PSID}, "sender_action": "typing_on"}


def test_from_settings_reads_the_graph_settings(graph, settings):
    settings.FACEBOOK_GRAPH_API_URL = graph.url + "/"
    settings.FACEBOOK_GRAPH_API_VERSION = "v23.0"
    settings.FACEBOOK_PAGE_ACCESS_TOKEN = TOKEN
    settings.GRAPH_TIMEOUT_SECONDS = 0.3
    graph.script(default={"delay": 1})

    with pytest.raises(TransientDeliveryError):
        GraphClient.from_settings().send_action(psid=PSID, action="mark_seen")

    [call] = graph.calls()
    assert call["path"] == "/v23.0/me/messages"
    assert call["headers"]["authorization"] == f"Bearer {TOKEN}"


# --- private replies ---------------------------------------------------------------------


def test_a_private_reply_goes_to_the_comment_and_names_the_commenter(graph, client, caplog):
    caplog.set_level(logging.INFO)

    sent = client.private_reply_send(
        comment_id=COMMENT_ID, text="Hi Ada! Yes, we ship to Porto.", metadata=OUR_METADATA_MARKER
    )

    [call] = graph.calls()
    assert (call["kind"], call["path"], call["comment_id"]) == (
        "private_reply",
        "/v24.0/me/messages",
        COMMENT_ID,
    )
    assert call["json"] == {
        "recipient": {"comment_id": COMMENT_ID},
        "messaging_type": "RESPONSE",
        "message": {"text": "Hi Ada! Yes, we ship to Porto.", "metadata": OUR_METADATA_MARKER},
    }
    assert sent == SentMessage(message_id=sent.message_id, recipient_id=commenter_psid(COMMENT_ID))
    assert sent.message_id.startswith("m_")
    assert (
        f"Private reply sent: comment={COMMENT_ID} sender={commenter_psid(COMMENT_ID)} mid={sent.message_id}"
        in caplog.messages
    )


def test_send_text_to_a_comment_is_its_private_reply(graph, client):
    message_id = client.send_text(
        comment_id=IG_COMMENT_ID,
        text="Hi!",
        metadata=OUR_METADATA_MARKER,
        quick_replies=[("Prices", "PRICES")],
    )

    [call] = graph.calls(kind="private_reply")
    assert message_id.startswith("m_")
    assert call["json"]["recipient"] == {"comment_id": IG_COMMENT_ID}
    assert call["json"]["message"]["quick_replies"] == [
        {"content_type": "text", "title": "Prices", "payload": "PRICES"}
    ]


def test_a_comment_gets_one_private_reply_and_a_second_is_refused_for_good(graph, client):
    client.send_text(comment_id=COMMENT_ID, text="Hi!", metadata=OUR_METADATA_MARKER)

    with pytest.raises(CommentUnavailableError) as caught:
        client.send_text(comment_id=COMMENT_ID, text="Hi again!", metadata=OUR_METADATA_MARKER)

    # Recorded, not retried, and no apology: it is a recipient that cannot be reached.
    assert isinstance(caught.value, RecipientUnreachableError)
    assert (caught.value.code, caught.value.http_status) == (10900, 400)
    assert caught.value.reason.startswith("(#10900) Activity already replied to")
    assert [call["status"] for call in graph.calls()] == [200, 400]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"text": "Hi"},
        {"psid": PSID, "comment_id": COMMENT_ID, "text": "Hi"},
        {"comment_id": COMMENT_ID, "text": "Hi", "tag": "HUMAN_AGENT"},
    ],
)
def test_send_text_needs_one_recipient_and_a_private_reply_is_never_tagged(graph, client, kwargs):
    with pytest.raises(ValueError):
        client.send_text(metadata=OUR_METADATA_MARKER, **kwargs)

    assert graph.calls() == []


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ({"status": 400, "code": 10903, "message": "(#10903) Cannot reply privately to this comment again"}, CommentUnavailableError),
        ({"status": 400, "code": 10902, "message": "(#10902) This is not a Replyable activity"}, CommentUnavailableError),
        ({"status": 400, "code": 10, "subcode": 2018108}, CommentUnavailableError),
        ({"status": 400, "code": 100, "subcode": 2534025, "message": "The comment is invalid for a private reply"}, CommentUnavailableError),
        ({"status": 400, "code": 100, "subcode": 33, "message": "Object with ID does not exist"}, CommentUnavailableError),
        ({"status": 400, "code": 613}, TransientDeliveryError),
        ({"status": 500}, TransientDeliveryError),
        ({"status": 400, "code": 190}, InvalidTokenError),
        ({"status": 400, "code": 100, "message": "(#100) Invalid parameter"}, PermanentDeliveryError),
    ],
)  # fmt: skip
def test_private_reply_errors_are_classified(graph, client, script, expected):
    graph.script([script])

    with pytest.raises(DeliveryError) as caught:
        client.private_reply_send(comment_id=COMMENT_ID, text="Hi", metadata=OUR_METADATA_MARKER)

    assert type(caught.value) is expected
    assert len(graph.calls()) == 1


def test_no_such_object_is_a_deleted_comment_only_for_a_call_about_a_comment(graph, client):
    graph.script([{"status": 400, "code": 100, "subcode": 33}])

    with pytest.raises(DeliveryError) as caught:
        client.send_text(psid=PSID, text="Hi", metadata=OUR_METADATA_MARKER)

    # For a message to a person it is a misconfiguration: permanent, and the person is owed nothing.
    assert type(caught.value) is PermanentDeliveryError


# --- public replies and posts ------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "comment_id", "edge"),
    [("messenger", COMMENT_ID, "comments"), ("instagram", IG_COMMENT_ID, "replies")],
)
def test_a_public_reply_is_posted_under_the_comment(graph, client, caplog, platform, comment_id, edge):
    caplog.set_level(logging.INFO)

    reply_id = client.comment_reply(
        comment_id=comment_id, text="We've sent you a message!", platform=platform
    )

    [call] = graph.calls()
    assert (call["kind"], call["method"], call["path"]) == (
        "comment_reply",
        "POST",
        f"/v24.0/{comment_id}/{edge}",
    )
    assert call["json"] == {"message": "We've sent you a message!"}
    assert call["comment_id"] == comment_id
    assert reply_id.isdigit()
    assert f"Comment answered: comment={comment_id} reply={reply_id}" in caplog.messages


def test_a_comment_id_is_escaped_in_the_path(graph, client):
    client.comment_reply(comment_id="1/../me", text="Hi", platform="messenger")

    assert graph.calls()[0]["path"] == "/v24.0/1%2F..%2Fme/comments"


@pytest.mark.parametrize(
    ("body", "expected"), [({"id": 17912345678901234}, "17912345678901234"), ({"id": "c_1"}, "c_1")]
)
def test_a_public_reply_returns_its_id_as_a_string(graph, client, body, expected):
    graph.script([{"body": body}])

    assert client.comment_reply(comment_id=COMMENT_ID, text="Hi", platform="messenger") == expected


@pytest.mark.parametrize("body", [{}, {"id": ""}, {"id": True}, {"id": {"x": 1}}, "not json"])
def test_a_public_reply_accepted_without_an_id_is_permanent(graph, client, body):
    graph.script([{"body": body}])

    with pytest.raises(PermanentDeliveryError, match="returned no id"):
        client.comment_reply(comment_id=COMMENT_ID, text="Hi", platform="messenger")


def test_a_public_reply_to_a_deleted_comment_is_comment_unavailable(graph, client):
    graph.script([{"status": 400, "code": 100, "subcode": 33}])

    with pytest.raises(CommentUnavailableError):
        client.comment_reply(comment_id=COMMENT_ID, text="Hi", platform="instagram")


@pytest.mark.parametrize(("platform", "field"), [("messenger", "message"), ("instagram", "caption")])
def test_a_posts_text_is_its_message_or_its_caption(graph, client, platform, field):
    graph.post_add(post_id="104728561934527_122112233445566778", text="New in: the blue one, €35.")

    text = client.post_text_get(post_id="104728561934527_122112233445566778", platform=platform)

    [call] = graph.calls()
    assert (call["kind"], call["path"], call["query"]) == (
        "post", "/v24.0/104728561934527_122112233445566778", {"fields": field},
    )  # fmt: skip
    assert text == "New in: the blue one, €35."


@pytest.mark.parametrize("body", [{"id": "p"}, {"id": "p", "message": None}, {"message": 42}, "not json"])
def test_a_post_without_text_is_an_empty_string(graph, client, body):
    graph.script([{"body": body}])

    assert client.post_text_get(post_id="p", platform="messenger") == ""


@pytest.mark.parametrize(
    "call",
    [
        lambda client: client.comment_reply(comment_id="c", text="Hi", platform="whatsapp"),
        lambda client: client.post_text_get(post_id="p", platform="tiktok"),
        lambda client: client.profile_get(psid=PSID, platform="facebook"),
    ],
)
def test_an_unknown_platform_is_refused_before_calling_meta(graph, client, call):
    with pytest.raises(ValueError, match="unknown platform"):
        call(client)

    assert graph.calls() == []


# --- profiles ----------------------------------------------------------------------------


def test_a_messenger_profile_is_as_before(graph, client):
    assert client.profile_get(psid=PSID) == {
        "first_name": "Test",
        "last_name": "User 1234",
        "profile_pic": f"https://lookaside.example/{PSID}.jpg",
    }
    assert graph.calls()[0]["query"] == {"fields": "first_name,last_name,profile_pic"}


def test_an_instagram_profile_asks_instagrams_fields_and_answers_in_the_same_keys(graph, client):
    profile = client.profile_get(psid=IGSID, platform="instagram")

    [call] = graph.calls(kind="profile")
    assert (call["path"], call["query"]) == (f"/v24.0/{IGSID}", {"fields": "name,username,profile_pic"})
    assert profile == {
        "first_name": "Test User 2919",
        "username": "test.user2919",
        "profile_pic": f"https://lookaside.example/{IGSID}.jpg",
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"username": "ada.codes", "id": IGSID}, {"first_name": "ada.codes", "username": "ada.codes"}),
        ({"name": "", "username": "ada.codes"}, {"first_name": "ada.codes", "username": "ada.codes"}),
        ({"name": 7, "profile_pic": None}, {}),
        ("not json", {}),
    ],
)
def test_an_instagram_person_without_a_name_is_called_by_their_username(graph, client, body, expected):
    graph.script([{"body": body}])

    assert client.profile_get(psid=IGSID, platform="instagram") == expected


# --- Pages -------------------------------------------------------------------------------


def test_each_token_is_its_own_pages_and_the_calls_say_which(graph):
    graph.page_add(token="token-shop", page_id="1001", name="The Shop")
    graph.page_add(token="token-porto", page_id="1002", name="The Shop Porto")

    pages = [page_client(graph, token).page_get() for token in ("token-shop", "token-porto")]

    assert pages == [{"id": "1001", "name": "The Shop"}, {"id": "1002", "name": "The Shop Porto"}]
    assert [(call["token"], call["page_id"]) for call in graph.calls()] == [
        ("token-shop", "1001"),
        ("token-porto", "1002"),
    ]


def test_once_pages_are_registered_an_unknown_token_is_refused(graph):
    graph.page_add(token="token-shop", page_id="1001", name="The Shop")

    with pytest.raises(InvalidTokenError):
        page_client(graph, "not-a-page-token").page_get()

    assert [(call["status"], call["page_id"]) for call in graph.calls()] == [(400, None)]


def test_without_registered_pages_any_token_is_the_test_page(graph, client):
    assert client.page_get() == {"id": PAGE_ID, "name": "Test Page"}
    assert graph.calls()[0]["page_id"] == PAGE_ID


def page_client(graph, token):
    return GraphClient(base_url=graph.url, api_version="v24.0", access_token=token, timeout=(1, 1))


def test_the_app_subscribes_to_a_pages_webhook_fields(graph):
    graph.page_add(token="token-shop", page_id="1001", name="The Shop")

    page_client(graph, "token-shop").app_subscribe(
        page_id="1001", fields=["messages", "message_edits", "feed"]
    )

    [call] = graph.calls()
    assert (call["kind"], call["method"], call["path"]) == (
        "subscribe",
        "POST",
        "/v24.0/1001/subscribed_apps",
    )
    assert call["json"] == {"subscribed_fields": "messages,message_edits,feed"}
    assert call["status"] == 200


def test_subscribing_another_pages_webhooks_is_refused(graph):
    graph.page_add(token="token-shop", page_id="1001", name="The Shop")

    with pytest.raises(PermanentDeliveryError) as caught:
        page_client(graph, "token-shop").app_subscribe(page_id="1002", fields=["messages"])

    assert caught.value.code == 210


@pytest.mark.parametrize("body", [{"success": True}, {"success": "true"}])
def test_a_subscription_is_confirmed_as_meta_says_it(graph, client, body):
    graph.script([{"body": body}])

    client.app_subscribe(page_id=PAGE_ID, fields=["messages"])


@pytest.mark.parametrize("body", [{"success": False}, {}, "not json", {"success": "yes"}])
def test_an_unconfirmed_subscription_is_permanent(graph, client, body):
    graph.script([{"body": body}])

    with pytest.raises(PermanentDeliveryError, match="did not confirm the webhook subscription"):
        client.app_subscribe(page_id=PAGE_ID, fields=["messages"])


def test_a_subscription_needs_fields(graph, client):
    with pytest.raises(ValueError):
        client.app_subscribe(page_id=PAGE_ID, fields=[])

    assert graph.calls() == []


def test_a_pages_linked_instagram_account(graph):
    graph.page_add(
        token="token-shop", page_id="1001", name="The Shop", instagram=("17841405822304914", "the.shop")
    )
    graph.page_add(token="token-porto", page_id="1002", name="The Shop Porto")

    linked = page_client(graph, "token-shop").instagram_account_get(page_id="1001")
    unlinked = page_client(graph, "token-porto").instagram_account_get(page_id="1002")

    assert linked == InstagramAccount(id="17841405822304914", username="the.shop")
    assert unlinked is None
    call = graph.calls()[0]
    assert (call["kind"], call["path"]) == ("instagram_account", "/v24.0/1001")
    assert call["query"] == {"fields": "instagram_business_account{id,username}"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"instagram_business_account": {"id": 17841405822304914}},
            InstagramAccount("17841405822304914", None),
        ),
        ({"instagram_business_account": {"username": "x"}}, None),
        ({"instagram_business_account": "17841405822304914"}, None),
        ("not json", None),
    ],
)
def test_odd_instagram_account_answers(graph, client, body, expected):
    graph.script([{"body": body}])

    assert client.instagram_account_get(page_id=PAGE_ID) == expected


# --- Meta's CDN --------------------------------------------------------------------------


def test_the_stand_in_serves_media_as_metas_cdn(graph):
    url = graph.cdn_add(name="voice.mp4", body=b"\x00\x00\x00\x18ftypmp42", content_type="audio/mp4")

    response = requests.get(url, timeout=5)
    missing = requests.get(f"{graph.url}/cdn/expired.jpg", timeout=5)

    assert (response.status_code, response.headers["Content-Type"], response.content) == (
        200, "audio/mp4", b"\x00\x00\x00\x18ftypmp42",
    )  # fmt: skip
    assert missing.status_code == 404
    assert [(call["kind"], call["status"]) for call in graph.calls()] == [("cdn", 200), ("cdn", 404)]


def test_from_settings_speaks_for_the_page_of_a_token_it_is_given(graph, settings):
    settings.FACEBOOK_GRAPH_API_VERSION = "v23.0"
    graph.page_add(token="token-porto", page_id="1002", name="The Shop Porto")

    page = GraphClient.from_settings(access_token="token-porto").page_get()

    assert page == {"id": "1002", "name": "The Shop Porto"}
    assert (graph.calls()[0]["path"], graph.calls()[0]["token"]) == ("/v23.0/me", "token-porto")


def test_a_bad_control_call_is_refused_with_400(graph):
    response = requests.post(f"{graph.url}/_pages", json={"token": "t"}, timeout=5)

    assert response.status_code == 400
    assert "bad /_pages body" in response.json()["error"]


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ({"status": 500}, TransientDeliveryError),
        ({"status": 503}, TransientDeliveryError),
        ({"status": 429}, TransientDeliveryError),
        ({"status": 400, "code": 613}, TransientDeliveryError),
        ({"status": 400, "code": 4}, TransientDeliveryError),
        ({"status": 400, "code": 551, "subcode": 1545041}, RecipientUnreachableError),
        ({"status": 400, "code": 10, "subcode": 2018278}, RecipientUnreachableError),
        ({"status": 400, "code": 10}, RecipientUnreachableError),
        ({"status": 400, "code": 100, "subcode": 2018001}, RecipientUnreachableError),
        ({"status": 401, "code": 190}, InvalidTokenError),
        ({"status": 400, "code": 100, "message": "(#100) Invalid parameter"}, PermanentDeliveryError),
        ({"status": 502, "body": "<html>Bad Gateway</html>"}, TransientDeliveryError),
        ({"status": 404, "body": "not json"}, PermanentDeliveryError),
    ],
)
def test_errors_are_classified_and_never_retried_here(graph, client, script, expected):
    graph.script([script])

    with pytest.raises(DeliveryError) as caught:
        client.send_text(psid=PSID, text="Hi", metadata=OUR_METADATA_MARKER)

    assert type(caught.value) is expected
    assert caught.value.http_status == script["status"]
    assert caught.value.code == script.get("code", caught.value.code)
    # Retries belong to the RQ job: one attempt here, whatever the error.
    assert len(graph.calls()) == 1


def test_an_error_keeps_metas_facts_for_staff(graph, client):
    graph.script([{"status": 400, "code": 551, "subcode": 1545041}])

    with pytest.raises(RecipientUnreachableError) as caught:
        client.send_text(psid=PSID, text="Hi", metadata=OUR_METADATA_MARKER)

    error = caught.value
    assert (error.code, error.subcode, error.http_status) == (551, 1545041, 400)
    assert error.reason.startswith("(#551) This person isn't available right now.")
    assert "fbtrace_id A" in error.reason
    assert str(error) == error.reason


def test_a_reason_never_contains_the_token(graph, client):
    graph.script([{"status": 400, "code": 190, "message": f"Malformed access token {TOKEN}"}])

    with pytest.raises(InvalidTokenError) as caught:
        client.send_text(psid=PSID, text="Hi", metadata=OUR_METADATA_MARKER)

    assert TOKEN not in caught.value.reason
    assert "Malformed access token [redacted]" in caught.value.reason


def test_a_2xx_without_a_message_id_is_permanent(graph, client):
    # Meta accepted the request, so the message may be out: retrying could send it twice.
    graph.script([{"status": 200, "body": "not json"}, {"status": 200, "body": {"recipient_id": PSID}}])

    for _ in range(2):
        with pytest.raises(PermanentDeliveryError, match="no message id"):
            client.send_text(psid=PSID, text="Hi", metadata=OUR_METADATA_MARKER)


def test_a_slow_graph_is_a_transient_timeout(graph):
    client = GraphClient(base_url=graph.url, api_version="v24.0", access_token=TOKEN, timeout=(1, 0.3))
    graph.script([{"delay": 3}])

    started = time.monotonic()
    with pytest.raises(TransientDeliveryError, match="did not answer in time"):
        client.send_text(psid=PSID, text="Hi", metadata=OUR_METADATA_MARKER)

    assert time.monotonic() - started < 2


def test_instagrams_user_not_found_is_unreachable(graph, client):
    graph.script([{"status": 400, "code": 100, "subcode": 2534014}])

    with pytest.raises(RecipientUnreachableError):
        client.send_text(psid=IGSID, text="Hi", metadata=OUR_METADATA_MARKER)


def test_a_closed_port_is_a_transient_connection_error():
    client = GraphClient(base_url=closed_port_url(), api_version="v24.0", access_token=TOKEN)

    with pytest.raises(TransientDeliveryError, match="Could not connect"):
        client.send_text(psid=PSID, text="Hi", metadata=OUR_METADATA_MARKER)


@pytest.mark.parametrize(
    "body",
    [
        None,
        b"",
        b"\xff\xfe garbage",
        "[1, 2]",
        '{"error": "flat"}',
        '{"error": {"code": "x", "error_subcode": true}}',
    ],
)
def test_classify_graph_error_accepts_any_body(body):
    error = classify_graph_error(http_status=400, body=body)

    assert type(error) is PermanentDeliveryError
    assert (error.code, error.subcode) == (None, None)
    assert error.reason == "Facebook returned an error (HTTP 400)"


def test_classify_graph_error_trusts_metas_is_transient_flag():
    body = {"error": {"message": "Temporary failure", "code": 9999, "is_transient": True}}

    assert type(classify_graph_error(http_status=400, body=body)) is TransientDeliveryError


def test_classify_graph_error_cuts_a_huge_reason():
    error = classify_graph_error(http_status=400, body={"error": {"message": "x" * 10_000, "code": 100}})

    assert len(error.reason) <= 500


# --- the stand-in as a process of its own (how end-to-end tests run it) -----------------


def test_the_graph_stand_in_runs_as_a_module():
    with standin_process("graph") as standin:
        standin.script([{"on": "message", "status": 400, "code": 551}])
        standin.page_add(token=TOKEN, page_id="1001", name="The Shop")
        client = GraphClient(base_url=standin.url, api_version="v24.0", access_token=TOKEN)

        client.send_action(psid=PSID, action="mark_seen")
        with pytest.raises(RecipientUnreachableError):
            client.send_text(psid=PSID, text="Hi", metadata=OUR_METADATA_MARKER)

        assert [(call["kind"], call["status"], call["page_id"]) for call in standin.calls()] == [
            ("action", 200, "1001"),
            ("message", 400, "1001"),
        ]
        standin.reset()
        assert standin.stats() == {"calls": 0, "kinds": {}, "in_flight": 0, "max_in_flight": 0}


# --- split_message -----------------------------------------------------------------------

_BREAKABLE_WHITESPACE = re.compile(r"[^\S\u00a0\u2007\u202f]+")


def assert_split_is_faithful(text: str, parts: list[str], *, limit: int) -> None:
    """Parts fit and are in order, only whitespace at the cuts is lost, and a cut falls
    inside a word only when that word is longer than the limit (or after a full-width stop)."""
    assert all(0 < len(part) <= limit for part in parts)
    position = 0
    for index, part in enumerate(parts):
        start = text.index(part, position)
        assert text[position:start].strip() == ""
        if index and start == position and not parts[index - 1].endswith(("。", "！", "？")):
            word_start = max((m.end() for m in _BREAKABLE_WHITESPACE.finditer(text, 0, start)), default=0)
            next_space = _BREAKABLE_WHITESPACE.search(text, start)
            word_end = next_space.start() if next_space else len(text)
            assert word_end - word_start > limit, f"word cut at {start} needlessly"
        position = start + len(part)
    assert text[position:].strip() == ""


def sentences(count: int, *, seed: int) -> str:
    words = random.Random(seed).choices(
        ["alpha", "beta", "gamma", "delta", "épsilon", "ζήτα", "eta"], k=count * 9
    )
    return " ".join(" ".join(words[i : i + 9]).capitalize() + "." for i in range(0, len(words), 9))


def test_a_short_text_is_one_part():
    assert split_message("Hello there.") == ["Hello there."]
    assert split_message("x" * 2000) == ["x" * 2000]


def test_a_blank_text_is_no_parts():
    assert split_message("") == []
    assert split_message(" \n\t ") == []


def test_a_4700_character_answer_is_cut_at_paragraphs():
    text = "\n\n".join(sentences(12, seed=seed) for seed in range(8))[:4700]
    assert len(text) == 4700

    parts = split_message(text)

    assert len(parts) == 3
    # Every cut fell on a paragraph break, and only the break was dropped.
    assert "\n\n".join(parts) == text
    assert_split_is_faithful(text, parts, limit=2000)


def test_a_paragraph_break_beats_a_later_sentence_end():
    text = sentences(20, seed=1)[:1500] + ".\n\n" + sentences(20, seed=2)

    parts = split_message(text)

    assert parts[0] == sentences(20, seed=1)[:1500] + "."
    assert_split_is_faithful(text, parts, limit=2000)


def test_a_line_break_beats_a_later_sentence_end():
    text = "- " + "item " * 300 + "\n- " + sentences(40, seed=3)

    parts = split_message(text)

    assert parts[0] == ("- " + "item " * 300).rstrip()
    assert_split_is_faithful(text, parts, limit=2000)


def test_without_paragraphs_the_cut_is_at_a_sentence_end():
    text = sentences(60, seed=4)

    parts = split_message(text)

    assert len(parts) > 1
    assert all(part.endswith(".") for part in parts)
    assert " ".join(parts) == text
    assert_split_is_faithful(text, parts, limit=2000)


def test_a_sentence_end_may_be_followed_by_a_closing_quote():
    text = 'He said "stop." ' + "word " * 500

    assert split_message(text, limit=20)[0] == 'He said "stop."'


def test_without_sentences_the_cut_is_at_a_space():
    text = " ".join(["word"] * 1000)

    parts = split_message(text)

    assert [len(part) for part in parts] == [1999, 1999, 999]
    assert_split_is_faithful(text, parts, limit=2000)


def test_only_a_word_longer_than_the_limit_is_cut():
    text = "Look at this: " + "x" * 2500 + " and then more words."

    parts = split_message(text)

    assert parts == ["Look at this:", "x" * 2000, "x" * 500 + " and then more words."]
    assert_split_is_faithful(text, parts, limit=2000)


def test_a_text_without_any_whitespace_is_cut_at_the_limit():
    text = "".join(chr(0x61 + i % 26) for i in range(4500))

    parts = split_message(text)

    assert [len(part) for part in parts] == [2000, 2000, 500]
    assert "".join(parts) == text


def test_no_break_spaces_are_not_cut_points():
    text = "a" * 10 + "\u00a0" + "b" * 10 + " " + "c" * 5

    assert split_message(text, limit=22) == ["a" * 10 + "\u00a0" + "b" * 10, "c" * 5]


def test_unicode_stays_whole():
    emoji = "👩‍👩‍👧" * 400  # each family is five code points joined by ZWJ
    combining = "e\u0301" * 1500  # é as e + combining acute

    for text in (emoji, combining):
        parts = split_message(text)
        assert "".join(parts) == text
        assert all(len(part) <= 2000 for part in parts)
        assert not any(part[0] in "\u0301\u200d" or part[-1] == "\u200d" for part in parts)


def test_chinese_is_cut_after_a_full_stop():
    text = "这是一个很长的句子，用来测试消息的拆分。" * 200

    parts = split_message(text)

    assert "".join(parts) == text
    assert all(part.endswith("。") and len(part) <= 2000 for part in parts)


def test_cyrillic_is_cut_at_a_sentence():
    text = "Привет, как дела? " * 300

    parts = split_message(text)

    assert all(part.endswith("?") for part in parts)
    assert_split_is_faithful(text, parts, limit=2000)


@pytest.mark.parametrize("seed", range(30))
def test_any_text_is_split_faithfully(seed):
    rng = random.Random(seed)
    alphabet = ["word", "a", "x" * 37, " ", " ", "\n", "\n\n", ". ", "! ", "\u00a0", "é", "😀", "。", "\t"]
    text = "".join(rng.choices(alphabet, k=rng.randint(0, 600)))
    limit = rng.choice([1, 2, 7, 40, 100, 2000])

    assert_split_is_faithful(text, split_message(text, limit=limit), limit=limit)


def test_instagrams_limit_splits_a_reply_in_parts_of_1000():
    text = sentences(40, seed=5)

    parts = split_message(text, limit=INSTAGRAM_MESSAGE_CHARACTER_LIMIT)

    assert INSTAGRAM_MESSAGE_CHARACTER_LIMIT == 1000
    assert len(parts) > 1
    assert_split_is_faithful(text, parts, limit=1000)


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError):
        split_message("text", limit=0)
