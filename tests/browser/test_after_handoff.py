"""After the handoff, in Chromium against the real web process: a moderator reads the summary at the
top of the conversation page, then sees on the dashboard how people rated staff's help."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from conversations.models import ChannelIdentity, Contact, Conversation, Handoff, Message
from tests.browser.chromium import ARTIFACTS, chromium_page, log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.postgres]
SUMMARY = "Ada's blue vase arrived broken; she wants a refund, not a new one. The bot promised nothing."
SCREENSHOT = ARTIFACTS / "dashboard-csat.png"


@pytest.fixture
def after_handoffs(moderator, redis_conn):
    """Ada waiting for staff, her handoff summarised; and a month of handoffs rated when handed back."""
    now = timezone.now()
    identity = ChannelIdentity.objects.create(
        contact=Contact.objects.create(name="Ada Lovelace", first_name="Ada"),
        page_id="1001",
        external_id="2400000000000001",
    )
    ada = Conversation.objects.create(
        identity=identity,
        bot_active=False,
        bot_paused_at=now - timedelta(minutes=3),
        waiting_for_staff_since=now - timedelta(minutes=3),
        handoff_reason="Wants a refund for a broken vase",
        person_last_wrote_at=now - timedelta(minutes=4),
    )
    Message.objects.create(
        conversation=ada,
        role="client",
        status="answered",
        text="my vase is broken, refund pls",
        created_at=now - timedelta(minutes=4),
    )
    rng = random.Random(25)
    Handoff.objects.bulk_create(
        [
            Handoff(
                conversation=ada,
                trigger="model",
                reason="Refund",
                created_at=answered - timedelta(hours=2),
                alerted_at=answered - timedelta(hours=2),
                csat_asked_at=answered - timedelta(minutes=5),
                csat_score=rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 4, 6])[0],
                csat_answered_at=answered,
            )
            for days_ago in range(29, 0, -1)
            for answered in [now - timedelta(days=days_ago, minutes=rng.randint(0, 600))] * rng.randint(0, 4)
        ]
        + [
            Handoff(
                conversation=ada,
                trigger="model",
                reason="Wants a refund for a broken vase",
                summary=SUMMARY,
                created_at=now - timedelta(minutes=3),
                alerted_at=now - timedelta(minutes=3),
            )
        ]
    )
    return ada


def test_a_moderator_reads_the_summary_then_the_ratings_on_the_dashboard(after_handoffs, web, tmp_path):
    with chromium_page(tmp_path / "chromium-profile") as page:
        log_in(page, url=f"{web}/admin/conversations/conversation/{after_handoffs.pk}/change/")

        summary = page.locator(".handoff-summary")
        expect(summary).to_contain_text("Summary for staff")
        expect(summary.locator(".handoff-summary-text")).to_have_text(SUMMARY)
        expect(page.locator(".handoff")).to_contain_text("Wants a refund for a broken vase")
        # Above the transcript, where staff look first.
        summary_box, transcript_box = summary.bounding_box(), page.locator(".transcript").bounding_box()
        assert summary_box["y"] < transcript_box["y"]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "conversation-summary.png", full_page=True)

        page.goto(f"{web}/admin/dashboard/")
        charts = page.locator("figure.chart")
        expect(charts).to_have_count(9)
        ratings, average = charts.nth(6), charts.nth(7)
        expect(ratings.locator("h2")).to_have_text("How people rated our help (CSAT)")
        expect(ratings.locator("svg rect").first).to_be_visible()
        expect(ratings.locator(".chart-summary")).to_contain_text("of 5 on average")
        expect(average.locator("svg circle").first).to_be_visible()  # a point per day with answers
        expect(average.locator(".chart-legend")).to_contain_text("Average")
        ratings.scroll_into_view_if_needed()
        page.screenshot(path=SCREENSHOT, full_page=True)
    assert SCREENSHOT.stat().st_size > 0
