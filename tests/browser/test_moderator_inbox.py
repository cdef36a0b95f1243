"""A moderator's day in the real web process, through Debian's Chromium driven by Playwright."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from conversations.models import ChannelIdentity, Contact, Conversation, Message
from tests.browser.chromium import ARTIFACTS, chromium_page, log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
def inbox(moderator):
    now = timezone.now()
    conversations = {}
    for name, psid, minutes_ago in [
        ("Ada Lovelace", "2400000000000001", 2),
        ("Grace Hopper", "2400000000000002", 40),
    ]:
        identity = ChannelIdentity.objects.create(
            contact=Contact.objects.create(name=name), page_id="1001", external_id=psid
        )
        conversations[name] = Conversation.objects.create(
            identity=identity, last_activity_at=now - timedelta(minutes=minutes_ago)
        )
    ada = conversations["Ada Lovelace"]
    for minutes_ago, fields in [
        (9, {"role": "client", "status": "answered", "text": "Hi! Do you ship to Lisbon?"}),
        (
            8,
            {
                "role": "ai",
                "status": "sent",
                "text": "Yes, we ship to Lisbon in 3 to 5 working days.",
                "sent_at": now,
                "delivered_at": now,
                "read_at": now,
            },
        ),
        (
            5,
            {
                "role": "client",
                "status": "answered",
                "text": "Here is my order confirmation",
                "attachments": [
                    {"type": "file", "url": "https://cdn.example/order-1042.pdf", "title": "order-1042.pdf"}
                ],
            },
        ),
        (
            4,
            {
                "role": "ai",
                "status": "failed",
                "text": "",
                "error_detail": "Groq did not answer in time (timeout after 30 s)",
            },
        ),
        (
            3,
            {
                "role": "system",
                "status": "sent",
                "text": "Sorry, I couldn't answer your message just now.",
                "sent_at": now,
                "delivered_at": now,
            },
        ),
        (2, {"role": "client", "status": "received", "text": "Can a person check my order 1042, please?"}),
    ]:
        Message.objects.create(conversation=ada, created_at=now - timedelta(minutes=minutes_ago), **fields)
    Conversation.objects.filter(pk=ada.pk).update(
        last_message_text="Can a person check my order 1042, please?"
    )
    return ada, moderator


def test_moderator_finds_a_conversation_takes_over_and_replies(inbox, web, graph_standin, tmp_path):
    ada, moderator = inbox
    with chromium_page(tmp_path / "chromium-profile") as page:
        moderator_takes_over(page, base_url=web)

    [call] = graph_standin.calls(kind="message")
    assert call["psid"] == "2400000000000001"
    assert call["json"]["message"]["text"].startswith("Hello Ada, Maria here.")
    ada.refresh_from_db()
    assert (ada.bot_active, ada.bot_paused_by) == (False, moderator)
    assert ada.messages.get(role="staff").sent_by == moderator


def moderator_takes_over(page: Page, *, base_url: str) -> None:
    """Log in, search, read the transcript, pause the bot, reply, see the reply; screenshot."""
    log_in(page, url=f"{base_url}/admin/conversations/conversation/")

    # The list: both conversations, newest activity first; then search by name.
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Ada Lovelace")
    expect(rows.first).to_contain_text("Unanswered")
    page.fill("#searchbar", "Lovelace")
    page.press("#searchbar", "Enter")
    expect(rows).to_have_count(1)
    page.click("#result_list >> text=Ada Lovelace")

    # The transcript, oldest first, the failure flagged with its reason.
    transcript = page.locator("ol.transcript")
    expect(transcript.locator("li.message")).to_have_count(6)
    expect(transcript.locator("li.message").first).to_contain_text("Do you ship to Lisbon?")
    expect(transcript.locator("li.message-ai.status-failed")).to_contain_text("Groq did not answer in time")
    expect(transcript.locator("a", has_text="order-1042.pdf")).to_have_attribute(
        "href", "https://cdn.example/order-1042.pdf"
    )

    page.click("button:has-text('Pause bot')")
    expect(page.locator(".messagelist")).to_contain_text("Bot paused")
    expect(page.locator(".bot-state")).to_contain_text("Bot paused")

    page.fill("textarea[name=text]", "Hello Ada, Maria here. Order 1042 left our warehouse this morning.")
    page.click("button:has-text('Send')")
    expect(page.locator(".messagelist")).to_contain_text("Reply sent.")
    last = transcript.locator("li.message").last
    expect(last).to_have_class("message message-staff status-sent")
    expect(last).to_contain_text("Order 1042 left our warehouse")
    expect(last).to_contain_text("maria")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "conversation-page.png", full_page=True)
