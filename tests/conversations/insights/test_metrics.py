"""GET /metrics: Prometheus's text format, for a bearer METRICS_TOKEN or a staff session only."""

import uuid

import pytest
from django.contrib.auth.models import User
from prometheus_client.parser import text_string_to_metric_families

from devtools.webhook import post_signed, text_message
from tests.messenger.fixtures import fixture

TOKEN = "test-metrics-token"  # tests/settings.py


def samples(response) -> dict[tuple[str, tuple], float]:
    text = response.content.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    return samples(response)


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x"],
)
def test_without_the_token_or_a_staff_session_it_is_forbidden_and_shows_no_numbers(client, db, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 403
    assert b"messenger_" not in response.content
    assert b"METRICS_TOKEN" in response.content  # says how to get in


def test_an_empty_metrics_token_opens_nothing(client, db, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 403


def test_staff_signed_in_to_the_admin_can_read_it_and_others_cannot(client, db):
    person = User.objects.create_user("someone", password="pw")
    client.force_login(person)
    assert client.get("/metrics").status_code == 403
    person.is_staff = True
    person.save()
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"messenger_messages_received_total" in response.content


def test_received_messages_are_counted_by_kind_once_each(client, db, redis_conn):
    kind_text = ("messenger_messages_received_total", (("channel", "messenger"), ("kind", "text")))
    kind_postback = ("messenger_messages_received_total", (("channel", "messenger"), ("kind", "postback")))
    before = scrape(client)
    envelope = text_message(mid=f"m_{uuid.uuid4().hex}", psid=str(uuid.uuid4().int)[:16])
    post_signed(client, envelope)
    post_signed(client, envelope)  # Meta redelivers: stored once, counted once
    post_signed(client, fixture("postback"))
    after = scrape(client)
    assert after[kind_text] - before.get(kind_text, 0) == 1
    assert after[kind_postback] - before.get(kind_postback, 0) == 1


def test_the_queue_depth_comes_from_redis(client, db, redis_conn):
    queued = ("rq_jobs", (("queue", "default"), ("status", "queued")))
    before = scrape(client)[queued]
    post_signed(client, text_message(mid=f"m_{uuid.uuid4().hex}", psid=str(uuid.uuid4().int)[:16]))
    assert scrape(client)[queued] > before  # its reply job waits: no worker runs here
