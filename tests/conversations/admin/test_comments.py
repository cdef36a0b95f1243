"""Comments in the admin, as a moderator sees them: the list (post, person, text, what was replied,
when, status) with its filters, each comment read only, and the conversation a comment started."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from conversations.models import ChannelIdentity, Comment, Contact, Conversation

LIST_URL = reverse("admin:conversations_comment_changelist")
PAGE_ID = "1001"


@pytest.fixture
def moderator_client(client, db):
    user = get_user_model().objects.create_user("mod", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Moderators"))
    client.force_login(user)
    return client


@pytest.fixture
def ada(db) -> Conversation:
    identity = ChannelIdentity.objects.create(
        contact=Contact.objects.create(name="Ada Lovelace"), page_id=PAGE_ID, external_id="2400000000000001"
    )
    return Conversation.objects.create(identity=identity)


def comment(number: int, **fields) -> Comment:
    now = timezone.now()
    values = {
        "page_id": PAGE_ID,
        "platform": "messenger",
        "comment_id": f"{PAGE_ID}_post_{number}",
        "post_id": f"{PAGE_ID}_post",
        "author_id": f"81234567890{number:05d}",
        "author_name": "Ada Lovelace",
        "text": "How much is the Lumo lamp?",
        "commented_at": now - timedelta(minutes=10),
        "status": Comment.Status.RECEIVED,
        **fields,
    }
    return Comment.objects.create(**values)


@pytest.fixture
def comments(ada) -> dict[str, Comment]:
    now = timezone.now()
    return {
        "answered": comment(
            1,
            status=Comment.Status.ANSWERED,
            reply_text="The Lumo lamp costs 40 euros.",
            reply_sent_at=now,
            public_reply_text="We've sent you a message!",
            public_reply_status=Comment.PublicReply.POSTED,
            conversation=ada,
        ),
        "ignored": comment(
            2,
            platform="instagram",
            author_name="grace.hopper",
            text="Lovely colours",
            status=Comment.Status.IGNORED,
            reason_code="no_keyword",
            reason="Contains none of COMMENT_KEYWORDS.",
        ),
    }


def test_moderators_see_every_comment_with_its_post_person_text_and_what_was_replied(
    moderator_client, comments, ada
):
    response = moderator_client.get(LIST_URL)

    assert response.status_code == 200
    html = response.content.decode()
    for shown in [
        "1001_post",
        "Ada Lovelace",
        "How much is the Lumo lamp?",
        "The Lumo lamp costs 40 euros. · Public: We&#x27;ve sent you a message!",
        "Answered",
        "grace.hopper",
        "Lovely colours",
        "Ignored: Contains none of COMMENT_KEYWORDS.",
        reverse("admin:conversations_conversation_change", args=[ada.pk]),
    ]:
        assert shown in html
    assert "Add comment" not in html


@pytest.mark.parametrize(
    ("query", "shown"),
    [("status__exact=ignored", "ignored"), ("platform__exact=messenger", "answered"), ("q=grace", "ignored")],
)
def test_the_list_is_filtered_by_status_and_platform_and_searched_by_person(
    moderator_client, comments, query, shown
):
    response = moderator_client.get(f"{LIST_URL}?{query}")

    assert list(response.context["cl"].result_list) == [comments[shown]]


def test_a_comment_is_read_only_even_for_a_superuser(admin_client, comments):
    url = reverse("admin:conversations_comment_change", args=[comments["answered"].pk])

    response = admin_client.get(url)

    assert response.status_code == 200
    assert "The Lumo lamp costs 40 euros." in response.content.decode()
    assert 'name="_save"' not in response.content.decode()
    assert admin_client.post(url, {"text": "changed"}).status_code == 403
    deleting = reverse("admin:conversations_comment_delete", args=[comments["answered"].pk])
    assert admin_client.post(deleting, {"post": "yes"}).status_code == 403


def test_the_conversation_page_shows_the_comment_it_started_from(moderator_client, comments, ada):
    response = moderator_client.get(reverse("admin:conversations_conversation_change", args=[ada.pk]))

    html = response.content.decode()
    assert "Started from a comment on the Facebook post <code>1001_post</code>" in html
    assert "“How much is the Lumo lamp?”" in html
    assert reverse("admin:conversations_comment_change", args=[comments["answered"].pk]) in html
