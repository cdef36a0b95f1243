"""A moderator opens the dashboard from the admin's home page, in Chromium against the real web process."""

import random
import re
from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from conversations.models import (
    ChannelIdentity,
    Contact,
    Conversation,
    Handoff,
    KnowledgeArticle,
    Message,
    UnansweredQuestion,
)
from tests.browser.chromium import chromium_page, log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.postgres]
DAYS = 30
QUESTIONS = [
    "Do you ship to Norway?",
    "Can I pay with PayPal?",
    "Do you do gift wrapping?",
    "Is the blue vase back in stock?",
]
FAILURES = ["llm:503", "llm:429", "graph:551", "outside_window"]


@pytest.fixture
def month(moderator, redis_conn):
    """A month of exchanges, the same on every run: busier on weekdays, a slow day now and then."""
    rng = random.Random(7)
    article = KnowledgeArticle.objects.create(title="Shipping", body="We ship to Norway in 5-8 working days.")
    identity = ChannelIdentity.objects.create(
        contact=Contact.objects.create(name="Ada"), page_id="1001", external_id="2400000000000001"
    )
    conversation = Conversation.objects.create(identity=identity)
    now = timezone.now()
    for days_ago in range(DAYS - 1, -1, -1):
        day = timezone.localdate() - timedelta(days=days_ago)
        start = timezone.make_aware(datetime.combine(day, time.min))
        count = rng.randint(20, 45) if day.weekday() < 5 else rng.randint(8, 20)
        asked = sorted(min(start + timedelta(seconds=rng.uniform(0, 86_400)), now) for _ in range(count))
        questions = Message.objects.bulk_create(
            Message(
                conversation=conversation,
                role="client",
                status="answered",
                text=rng.choice(QUESTIONS),
                created_at=at,
            )
            for at in asked
        )
        replies = Message.objects.bulk_create(
            Message(
                conversation=conversation,
                role="ai",
                text="Here is what I know.",
                reply_to=question,
                llm_model="openai/gpt-oss-120b",
                created_at=question.created_at + timedelta(seconds=1),
                **_outcome(rng, question.created_at),
            )
            for question in questions
        )
        Message.knowledge_articles.through.objects.bulk_create(
            Message.knowledge_articles.through(message_id=reply.pk, knowledgearticle_id=article.pk)
            for reply in replies
            if rng.random() < 0.65
        )
        Handoff.objects.bulk_create(
            Handoff(
                conversation=conversation,
                trigger=rng.choice(["model", "model", "person"]),
                reason="Refund",
                created_at=at,
            )
            for at in rng.sample(asked, k=min(len(asked), rng.randint(0, 4)))
        )
        UnansweredQuestion.objects.bulk_create(
            UnansweredQuestion(message=question, text=question.text, asked_at=question.created_at)
            for question in rng.sample(questions, k=3)
        )


def _outcome(rng: random.Random, asked_at: datetime) -> dict:
    if rng.random() < 0.04:
        return {"status": "failed", "error_code": rng.choice(FAILURES)}
    # Most answers in a few seconds, a long tail when Groq is slow.
    return {"status": "sent", "sent_at": asked_at + timedelta(seconds=2 + rng.expovariate(1 / 6))}


def test_a_moderator_opens_the_dashboard_from_the_admin_home_page(month, web, tmp_path):
    with chromium_page(tmp_path / "chromium-profile") as page:
        log_in(page, url=f"{web}/admin/")
        page.click(".dashboard-link a")

        expect(page.locator("h1")).to_have_text("Dashboard")
        charts = page.locator("figure.chart")
        expect(charts).to_have_count(9)
        for index in (0, 2, 3, 4, 5):  # the bar charts
            expect(charts.nth(index).locator("svg rect").first).to_be_visible()
        expect(charts.nth(1).locator("svg polyline")).to_have_count(2)  # median and p90
        expect(charts.nth(0).locator("svg rect title").first).to_contain_text("In (from people)")
        expect(page.locator(".unanswered-top tbody tr")).to_have_count(len(QUESTIONS))
        # For the README: docs/images/dashboard.png is a copy of one run's screenshot.
        page.screenshot(path=tmp_path / "dashboard.png", full_page=True)
        write = page.locator(".unanswered-top a", has_text="Write an article").first
        expect(write).to_have_attribute(
            "href", re.compile(r"/admin/conversations/knowledgearticle/add/\?question=\d+$")
        )
        write.click()
        expect(page.locator("#id_title")).to_have_value("")
        expect(page.locator("#id_title_helptext")).to_contain_text("Written for the question")
