"""The Graph client against the Graph stand-in: real requests, real sockets, real timeouts."""

import logging
import random
import re
import time

import pytest

from devtools.standins.client import standin_process
from devtools.standins.server import closed_port_url
from messenger.errors import (
    DeliveryError,
    InvalidTokenError,
    PermanentDeliveryError,
    RecipientUnreachableError,
    TransientDeliveryError,
    classify_graph_error,
)
from messenger.graph import OUR_METADATA_MARKER, GraphClient, split_message

TOKEN = "EAAG-page-token-secret-123"
PSID = "24012345678901234"


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
        client = GraphClient(base_url=standin.url, api_version="v24.0", access_token=TOKEN)

        client.send_action(psid=PSID, action="mark_seen")
        with pytest.raises(RecipientUnreachableError):
            client.send_text(psid=PSID, text="Hi", metadata=OUR_METADATA_MARKER)

        assert [(call["kind"], call["status"]) for call in standin.calls()] == [
            ("action", 200),
            ("message", 400),
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


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError):
        split_message("text", limit=0)
