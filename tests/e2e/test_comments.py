"""Comments into conversations through the real web and worker processes, on Facebook and Instagram:
one private reply (and one public one) per comment whatever Meta redelivers, nothing for what
must get nothing, and a commenter who answers continuing in an ordinary conversation."""

import time
import uuid

import pytest
from django.urls import reverse
from django_rq import get_connection

from conversations.models import Comment, Conversation
from devtools.processes import wait_for
from devtools.standins.graph import commenter_psid
from devtools.webhook import feed_comment, instagram_comment, instagram_message, text_message
from tests.e2e.stack import settle, stack_running
from tests.pages import page_connected

pytestmark = pytest.mark.postgres
SHOP = {"token": "EAAcomment-shop", "page_id": "4004", "name": "Lamp Shop"}
INSTAGRAM_ACCOUNT = ("17841400000000004", "lamp.shop")
POST, MEDIA = "4004_122112233445566778", "18023456789012399"
PUBLIC_REPLY = "We've sent you a message!"


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """Web and worker answering comments: those asking a price, privately and publicly."""
    get_connection("default").flushdb()
    with stack_running(
        django_db_blocker=django_db_blocker,
        log_dir=tmp_path_factory.mktemp("processes"),
        COMMENT_REPLIES="on",
        COMMENT_KEYWORDS="price,how much",
        COMMENT_PUBLIC_REPLY=PUBLIC_REPLY,
    ) as started:
        yield started


@pytest.fixture
def shop(service, settings):
    """The Lamp Shop and its Instagram account connected while web and worker run; its post's text on Graph."""
    settings.FACEBOOK_GRAPH_API_URL = service.graph.url
    page_connected(service.graph, **SHOP, instagram=INSTAGRAM_ACCOUNT)
    service.graph.post_add(post_id=POST, text="New: the Lumo lamp, in three colours.")
    return service


def person() -> str:
    return str(uuid.uuid4().int)[:16]


def on_facebook(text: str = "How much is the Lumo lamp?", **fields) -> dict:
    fields = {"comment_id": f"{POST}_{uuid.uuid4().int % 10**15}", "author_id": person(), **fields}
    return feed_comment(text=text, page_id=SHOP["page_id"], post_id=POST, **fields)


def on_instagram(text: str = "Price please?", **fields) -> dict:
    fields = {"comment_id": str(uuid.uuid4().int % 10**17), "author_id": person(), **fields}
    return instagram_comment(text=text, media_id=MEDIA, account_id=INSTAGRAM_ACCOUNT[0], **fields)


def comment_id(payload: dict) -> str:
    value = payload["entry"][0]["changes"][0]["value"]
    return value.get("comment_id") or value["id"]


def private_replies(stack, payload: dict) -> list[dict]:
    return [
        call for call in stack.graph.calls(kind="private_reply") if call["comment_id"] == comment_id(payload)
    ]


def test_a_comment_gets_one_private_and_one_public_reply_whatever_meta_redelivers(shop):
    comments = {"comments": on_facebook(), "replies": on_instagram()}
    for payload in comments.values():
        shop.post(payload)
    for payload in comments.values():  # Meta redelivers what it is not sure arrived
        shop.post(payload)
        shop.post(payload)

    wait_for(lambda: len(shop.graph.calls(kind="comment_reply")) == 2, message="the two public replies")
    settle()

    prompts = {call["prompt"] for call in shop.groq.calls()}
    assert len(prompts) == 2
    assert any(
        '[the user commented on your post: "New: the Lumo lamp, in three colours."]' in p for p in prompts
    )
    for edge, payload in comments.items():
        [private] = private_replies(shop, payload)
        assert (private["status"], private["token"]) == (200, SHOP["token"])
        assert private["json"]["message"]["text"].startswith("Echo: ")
        [public] = [
            call
            for call in shop.graph.calls(kind="comment_reply")
            if call["comment_id"] == comment_id(payload)
        ]
        assert public["path"].endswith(f"/{comment_id(payload)}/{edge}")
        assert (public["json"], public["token"]) == ({"message": PUBLIC_REPLY}, SHOP["token"])
        # The private reply first: a public "we've sent you a message" after it is true.
        assert private["ended"] <= public["started"]
    assert set(Comment.objects.values_list("status", "public_reply_status")) == {("answered", "posted")}


def test_the_pages_own_comments_old_ones_and_those_without_a_keyword_get_nothing(shop):
    eight_days_ago = int(time.time()) - 8 * 86400
    old_on_instagram = on_instagram()
    old_on_instagram["entry"][0]["time"] = eight_days_ago  # an Instagram comment's only time
    nothing = {
        "own": [on_facebook(author_id=SHOP["page_id"]), on_instagram(author_id=INSTAGRAM_ACCOUNT[0])],
        "too_old": [on_facebook(created_time=eight_days_ago), old_on_instagram],
        "no_keyword": [on_facebook("Lovely colours!"), on_instagram("Beautiful")],
    }
    for payloads in nothing.values():
        for payload in payloads:
            shop.post(payload)
    answered = on_facebook()
    shop.post(answered)  # delivered last, answered: the worker is past the others by then

    wait_for(lambda: private_replies(shop, answered), message="the private reply to the last comment")
    settle()

    assert len(shop.graph.calls(kind="private_reply")) == 1
    assert shop.graph.calls(kind="comment_reply") and len(shop.groq.calls()) == 1
    for why, payloads in nothing.items():
        stored = Comment.objects.filter(comment_id__in=[comment_id(payload) for payload in payloads])
        if why == "own":
            assert not stored.exists()
        else:
            assert set(stored.values_list("status", "reason_code")) == {("ignored", why)}, why


def test_a_person_who_answers_the_private_reply_continues_in_a_conversation_that_shows_the_comment(
    shop, admin_client
):
    on_messenger = on_facebook()
    igsid = person()
    on_instagram_media = on_instagram(author_id=igsid)
    for payload in (on_messenger, on_instagram_media):
        shop.post(payload)
    wait_for(lambda: len(shop.graph.calls(kind="private_reply")) == 2, message="the private replies")

    # On Facebook the person writes as the PSID Meta answered the private reply with; on
    # Instagram as the commenter's own IGSID.
    psid = commenter_psid(comment_id(on_messenger))
    shop.post(
        text_message(mid=f"m_{uuid.uuid4().hex}", text="Is it in blue?", psid=psid, page_id=SHOP["page_id"])
    )
    shop.post(
        instagram_message(
            mid=f"m_{uuid.uuid4().hex}", text="And in red?", igsid=igsid, account_id=INSTAGRAM_ACCOUNT[0]
        )
    )

    wait_for(
        lambda: {psid, igsid} <= {call["psid"] for call in shop.graph.calls(kind="message")},
        message="replies",
    )
    for person_id, payload, answer in (
        (psid, on_messenger, "Is it in blue?"),
        (igsid, on_instagram_media, "And in red?"),
    ):
        conversation = Conversation.objects.get(identity__external_id=person_id)
        [comment] = conversation.comments.all()
        assert comment.comment_id == comment_id(payload)
        assert list(conversation.messages.order_by("created_at", "id").values_list("role", "text"))[:2] == [
            ("ai", comment.reply_text),
            ("client", answer),
        ]
        # The reply to their message knows what the conversation started from.
        [prompt] = shop.prompts_with(answer)
        history = prompt["prompt"].split("<HISTORY>")[1].split("</HISTORY>")[0]
        assert f'assistant: [a private reply to their comment: "{comment.text}"]' in history
    page = admin_client.get(reverse("admin:conversations_conversation_change", args=[conversation.pk]))
    assert "Started from a comment on the Instagram post" in page.content.decode()
