"""After the handoff, through the real web and worker processes: the summary in staff's alert and on
the conversation page, a handoff outside business hours telling when staff are back (in the
business's time zone), and the rating asked when staff hand back, on the dashboard and in /metrics,
a stray rating ignored.

The processes run in a time zone whose date is not UTC's at that moment, open only tomorrow
there: closed now, and "tomorrow" only where the business is."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django_rq import get_connection

from conversations.hours import DAY_NAMES
from conversations.llm import HANDOFF_TOOL
from conversations.models import Conversation, Handoff, Message
from devtools.processes import wait_for
from devtools.webhook import postback, text_message
from tests.e2e.stack import settle, stack_running
from tests.settings import TEST_SECRETS

pytestmark = pytest.mark.postgres
STAFF, PASSWORD = "maria", "a-staff-password"
SUMMARY = "Ada's vase arrived broken and she wants a refund; the bot has promised nothing."


def business_zone() -> str:
    """A zone whose date differs from UTC's now: 14 hours ahead late in the UTC day, 11 behind early in it."""
    return "Pacific/Kiritimati" if datetime.now(UTC).hour >= 10 else "Pacific/Pago_Pago"


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    get_connection("default").flushdb()
    zone = business_zone()
    tomorrow = datetime.now(ZoneInfo(zone)).date() + timedelta(days=1)
    with stack_running(
        django_db_blocker=django_db_blocker,
        log_dir=tmp_path_factory.mktemp("processes"),
        TIME_ZONE=zone,
        BUSINESS_HOURS=f"{DAY_NAMES[tomorrow.weekday()][:3]} 09:00-17:00",
        CSAT_ENABLED="True",
    ) as started:
        yield started


@pytest.fixture
def psid() -> str:
    return str(uuid.uuid4().int)[:16]


@pytest.fixture
def staff(service):
    """A session of a staff member signed in to the admin of the web process."""
    hasher = PBKDF2PasswordHasher()  # as the web process checks passwords
    get_user_model().objects.create(
        username=STAFF, password=hasher.encode(PASSWORD, hasher.salt()), is_staff=True, is_superuser=True
    )
    session = requests.Session()
    form(session, f"{service.base_url}/admin/login/", username=STAFF, password=PASSWORD, next="/admin/")
    return session


def form(session: requests.Session, url: str, action: str | None = None, **fields: str) -> requests.Response:
    """Post the page's form (its CSRF token from the page) to `action`, or to the page itself, and
    follow the redirect."""
    page = get(session, url)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
    cookies_over_http(session)
    posted = session.post(
        action or url,
        data={"csrfmiddlewaretoken": token, **fields},
        headers={"Referer": url},
        allow_redirects=False,
        timeout=10,
    )
    assert posted.status_code == 302, posted.text
    return get(session, requests.compat.urljoin(url, posted.headers["Location"]))


def get(session: requests.Session, url: str) -> requests.Response:
    cookies_over_http(session)
    response = session.get(url, timeout=10)
    assert response.status_code == 200
    return response


def cookies_over_http(session: requests.Session) -> None:
    # DEBUG is off, so the cookies are Secure, which requests keeps from plain http: here is 127.0.0.1.
    for cookie in session.cookies:
        cookie.secure = False


def closed_message() -> str:
    return (
        "I've asked someone from our team to take over. We're closed now; they'll reply when we open, "
        "tomorrow at 09:00."
    )


def csat_answers(service) -> dict[str, float]:
    response = requests.get(
        f"{service.base_url}/metrics",
        headers={"Authorization": f"Bearer {TEST_SECRETS['METRICS_TOKEN']}"},
        timeout=10,
    )
    return {
        score: float(value)
        for score, value in re.findall(
            r'^messenger_csat_answers_total\{score="(\d)"\} (\S+)$', response.text, re.M
        )
    }


def tap(service, *, psid: str, score: int) -> None:
    service.post(
        text_message(
            mid=f"m_{uuid.uuid4().hex}",
            text=f"{score} {'★' * score}",
            psid=psid,
            quick_reply_payload=f"CSAT_{score}",
        )
    )


def conversation_of(psid: str) -> Conversation | None:
    return Conversation.objects.filter(identity__external_id=psid).first()


def test_outside_hours_the_person_hears_when_staff_are_back_and_staff_get_the_summary(service, staff, psid):
    service.groq.script(
        [
            {"tool_calls": [{"name": HANDOFF_TOOL, "arguments": {"reason": "Wants a refund"}}]},
            {"text": SUMMARY},
        ]
    )

    service.post_text(psid=psid, text="my vase arrived broken, i want my money back")

    assert wait_for(lambda: service.sent_to(psid), message="the handoff message") == [closed_message()]
    [alert] = wait_for(lambda: service.alerts.calls(kind="alert"), message="the alert")
    conversation = conversation_of(psid)
    assert alert["text"].startswith("Test User ")
    assert alert["text"].endswith(
        " needs a person\nWants a refund\n"
        f"Summary: {SUMMARY}\n"
        f"http://localhost:8000/admin/conversations/conversation/{conversation.pk}/change/"
    )
    # The summary was asked for after the person was told.
    [told] = service.graph.calls(kind="message")
    reply_call, summary_call = service.groq.calls()
    assert summary_call["tools"] == [] and summary_call["started"] >= told["ended"]
    page = staff.get(
        f"{service.base_url}/admin/conversations/conversation/{conversation.pk}/change/", timeout=10
    )
    assert "Summary for staff" in page.text and SUMMARY.replace("'", "&#x27;") in page.text


def test_staff_hand_back_the_person_rates_us_and_the_dashboard_and_metrics_count_it(service, staff, psid):
    service.post(
        postback(mid=f"m_{uuid.uuid4().hex}", title="Talk to a person", payload="HUMAN_AGENT", psid=psid)
    )
    wait_for(
        lambda: Handoff.objects.filter(conversation__identity__external_id=psid, alerted_at__isnull=False),
        message="the alert",
    )
    before = csat_answers(service)
    page = f"{service.base_url}/admin/conversations/conversation/{conversation_of(psid).pk}/change/"

    resumed = form(staff, page, action=page.replace("/change/", "/bot/"), bot="resume")

    assert "asks them how we did" in resumed.text
    question = wait_for(
        lambda: [call for call in service.graph.calls(kind="message") if call["psid"] == psid][1:],
        message="the question",
    )[0]["json"]["message"]
    assert question["text"] == "How did we do?"
    assert [button["payload"] for button in question["quick_replies"]] == [f"CSAT_{n}" for n in range(1, 6)]

    tap(service, psid=psid, score=5)
    wait_for(lambda: "Thank you for telling us!" in service.sent_to(psid), message="the thanks")
    tap(service, psid=psid, score=1)  # tapped again: ignored
    settle()

    assert service.sent_to(psid) == [closed_message(), "How did we do?", "Thank you for telling us!"]
    assert [call["tools"] for call in service.groq.calls()] == [
        []
    ]  # the summary's; no reply asked of the LLM
    assert Handoff.objects.get(conversation__identity__external_id=psid).csat_score == 5
    after = csat_answers(service)
    assert (after["5"] - before["5"], after["1"] - before["1"]) == (1, 0)
    dashboard = get(staff, f"{service.base_url}/admin/dashboard/").text
    assert "How people rated our help (CSAT)" in dashboard
    assert "1 answer, 5.0 of 5 on average." in dashboard


def test_a_rating_nobody_asked_for_is_stored_and_ignored(service, psid):
    tap(service, psid=psid, score=3)

    stored = wait_for(
        lambda: Message.objects.filter(conversation__identity__external_id=psid, status="answered").first(),
        message="the rating marked answered",
    )
    settle()
    assert stored.details["quick_reply_payload"] == "CSAT_3"
    assert service.sent_to(psid) == [] and service.groq.calls() == []
