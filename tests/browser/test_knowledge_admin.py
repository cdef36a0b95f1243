"""A moderator grows the knowledge base from a question the bot could not answer, in Chromium."""

import pytest
from django.contrib.admin.models import LogEntry
from django.utils import timezone
from playwright.sync_api import expect

from conversations.knowledge.search import knowledge_search
from conversations.models import (
    ChannelIdentity,
    Contact,
    Conversation,
    KnowledgeArticle,
    Message,
    UnansweredQuestion,
)
from tests.browser.chromium import ARTIFACTS, chromium_page, log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.postgres]
QUESTION = "do u do gift wrapping?? its for my mums birthday"


@pytest.fixture
def question(moderator):
    identity = ChannelIdentity.objects.create(
        contact=Contact.objects.create(name="Ada Lovelace"), page_id="1001", external_id="2400000000000001"
    )
    conversation = Conversation.objects.create(identity=identity)
    asked = Message.objects.create(conversation=conversation, role="client", status="answered", text=QUESTION)
    Message.objects.create(
        conversation=conversation,
        role="ai",
        status="sent",
        text="I'm not sure, let me ask a colleague.",
        reply_to=asked,
    )
    return UnansweredQuestion.objects.create(message=asked, text=QUESTION, asked_at=timezone.now())


def test_a_moderator_writes_an_article_from_an_unanswered_question(question, moderator, web, tmp_path):
    with chromium_page(tmp_path / "chromium-profile") as page:
        log_in(page, url=f"{web}/admin/conversations/unansweredquestion/")
        rows = page.locator("#result_list tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("do u do gift wrapping??")
        expect(rows.first).to_contain_text("Ada Lovelace")

        rows.first.locator("a", has_text="Write an article").click()
        # The question is beside the form, not in it: a title in the person's words would be
        # given to everyone the bot answers.
        expect(page.locator("#id_title")).to_have_value("")
        expect(page.locator("#id_title_helptext")).to_contain_text(QUESTION)
        page.fill("#id_title", "Gift wrapping")
        page.fill("#id_body", "We gift-wrap any order for 3 EUR: tick 'Gift wrap' at checkout.")
        page.click("input[name=_save]")
        expect(page.locator(".messagelist")).to_contain_text("was added successfully")

        page.goto(f"{web}/admin/conversations/unansweredquestion/?written=yes")
        expect(page.locator("#result_list tbody tr").first).to_contain_text("Gift wrapping")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "unanswered-questions.png", full_page=True)

    article = KnowledgeArticle.objects.get()
    assert (article.title, article.approved) == ("Gift wrapping", True)
    question.refresh_from_db()
    assert question.article == article
    # Searchable at once, and the admin's history says who wrote it.
    assert knowledge_search(text=QUESTION) == [article]
    [entry] = LogEntry.objects.filter(object_id=str(article.pk))
    assert (entry.user, entry.is_addition()) == (moderator, True)
