"""The knowledge base in the admin, as a moderator uses it: an article written from an unanswered
question is in staff's words, never the person's, which the bot would give to everyone."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from conversations.models import (
    ChannelIdentity,
    Contact,
    Conversation,
    KnowledgeArticle,
    Message,
    UnansweredQuestion,
)

pytestmark = pytest.mark.django_db
ADD_URL = reverse("admin:conversations_knowledgearticle_add")
QUESTION = "My name is Jane Roe, my phone is +1 555 0100, where is my order 5521?"


@pytest.fixture
def moderator_client(client, redis_conn):
    moderator = get_user_model().objects.create_user("mod", password="pw", is_staff=True)
    moderator.groups.add(Group.objects.get(name="Moderators"))
    client.force_login(moderator)
    return client


def unanswered(text: str) -> UnansweredQuestion:
    identity = ChannelIdentity.objects.create(
        contact=Contact.objects.create(name="Jane Roe"), page_id="1001", external_id="2400000000000009"
    )
    conversation = Conversation.objects.create(identity=identity)
    message = Message.objects.create(conversation=conversation, role="client", status="answered", text=text)
    return UnansweredQuestion.objects.create(message=message, text=text, asked_at=timezone.now())


def test_the_question_is_shown_beside_the_new_article_not_put_in_it(moderator_client):
    question = unanswered(QUESTION)

    response = moderator_client.get(f"{ADD_URL}?question={question.pk}")

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert not form["title"].value() and not form["body"].value()
    page = response.content.decode()
    assert f"Written for the question “{QUESTION}”" in page
    assert f'value="{QUESTION}' not in page
    assert "write no names, phone numbers, order numbers or anything else about a person" in page


def test_the_question_beside_the_form_is_text_not_markup(moderator_client):
    question = unanswered('<img src=x onerror="alert(1)"> where is my parcel?')

    page = moderator_client.get(f"{ADD_URL}?question={question.pk}").content.decode()

    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; where is my parcel?" in page


def test_the_saved_article_holds_what_staff_wrote_and_answers_the_question(moderator_client):
    question = unanswered(QUESTION)

    response = moderator_client.post(
        f"{ADD_URL}?question={question.pk}",
        {"title": "Where is my order?", "body": "Track it with the link in your email.", "approved": "on"},
    )

    assert response.status_code == 302
    article = KnowledgeArticle.objects.get()
    assert (article.title, article.body, article.approved) == (
        "Where is my order?",
        "Track it with the link in your email.",
        True,
    )
    question.refresh_from_db()
    assert question.article == article
