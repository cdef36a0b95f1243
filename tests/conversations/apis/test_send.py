from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from conversations.models import Message
from devtools.processes import free_port
from devtools.standins.graph import PAGE_ID
from tests.pages import environment_page_registered, page_connected

URL = "/api/integrations/messenger/send"
PSID = "2400000000000001"  # the PSID of the ada_conversation fixture


@pytest.fixture(autouse=True)
def fresh_throttle():
    # DRF keeps throttle history in the cache; each test starts with a full allowance.
    cache.clear()


@pytest.fixture
def integration_user(db):
    """Not staff: allowed by the dedicated permission alone."""
    user = get_user_model().objects.create_user("crm")
    user.user_permissions.add(Permission.objects.get(codename="send_message"))
    return user


@pytest.fixture
def token_client(integration_user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=integration_user).key}")
    return client


def test_token_user_with_the_permission_sends_and_gets_the_message_id(
    graph, ada_conversation, token_client, integration_user
):
    response = token_client.post(URL, {"recipient_id": PSID, "text": "Your order shipped."}, format="json")

    assert response.status_code == 200
    message = ada_conversation.messages.get()
    assert response.json() == {"recipient_id": PSID, "message_id": message.external_id}
    [call] = graph.calls(kind="message")
    assert call["json"]["message"]["text"] == "Your order shipped."
    assert (message.role, message.status, message.sent_by) == ("staff", "sent", integration_user)
    ada_conversation.refresh_from_db()
    assert not ada_conversation.bot_active


def test_a_session_without_the_csrf_token_is_refused(graph, ada_conversation, integration_user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(integration_user)
    response = client.post(URL, {"recipient_id": PSID, "text": "Hi"}, format="json")
    # A session is a browser's credential: without the CSRF token it is refused.
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert graph.calls() == []


@pytest.mark.parametrize("granted", [False, True])
def test_one_rule_for_sending_on_the_api_and_in_the_admin_the_permission(
    graph, ada_conversation, client, granted
):
    agent = get_user_model().objects.create_user("agent", is_staff=True)
    if granted:
        agent.user_permissions.add(Permission.objects.get(codename="send_message"))
    client.force_login(agent)
    api = APIClient()
    api.force_authenticate(agent)

    sent_by_api = api.post(URL, {"recipient_id": PSID, "text": "From the API"}, format="json")
    sent_in_admin = client.post(
        reverse("admin:conversations_conversation_reply", args=[ada_conversation.pk]),
        {"text": "From the admin"},
    )

    if granted:
        assert (sent_by_api.status_code, sent_in_admin.status_code) == (200, 302)
        assert len(graph.calls(kind="message")) == 2
    else:
        assert (sent_by_api.status_code, sent_in_admin.status_code) == (403, 403)
        assert sent_by_api.json() == {
            "detail": "Sending messages needs the “Can send messages to contacts” permission."
        }
        assert graph.calls() == []
        assert not ada_conversation.messages.exists()


def test_staff_session_with_csrf_token_sends(graph, ada_conversation, admin_client):
    response = admin_client.post(URL, {"recipient_id": PSID, "text": "Hi"}, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["message_id"].startswith("m_")


def test_anonymous_caller_is_refused(graph, ada_conversation):
    response = APIClient().post(URL, {"recipient_id": PSID, "text": "Hi"}, format="json")
    assert response.status_code == 401
    assert graph.calls() == []


def test_wrong_token_is_refused(graph, ada_conversation):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.post(URL, {"recipient_id": PSID, "text": "Hi"}, format="json").status_code == 401


def test_user_without_the_permission_is_forbidden(graph, ada_conversation):
    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_user("someone"))
    assert client.post(URL, {"recipient_id": PSID, "text": "Hi"}, format="json").status_code == 403
    assert graph.calls() == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"recipient_id": PSID}, "text"),
        ({"recipient_id": PSID, "text": ""}, "text"),
        ({"recipient_id": PSID, "text": " \n\t "}, "text"),
        ({"recipient_id": PSID, "text": "x" * 20_001}, "text"),
        ({"text": "Hi"}, "recipient_id"),
        ({"recipient_id": "abc", "text": "Hi"}, "recipient_id"),
        ({"recipient_id": "1234; DROP", "text": "Hi"}, "recipient_id"),
        # Digits of other scripts match \d: Arabic-Indic, fullwidth, Devanagari. A PSID is ASCII.
        ({"recipient_id": "٢٤٠٠٠٠٠٠٠٠٠٠٠٠٠١", "text": "Hi"}, "recipient_id"),
        ({"recipient_id": "２４００", "text": "Hi"}, "recipient_id"),
        ({"recipient_id": "२४००", "text": "Hi"}, "recipient_id"),
    ],
)
def test_invalid_input_gets_field_errors_and_sends_nothing(
    graph, ada_conversation, token_client, payload, field
):
    response = token_client.post(URL, payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert graph.calls() == []
    assert not ada_conversation.messages.exists()


def test_malformed_json_is_a_400(graph, ada_conversation, token_client):
    response = token_client.post(URL, "{not json", content_type="application/json")
    assert response.status_code == 400


def test_json_nested_too_deeply_is_a_400_with_a_reason(graph, ada_conversation, token_client):
    nested = '{"recipient_id": "' + PSID + '", "text": ' + "[" * 100_000 + "]" * 100_000 + "}"

    response = token_client.post(URL, nested, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"detail": "JSON parse error - nested too deeply"}
    assert graph.calls() == []


@pytest.mark.parametrize(
    ("script", "status", "code", "meta_code", "reason_part"),
    [
        ({"status": 400, "code": 551}, 422, "recipient_unreachable", 551, "isn't available"),
        (
            {"status": 400, "code": 10, "subcode": 2018278},
            422,
            "recipient_unreachable",
            10,
            "outside of allowed window",
        ),
        ({"status": 401, "code": 190}, 502, "invalid_page_token", 190, "access token"),
        (
            {"status": 400, "code": 100, "message": "(#100) Param is invalid"},
            502,
            "delivery_failed",
            100,
            "Param is invalid",
        ),
        ({"status": 500}, 503, "facebook_unavailable", 2, "retry your request later"),
    ],
)
def test_graph_failures_are_clear_responses_and_the_message_is_kept_as_failed(
    graph, ada_conversation, token_client, settings, script, status, code, meta_code, reason_part
):

    graph.script([{"on": "message", **script}])

    response = token_client.post(URL, {"recipient_id": PSID, "text": "Hi"}, format="json")

    assert response.status_code == status
    body = response.json()
    assert (body["code"], body["meta_code"]) == (code, meta_code)
    assert reason_part in body["detail"]
    assert settings.FACEBOOK_PAGE_ACCESS_TOKEN not in body["detail"]
    message = ada_conversation.messages.get()
    assert (message.status, message.role) == ("failed", "staff")
    assert reason_part in message.error_detail


def test_unavailable_facebook_says_when_to_retry(graph, ada_conversation, token_client):
    graph.script([{"on": "message", "status": 503}])
    response = token_client.post(URL, {"recipient_id": PSID, "text": "Hi"}, format="json")
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0


def test_long_text_is_split_and_the_first_part_id_returned(graph, ada_conversation, token_client):
    text = "A sentence that keeps going. " * 150

    response = token_client.post(URL, {"recipient_id": PSID, "text": text}, format="json")

    assert response.status_code == 200
    calls = graph.calls(kind="message")
    assert len(calls) == 3
    first = ada_conversation.messages.order_by("id").first()
    assert response.json()["message_id"] == first.external_id
    assert calls[0]["json"]["message"]["text"] == first.text


def test_the_endpoint_is_throttled(graph, ada_conversation, token_client, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"messenger_send": "2/min"})
    statuses = [
        token_client.post(URL, {"recipient_id": PSID, "text": "Hi"}, format="json").status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    assert len(graph.calls(kind="message")) == 2


def test_the_throttle_lets_sends_through_when_redis_is_down(graph, ada_conversation, token_client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    response = token_client.post(URL, {"recipient_id": PSID, "text": "Hi"}, format="json")
    assert response.status_code == 200
    assert len(graph.calls(kind="message")) == 1


def test_schema_documents_the_endpoint_with_examples(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/integrations/messenger/send"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/MessageSendInput"
    )
    assert {"200", "400", "401", "403", "422", "429", "502", "503"} <= set(operation["responses"])
    assert operation["requestBody"]["content"]["application/json"]["examples"]
    assert client.get("/api/docs/").status_code == 200


def test_outside_messengers_window_is_a_422_outside_window_before_asking_meta(
    graph, ada_conversation, token_client
):
    ada_conversation.person_last_wrote_at = timezone.now() - timedelta(days=8)
    ada_conversation.save(update_fields=["person_last_wrote_at"])

    response = token_client.post(URL, {"recipient_id": PSID, "text": "Hi"}, format="json")

    assert response.status_code == 422
    assert response.json()["code"] == "outside_window"
    assert "7 days" in response.json()["detail"]
    assert graph.calls() == []


def test_someone_new_is_written_to_and_their_conversation_created(graph, ada_conversation, token_client):
    response = token_client.post(URL, {"recipient_id": "555", "text": "Your parcel is here"}, format="json")

    assert response.status_code == 200
    message = Message.objects.get(external_id=response.json()["message_id"])
    assert message.conversation.identity.external_id == "555"


# --- several Pages ---------------------------------------------------------------------------


@pytest.fixture
def two_pages(graph, db, redis_conn, settings):
    """The environment's Page (FACEBOOK_PAGE_ID 104728561934527) and a connected one, 2002."""
    settings.FACEBOOK_PAGE_ID = PAGE_ID
    environment_page_registered(graph)
    return page_connected(graph, token="EAAshop", page_id="2002", name="Shop Aarhus")


def test_with_several_pages_a_send_names_its_page_and_goes_out_with_that_pages_token(
    graph, two_pages, token_client
):
    missing = token_client.post(URL, {"recipient_id": "555", "text": "Hi"}, format="json")
    unknown = token_client.post(URL, {"recipient_id": "555", "text": "Hi", "page_id": "3003"}, format="json")
    assert (missing.status_code, unknown.status_code) == (400, 400)
    assert missing.json() == {
        "page_id": ["2 Pages are connected (2002, 104728561934527): say which one to send as."]
    }
    assert unknown.json() == {
        "page_id": ["Page 3003 is not connected (manage.py pages list shows those that are)."]
    }
    assert graph.calls(kind="message") == []

    response = token_client.post(URL, {"recipient_id": "555", "text": "Hi", "page_id": "2002"}, format="json")

    assert response.status_code == 200
    [call] = graph.calls(kind="message")
    assert (call["token"], call["psid"]) == ("EAAshop", "555")
    assert Message.objects.get().conversation.identity.page_id == "2002"
