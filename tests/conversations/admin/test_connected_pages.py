"""The connected Pages in the admin, and the conversations' Page and channel."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from conversations.models import ChannelIdentity, Contact, Conversation, Page
from conversations.pages import pages_current
from conversations.services.handoff import handoff_message
from tests.pages import page_connected

pytestmark = pytest.mark.django_db
TOKEN = "EAAGm0PX4ZCpsBAShopAarhusToken"
CONNECT = reverse("admin:conversations_page_add")
PAGES = reverse("admin:conversations_page_changelist")


@pytest.fixture
def shop(graph, redis_conn):
    return page_connected(
        graph, token=TOKEN, page_id="2002", name="Shop Aarhus", instagram=("17841400000000001", "shop.aarhus")
    )


def test_the_pages_list_shows_name_id_instagram_token_state_and_last_check(admin_client, shop):
    page = admin_client.get(PAGES).content.decode()
    for shown in ("Shop Aarhus", "2002", "@shop.aarhus (17841400000000001)", "Works", "Last check"):
        assert shown in page


def test_staff_connect_a_page_by_pasting_its_token(
    admin_client, graph, redis_conn, django_capture_on_commit_callbacks
):
    graph.page_add(token=TOKEN, page_id="2002", name="Shop Aarhus")
    assert admin_client.get(CONNECT).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(CONNECT, {"access_token": f" {TOKEN}\n"}, follow=True)

    assert "Connected Shop Aarhus (2002)." in response.content.decode()
    assert Page.objects.get().access_token == TOKEN
    assert pages_current().get(page_id="2002").name == "Shop Aarhus"
    assert [call["kind"] for call in graph.calls()] == ["page", "subscribe", "instagram_account"]


def test_a_refused_token_shows_why_on_the_form_stores_nothing_and_is_not_shown_back(
    admin_client, graph, redis_conn
):
    graph.page_add(token=TOKEN, page_id="2002", name="Shop Aarhus")
    refused = "EAAGm0PX4ZCpsBAThisTokenIsNotKnown"

    response = admin_client.post(CONNECT, {"access_token": refused})

    body = response.content.decode()
    assert response.status_code == 200
    assert "Facebook refused the token: Invalid OAuth access token" in body
    assert refused not in body
    assert not Page.objects.exists()
    # Nor in an error report of Django's, should the request ever fail.
    assert response.wsgi_request.sensitive_post_parameters == ("access_token",)


def test_connecting_needs_the_add_permission(client, graph, redis_conn):
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_page"))
    client.force_login(viewer)

    assert client.get(PAGES).status_code == 200
    assert client.post(CONNECT, {"access_token": TOKEN}).status_code == 403
    assert graph.calls() == []


def test_a_pages_prompt_and_handoff_message_are_edited_and_every_process_sees_them(
    admin_client, shop, django_capture_on_commit_callbacks
):
    change = reverse("admin:conversations_page_change", args=[shop.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            change, {"system_prompt": "You are Shop Aarhus's assistant.", "handoff_message": "Hold on!"}
        )

    assert response.status_code == 302
    page = pages_current().get(page_id="2002")
    assert (page.system_prompt, page.handoff_message) == ("You are Shop Aarhus's assistant.", "Hold on!")
    assert page.access_token == TOKEN  # the token is no form field: left as it was


def test_a_pages_business_hours_and_closed_message_hold_for_its_conversations(
    admin_client, shop, settings, django_capture_on_commit_callbacks
):
    settings.TIME_ZONE = "Europe/Copenhagen"
    settings.BUSINESS_HOURS = ""  # the service is always open; the Shop is not
    change = reverse("admin:conversations_page_change", args=[shop.pk])

    refused = admin_client.post(change, {"business_hours": "mon-fry 09:00-17:00"})
    with django_capture_on_commit_callbacks(execute=True):
        saved = admin_client.post(
            change, {"business_hours": "mon-fri 09:00-17:00", "handoff_message_closed": "Shop opens {opens}."}
        )

    assert refused.status_code == 200
    assert "fry" in refused.content.decode() and "errorlist" in refused.content.decode()
    assert saved.status_code == 302
    page = pages_current().get(page_id="2002")
    friday_night = datetime(2025, 6, 6, 23, 30, tzinfo=ZoneInfo("Europe/Copenhagen"))
    assert handoff_message(page=page, at=friday_night) == "Shop opens Monday at 09:00."
    assert handoff_message(page=None, at=friday_night) == settings.HANDOFF_MESSAGE


def test_disconnecting_from_the_list_stops_answering_the_page(
    admin_client, shop, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(PAGES, {"action": "disconnect", "_selected_action": [shop.pk]})

    assert pages_current().get(page_id="2002") is None
    assert Page.objects.get().disconnected_at is not None


def test_conversations_show_their_channel_and_filter_by_page_and_channel(admin_client, shop):
    for name, channel, page_id in [
        ("Ada", "messenger", "2002"),
        ("Grace", "instagram", "2002"),
        ("Linus", "messenger", "104728561934527"),
    ]:
        identity = ChannelIdentity.objects.create(
            contact=Contact.objects.create(name=name), channel=channel, page_id=page_id, external_id=name
        )
        Conversation.objects.create(identity=identity)
    changelist = reverse("admin:conversations_conversation_changelist")

    def listed(**query) -> set[str]:
        body = admin_client.get(changelist, query).content.decode()
        return {name for name in ("Ada", "Grace", "Linus") if f"> {name}<" in body or f">{name}<" in body}

    assert listed() == {"Ada", "Grace", "Linus"}
    assert '<td class="field-channel">Instagram</td>' in admin_client.get(changelist).content.decode()
    assert listed(page="2002") == {"Ada", "Grace"}
    assert listed(identity__channel__exact="instagram") == {"Grace"}
    assert listed(page="2002", identity__channel__exact="messenger") == {"Ada"}
