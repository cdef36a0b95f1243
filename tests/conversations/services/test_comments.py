"""Comments into conversations: what the webhook stores (or not), and the reply job run in-process
against the Graph and Groq stand-ins, PostgreSQL and Redis."""

import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from django_rq import get_queue

from conversations.alerts import alert_deliver
from conversations.knowledge.search import knowledge_changed
from conversations.knowledge.services import knowledge_article_save
from conversations.llm import HANDOFF_TOOL
from conversations.models import Comment, Conversation, Handoff, KnowledgeArticle, Message, Page
from conversations.prompts import COMMENT_REPLY_INSTRUCTIONS
from conversations.services.comments import comment_reply_produce, comments_sweep
from conversations.services.conversations import contact_forget, conversation_get_or_create
from conversations.services.pages import page_settings_update
from devtools.standins.graph import commenter_psid
from devtools.standins.groq import echo_answer
from devtools.webhook import feed_comment, instagram_comment, post_signed
from messenger.errors import TransientDeliveryError
from tests.conversations.insights.test_metrics import scrape
from tests.messenger.fixtures import fixture
from tests.pages import page_connected

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]
SHOP = {"token": "EAAshop", "page_id": "2002", "name": "Shop"}
INSTAGRAM_ACCOUNT = ("17841400000000002", "shop.ig")
POST = "2002_122112233445566778"
MEDIA = "18023456789012345"
ADA = "8123456789012345"  # her id in the Page's feed (not her PSID)
ADA_IGSID = "1254459154682919"
PUBLIC_TEXT = "We've sent you a message!"
# The Page and Instagram account of the captured deliveries (tests/messenger/fixtures).
PAGE_ID, IG_ACCOUNT = "104728561934527", "17841405822304914"


@pytest.fixture
def shop(graph, groq, redis_conn, settings):
    """COMMENT_REPLIES on, and a connected Page with an Instagram account; alerts by email."""
    settings.COMMENT_REPLIES = "on"
    settings.STAFF_ALERT_EMAILS = ["staff@example.com"]
    return page_connected(graph, **SHOP, instagram=INSTAGRAM_ACCOUNT)


def new_id() -> str:
    return f"{POST}_{uuid.uuid4().int % 10**15}"


def facebook(text: str = "How much is the lamp?", **fields) -> dict:
    """Ada's comment on the Shop's post (`fields` change it)."""
    fields = {"comment_id": new_id(), "author_id": ADA, **fields}
    return feed_comment(text=text, page_id=SHOP["page_id"], post_id=POST, **fields)


def instagram(text: str = "How much is the lamp?", **fields) -> dict:
    """Ada's comment on the Shop's Instagram media (`fields` change it)."""
    fields = {"comment_id": str(uuid.uuid4().int % 10**17), "author_id": ADA_IGSID, **fields}
    return instagram_comment(text=text, media_id=MEDIA, account_id=INSTAGRAM_ACCOUNT[0], **fields)


def comment_of(payload: dict) -> str:
    value = payload["entry"][0]["changes"][0]["value"]
    return value.get("comment_id") or value["id"]


def deliver(client, payload: dict) -> None:
    assert post_signed(client, payload).status_code == 200


def answer(payload: dict, *, final_attempt: bool = True) -> Comment:
    """Run the reply job of the comment `payload` carries; the comment afterwards."""
    comment = Comment.objects.get(comment_id=comment_of(payload))
    comment_reply_produce(comment_pk=comment.pk, final_attempt=final_attempt)
    comment.refresh_from_db()
    return comment


def queued_comment_jobs() -> list:
    return [job for job in get_queue().get_jobs() if job.func_name.endswith("comment_reply")]


def queued_alerts() -> list[dict]:
    return [job.kwargs for job in get_queue().get_jobs() if job.func_name.endswith("alert_deliver")]


def private_replies(graph) -> list[dict]:
    return [call for call in graph.calls(kind="private_reply") if call["status"] == 200]


# --- what the webhook stores --------------------------------------------------------------------


def test_a_comment_is_stored_before_the_200_and_queued_once_however_often_meta_delivers_it(client, shop):
    made_at = int(time.time()) - 60
    payloads = [facebook(created_time=made_at), instagram()]
    for payload in payloads:
        for _ in range(3):
            deliver(client, payload)

    on_facebook, on_instagram = (Comment.objects.get(comment_id=comment_of(p)) for p in payloads)
    assert (on_facebook.platform, on_facebook.page_id, on_facebook.post_id) == ("messenger", "2002", POST)
    assert (on_facebook.author_id, on_facebook.author_name, on_facebook.text) == (
        ADA,
        "Ada Lovelace",
        "How much is the lamp?",
    )
    assert on_facebook.commented_at.timestamp() == made_at
    assert on_facebook.status == Comment.Status.RECEIVED
    # On Instagram: the account's Page, the media, the username.
    assert (on_instagram.platform, on_instagram.page_id, on_instagram.post_id) == ("instagram", "2002", MEDIA)
    assert (on_instagram.author_id, on_instagram.author_name) == (ADA_IGSID, "ada.lovelace")
    assert sorted(job.args[0] for job in queued_comment_jobs()) == sorted([on_facebook.pk, on_instagram.pk])
    assert not Conversation.objects.exists()  # nobody wrote yet


def test_captured_deliveries_of_both_feed_shapes_and_instagrams_are_stored_with_their_authors(
    client, graph, redis_conn, settings
):
    settings.COMMENT_REPLIES = "on"
    page_connected(
        graph, token="EAAcaptured", page_id=PAGE_ID, name="Test Page", instagram=(IG_ACCOUNT, "shop")
    )
    for name in ("feed_comment", "feed_comment_old", "instagram_comment"):
        deliver(client, fixture(name))

    stored = Comment.objects.order_by("commented_at").values_list(
        "platform", "author_id", "author_name", "parent_id", "status", "reason_code"
    )
    # Made in November 2024: stored, and too old for Meta to take a private reply.
    assert list(stored) == [
        ("instagram", "1254459154682919", "ada.lovelace", "", "ignored", "too_old"),
        (
            "messenger",
            "8123456789012345",
            "Ada Lovelace",
            f"{PAGE_ID}_122112233445566778",
            "ignored",
            "too_old",
        ),
        (
            "messenger",
            "8234567890123456",
            "Grace Hopper",
            "122112233445566778_1087654321098765",
            "ignored",
            "too_old",
        ),
    ]


@pytest.mark.parametrize("value", ["off", "yes"])  # anything but `on` is off (and a check error)
def test_with_comment_replies_off_no_comment_is_stored(client, shop, settings, value):
    settings.COMMENT_REPLIES = value

    deliver(client, facebook())
    deliver(client, instagram())

    assert not Comment.objects.exists()
    assert queued_comment_jobs() == []


def eight_days_ago() -> int:
    return int(time.time()) - 8 * 86400


def instagram_delivered_eight_days_ago() -> dict:
    # An Instagram comment carries no time of its own: its entry's is when it was made.
    payload = instagram()
    payload["entry"][0]["time"] = eight_days_ago()
    return payload


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(lambda: facebook(verb="edited"), id="an edit"),
        pytest.param(lambda: facebook(verb="remove"), id="a removal"),
        pytest.param(lambda: facebook(author_id=SHOP["page_id"]), id="the Page's own"),
        pytest.param(lambda: instagram(author_id=INSTAGRAM_ACCOUNT[0]), id="the account's own"),
    ],
)
def test_edits_removals_and_the_pages_own_comments_are_not_stored(client, shop, payload):
    deliver(client, payload())

    assert not Comment.objects.exists()
    assert queued_comment_jobs() == []


@pytest.mark.parametrize(
    ("payload", "reason_code"),
    [
        pytest.param(lambda: facebook(created_time=eight_days_ago()), "too_old", id="facebook, 8 days old"),
        pytest.param(instagram_delivered_eight_days_ago, "too_old", id="instagram, 8 days old"),
        pytest.param(lambda: facebook(text="Lovely colours!"), "no_keyword", id="no keyword"),
        pytest.param(lambda: instagram(text="  "), "no_text", id="no text"),
    ],
)
def test_old_comments_and_comments_without_a_keyword_are_stored_as_ignored_with_why(
    client, shop, settings, payload, reason_code
):
    settings.COMMENT_KEYWORDS = ["price", "how much"]

    deliver(client, payload())

    [comment] = Comment.objects.all()
    assert (comment.status, comment.reason_code) == (Comment.Status.IGNORED, reason_code)
    assert comment.reason
    assert queued_comment_jobs() == []


def test_a_keyword_matches_in_any_case_inside_the_comment(client, shop, settings):
    settings.COMMENT_KEYWORDS = ["Price", "porto"]

    deliver(client, facebook("what's the PRICE of shipping to Porto?"))

    assert Comment.objects.get().status == Comment.Status.RECEIVED
    assert len(queued_comment_jobs()) == 1


def test_comments_over_their_authors_rate_limit_are_stored_as_ignored(client, shop, settings):
    settings.FACEBOOK_RATE_LIMIT_MESSAGES_PER_MINUTE = 2
    for _ in range(3):
        deliver(client, facebook())
    deliver(client, facebook(author_id="8123456789099999"))  # someone else

    statuses = list(Comment.objects.order_by("received_at", "id").values_list("status", "reason_code"))
    assert statuses == [("received", ""), ("received", ""), ("ignored", "rate_limited"), ("received", "")]
    assert len(queued_comment_jobs()) == 3


# --- the reply job ------------------------------------------------------------------------------


@pytest.fixture
def lamp_shop(shop, graph):
    """The Shop's own system prompt and knowledge, and the post's text on Graph."""
    page = Page.objects.get(page_id=SHOP["page_id"])
    page.system_prompt = "You are the Shop's assistant. Be brief."
    page_settings_update(page=page)
    for article in [
        KnowledgeArticle(title="Lamp prices", body="The Lumo lamp costs 40 euros.", page=page),
        KnowledgeArticle(title="Unapproved", body="Lamp prices elsewhere.", approved=False),
    ]:
        knowledge_article_save(article=article)
    knowledge_changed()  # on commit, which a test's transaction never does
    graph.post_add(post_id=POST, text="New in: the Lumo lamp, in three colours.")
    return shop


def test_the_private_reply_is_written_from_the_comment_the_post_and_the_pages_knowledge(
    client, lamp_shop, graph, groq
):
    payload = facebook("How much is the lamp? What prices?")
    deliver(client, payload)

    comment = answer(payload)

    [call] = groq.calls()
    prompt = call["prompt"]
    assert "You are the Shop's assistant. Be brief." in prompt
    assert COMMENT_REPLY_INSTRUCTIONS in prompt
    assert "## Lamp prices\nThe Lumo lamp costs 40 euros." in prompt
    assert "Unapproved" not in prompt
    query = prompt.split("<CURRENT_USER_QUERY>")[1]
    assert '[the user commented on your post: "New in: the Lumo lamp, in three colours."]' in query
    assert "How much is the lamp? What prices?" in query
    [sent] = private_replies(graph)
    assert sent["json"]["recipient"] == {"comment_id": comment.comment_id}
    assert sent["token"] == SHOP["token"]
    assert sent["json"]["message"]["text"] == echo_answer(prompt)
    assert comment.status == Comment.Status.ANSWERED
    assert comment.reply_text == echo_answer(prompt)
    assert comment.reply_mid.startswith("m_") and comment.reply_sent_at is not None
    assert [article.title for article in comment.knowledge_articles.all()] == ["Lamp prices"]


def test_the_private_reply_starts_the_commenters_conversation_under_the_psid_meta_answered(
    client, shop, graph, groq
):
    payload = facebook()
    deliver(client, payload)

    comment = answer(payload)

    conversation = comment.conversation
    psid = commenter_psid(comment.comment_id)
    assert (conversation.identity.channel, conversation.identity.page_id) == ("messenger", "2002")
    assert conversation.identity.external_id == psid
    assert conversation.identity.contact.name == "Ada Lovelace"
    [reply] = conversation.messages.all()
    assert (reply.role, reply.status, reply.text) == (
        Message.Role.AI,
        Message.Status.SENT,
        comment.reply_text,
    )
    assert reply.external_id == comment.reply_mid
    assert reply.llm_model == settings.GROQ_MODEL and reply.prompt_tokens
    assert reply.details["comment"] == {"text": "How much is the lamp?"}
    assert conversation.last_message_text == comment.reply_text


def test_on_instagram_one_message_within_1000_characters_goes_to_the_commenters_igsid(
    client, shop, graph, groq
):
    groq.script([{"text": "The lamp costs 40 euros. " * 80}])  # 2,000 characters
    payload = instagram()
    deliver(client, payload)

    comment = answer(payload)

    [sent] = private_replies(graph)
    text = sent["json"]["message"]["text"]
    assert 900 < len(text) <= 1000 and text.endswith("euros.")
    assert sent["token"] == SHOP["token"]
    assert comment.conversation.identity.channel == "instagram"
    assert comment.conversation.identity.external_id == ADA_IGSID


def test_a_comment_still_waiting_when_comment_replies_is_turned_off_gets_nothing(
    client, shop, graph, settings
):
    payload = facebook()
    deliver(client, payload)
    settings.COMMENT_REPLIES = "off"

    comment = answer(payload)

    assert (comment.status, comment.reason_code) == (Comment.Status.IGNORED, "turned_off")
    assert graph.calls(kind="private_reply") == []


def test_running_the_job_again_or_a_redelivery_sends_nothing_more(client, shop, graph, groq):
    payload = facebook()
    deliver(client, payload)
    answer(payload)

    deliver(client, payload)
    answer(payload)

    assert len(groq.calls()) == 1
    assert len(graph.calls(kind="private_reply")) == 1
    assert Message.objects.count() == 1


def test_a_transient_failure_sends_the_stored_reply_on_the_next_try_without_asking_the_llm_again(
    client, shop, graph, groq
):
    graph.script([{"on": "private_reply", "status": 503}])
    payload = facebook()
    deliver(client, payload)

    with pytest.raises(TransientDeliveryError):
        answer(payload, final_attempt=False)
    assert Comment.objects.get().status == Comment.Status.SENDING
    comment = answer(payload)

    assert len(groq.calls()) == 1
    assert [call["status"] for call in graph.calls(kind="private_reply")] == [503, 200]
    assert comment.status == Comment.Status.ANSWERED


@pytest.mark.parametrize(
    ("code", "subcode", "reason_code"),
    [
        (10900, None, "graph:10900"),  # already replied to
        (10903, None, "graph:10903"),
        (10, 2018108, "graph:10/2018108"),  # past Meta's 7 days
        (100, 2534025, "graph:100/2534025"),  # Instagram: not valid for a private reply
        (100, 33, "graph:100/33"),  # the comment was deleted
    ],
)
def test_metas_refusal_of_a_private_reply_is_recorded_and_never_retried(
    client, shop, graph, code, subcode, reason_code
):
    graph.script([{"on": "private_reply", "status": 400, "code": code, "subcode": subcode}])
    payload = facebook()
    deliver(client, payload)

    comment = answer(payload, final_attempt=False)  # not the last try, and still no retry

    assert (comment.status, comment.reason_code) == (Comment.Status.FAILED, reason_code)
    assert f"code {code}" in comment.reason
    assert comment.conversation is None
    assert queued_alerts() == []  # nothing staff could do


def test_a_private_reply_that_finally_fails_alerts_staff_linking_the_comment(
    client, shop, groq, alert_webhook, settings
):
    settings.STAFF_ALERT_EMAILS = []
    groq.script([{"status": 401}])
    payload = facebook()
    deliver(client, payload)

    comment = answer(payload)

    assert (comment.status, comment.reason_code) == (Comment.Status.FAILED, "llm:401")
    [alert] = queued_alerts()
    alert_deliver(**alert, final_attempt=True)
    [call] = alert_webhook.calls(kind="alert")
    assert call["text"].startswith(
        "A reply to Ada Lovelace failed\nPrivate reply to a comment: Groq answered HTTP 401"
    )
    assert call["text"].endswith(f"/admin/conversations/comment/{comment.pk}/change/")


def test_the_model_handing_over_sends_the_handoff_message_and_alerts_staff_naming_the_comment(
    client, shop, graph, groq, django_capture_on_commit_callbacks
):
    groq.script([{"tool_calls": [{"name": HANDOFF_TOOL, "arguments": {"reason": "Wants a discount"}}]}])
    payload = facebook("Can I get it cheaper?")
    deliver(client, payload)

    with django_capture_on_commit_callbacks(execute=True):
        comment = answer(payload)

    [sent] = private_replies(graph)
    assert sent["json"]["message"]["text"] == settings.HANDOFF_MESSAGE
    conversation = comment.conversation
    assert (conversation.bot_active, conversation.handoff_reason) == (False, "Wants a discount")
    assert conversation.waiting_for_staff_since is not None
    assert Handoff.objects.get().trigger == Handoff.Trigger.MODEL
    [notice] = conversation.messages.all()
    assert (notice.role, notice.text) == (Message.Role.SYSTEM, settings.HANDOFF_MESSAGE)
    [alert] = queued_alerts()
    assert alert["conversation_id"] == conversation.pk
    assert (
        alert["reason"]
        == f'Wants a discount\nFrom a comment on the Facebook post {POST}: "Can I get it cheaper?"'
    )


@pytest.mark.parametrize(
    ("payload", "edge"), [(facebook, "comments"), (instagram, "replies")], ids=["facebook", "instagram"]
)
def test_the_public_reply_is_posted_once_under_the_comment_after_the_private_one(
    client, shop, graph, settings, payload, edge
):
    settings.COMMENT_PUBLIC_REPLY = PUBLIC_TEXT
    graph.script([{"on": "comment_reply", "status": 500}])
    payload = payload()
    deliver(client, payload)

    with pytest.raises(TransientDeliveryError):
        answer(payload, final_attempt=False)
    comment = answer(payload)
    answer(payload)

    assert [call["kind"] for call in graph.calls() if call["kind"] in ("private_reply", "comment_reply")] == [
        "private_reply",
        "comment_reply",
        "comment_reply",
    ]
    public = graph.calls(kind="comment_reply")[-1]
    assert public["path"].endswith(f"/{comment.comment_id}/{edge}")
    assert public["json"] == {"message": PUBLIC_TEXT}
    assert (comment.public_reply_status, comment.public_reply_text) == ("posted", PUBLIC_TEXT)
    assert comment.public_reply_id


def test_a_public_reply_facebook_refuses_is_recorded_and_the_private_one_stands(
    client, shop, graph, settings
):
    settings.COMMENT_PUBLIC_REPLY = PUBLIC_TEXT
    graph.script([{"on": "comment_reply", "status": 400, "code": 100, "subcode": 33}])
    payload = facebook()
    deliver(client, payload)

    comment = answer(payload, final_attempt=False)

    assert comment.status == Comment.Status.ANSWERED
    assert comment.public_reply_status == Comment.PublicReply.FAILED
    assert "code 100/33" in comment.public_reply_error


def test_the_posts_text_is_read_once_for_many_comments(client, lamp_shop, graph):
    for _ in range(3):
        payload = facebook()
        deliver(client, payload)
        answer(payload)

    assert len(graph.calls(kind="post")) == 1
    assert len(private_replies(graph)) == 3


def test_a_post_graph_cannot_read_leaves_the_reply_to_the_comment_alone(client, shop, graph, groq):
    graph.script([{"on": "post", "status": 500}])
    payload = facebook()
    deliver(client, payload)

    comment = answer(payload)

    assert comment.status == Comment.Status.ANSWERED
    assert "[the user commented on your post]" in groq.calls()[0]["prompt"]


def test_the_sweep_queues_a_comment_whose_job_was_lost(shop, redis_conn):
    comment = Comment.objects.create(
        page_id=SHOP["page_id"],
        platform="messenger",
        comment_id=new_id(),
        author_id=ADA,
        commented_at=timezone.now(),
        received_at=timezone.now() - timedelta(minutes=2),
        status=Comment.Status.RECEIVED,
    )

    assert comments_sweep() == 1
    assert comments_sweep() == 0  # its job waits in the queue
    assert [job.args[0] for job in queued_comment_jobs()] == [comment.pk]


def test_forgetting_the_person_deletes_their_comments_and_a_redelivery_stays_out(client, shop, settings):
    settings.COMMENT_KEYWORDS = ["lamp"]
    answered, ignored = facebook(), facebook(text="Nice!")
    for payload in (answered, ignored):
        deliver(client, payload)
    comment = answer(answered)

    contact_forget(contact=comment.conversation.identity.contact)

    assert not Comment.objects.exists()
    deliver(client, answered)
    assert not Comment.objects.exists()


def test_metrics_count_comments_received_once_by_channel_and_private_replies_sent(client, shop):
    received = {
        channel: ("messenger_comments_received_total", (("channel", channel),))
        for channel in ("messenger", "instagram")
    }
    sent = ("messenger_private_replies_sent_total", (("channel", "messenger"),))
    before = scrape(client)
    payload = facebook()
    deliver(client, payload)
    deliver(client, payload)  # Meta redelivers: stored once, counted once
    deliver(client, instagram(text=""))  # stored, ignored: received all the same
    answer(payload)
    after = scrape(client)

    assert after[received["messenger"]] - before[received["messenger"]] == 1
    assert after[received["instagram"]] - before[received["instagram"]] == 1
    assert after[sent] - before[sent] == 1


def test_forgetting_someone_on_instagram_deletes_every_comment_of_their_igsid(client, shop, settings):
    settings.COMMENT_KEYWORDS = ["lamp"]
    someone_else = instagram(author_id="1254459154600000")
    for payload in (instagram(text="Nice!"), someone_else):
        deliver(client, payload)
    conversation = conversation_get_or_create(
        channel="instagram", page_id=SHOP["page_id"], external_id=ADA_IGSID
    )

    contact_forget(contact=conversation.identity.contact)

    assert list(Comment.objects.values_list("comment_id", flat=True)) == [comment_of(someone_else)]
