"""A moderator answers people the bot handed over, in Chromium against the real web process."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from conversations.models import ChannelIdentity, Contact, Conversation, Message
from tests.browser.chromium import ARTIFACTS, chromium_page, log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
def handed_over(moderator):
    now = timezone.now()
    conversations = []
    for name, psid, waiting in [
        ("Ada Lovelace", "2400000000000001", True),
        ("Grace Hopper", "2400000000000002", False),
    ]:
        identity = ChannelIdentity.objects.create(
            contact=Contact.objects.create(name=name, first_name=name.split()[0]),
            page_id="1001",
            external_id=psid,
        )
        conversations.append(
            Conversation.objects.create(
                identity=identity,
                bot_active=not waiting,
                waiting_for_staff_since=now - timedelta(minutes=3) if waiting else None,
                handoff_reason="Wants a refund for a broken vase" if waiting else "",
                person_last_wrote_at=now - timedelta(hours=2),
            )
        )
    Message.objects.create(
        conversation=conversations[0],
        role="client",
        status="answered",
        text="my vase is broken, refund pls",
        created_at=now - timedelta(minutes=4),
        sent_at=now - timedelta(hours=2),
    )
    return conversations[0]


def test_a_moderator_filters_those_waiting_reads_why_replies_and_the_flag_clears(
    handed_over, web, graph_standin, tmp_path
):
    with chromium_page(tmp_path / "chromium-profile") as page:
        log_in(page, url=f"{web}/admin/conversations/conversation/")
        expect(page.locator(".waiting-count")).to_have_text("1 waiting for staff")
        page.click(".waiting-count a")
        rows = page.locator("#result_list tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("Ada Lovelace")
        expect(rows.first).to_contain_text("Waiting for staff")

        rows.first.locator("a", has_text="Ada Lovelace").click()
        expect(page.locator(".handoff")).to_contain_text("Wants a refund for a broken vase")
        expect(page.locator(".reply-window")).to_contain_text("Messenger's 24-hour window: 21 h")
        expect(page.locator("li.message-client")).to_contain_text("Received")
        page.fill("textarea[name=text]", "Hi Ada, Maria here: a new vase is on its way, no charge.")
        page.click("button:has-text('Send')")
        expect(page.locator(".messagelist")).to_contain_text("Reply sent.")
        expect(page.locator(".handoff")).to_have_count(0)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "handoff-answered.png", full_page=True)

        page.goto(f"{web}/admin/conversations/conversation/?waiting=yes")
        expect(page.locator("#result_list tbody tr")).to_have_count(0)
        expect(page.locator(".waiting-count")).to_have_count(0)

    handed_over.refresh_from_db()
    assert handed_over.waiting_for_staff_since is None
    [call] = graph_standin.calls(kind="message")
    assert call["json"]["messaging_type"] == "RESPONSE"
