"""The admin's dashboard: the numbers it shows for a few days of known messages, who may see it,
and an empty database."""

from datetime import datetime, time, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from redis.exceptions import RedisError

from conversations.insights.charts import day_text
from conversations.insights.dashboard import (
    dashboard_days,
    dashboard_settled_days_count,
    failure_reason_label,
    percentile,
)
from conversations.models import (
    Comment,
    Handoff,
    KnowledgeArticle,
    Message,
    UnansweredQuestion,
)
from conversations.services.conversations import conversation_get_or_create

pytestmark = pytest.mark.postgres
URL = reverse("admin-dashboard")
TIME_ZONE = "Europe/Copenhagen"


@pytest.fixture(autouse=True)
def local_days(settings, redis_conn):
    """Days in Copenhagen (UTC+1 in winter, +2 in summer), so a day boundary is not UTC's; and
    an empty cache, where the dashboard keeps the settled days."""
    settings.TIME_ZONE = TIME_ZONE


@pytest.fixture
def moderator(db):
    user = get_user_model().objects.create_user("mod", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Moderators"))
    return user


def at(days_ago: int, hour: int, minute: int = 0, second: float = 0) -> datetime:
    """A moment of a day in the dashboard's time zone."""
    day = timezone.localdate() - timedelta(days=days_ago)
    return timezone.make_aware(datetime.combine(day, time(hour, minute))) + timedelta(seconds=second)


@pytest.fixture
def conversation(ada_conversation):
    return ada_conversation


def exchange(conversation, *, asked_at: datetime, waits: list[float], role: str = "ai", **reply) -> Message:
    """A client message and the replies sent `waits` seconds after it arrived."""
    question = Message.objects.create(
        conversation=conversation, role="client", status="answered", text="Do you ship?", created_at=asked_at
    )
    for number, wait in enumerate(waits):
        Message.objects.create(
            conversation=conversation,
            role=role,
            status="sent",
            text="Yes.",
            reply_to=question,
            created_at=asked_at + timedelta(seconds=1),
            sent_at=asked_at + timedelta(seconds=wait),
            llm_model="openai/gpt-oss-120b" if number == 0 and role == "ai" else "",
            **reply,
        )
    return question


@pytest.fixture
def history(conversation):
    """Three days ago (settled, so cached), yesterday just after midnight, and today."""
    article = KnowledgeArticle.objects.create(title="Shipping", body="5-8 working days.")
    # Three days ago: three questions answered in 10 s (in two parts), 20 s and 60 s, one waiting.
    first = exchange(conversation, asked_at=at(3, 10), waits=[10, 15])
    exchange(conversation, asked_at=at(3, 11), waits=[20])
    exchange(conversation, asked_at=at(3, 12), waits=[60])
    Message.objects.create(conversation=conversation, role="client", status="received", created_at=at(3, 13))
    for reply in Message.objects.filter(role="ai").exclude(llm_model="")[:2]:
        reply.knowledge_articles.add(article)
    for code in ["llm:503", "llm:502", "graph:551"]:
        Message.objects.create(
            conversation=conversation,
            role="ai",
            status="failed",
            error_code=code,
            created_at=at(3, 14),
            reply_to=first,
        )
    # Two of them rated when staff handed back, 5 and 4 out of 5.
    for trigger, score in [("model", 5), ("model", 4), ("person", None)]:
        Handoff.objects.create(
            conversation=conversation,
            trigger=trigger,
            reason="Refund",
            created_at=at(3, 15),
            csat_score=score,
            csat_answered_at=at(3, 16) if score else None,
        )
    # Yesterday at 00:30 in Copenhagen, still the day before in UTC.
    exchange(conversation, asked_at=at(1, 0, 30), waits=[30])
    # Today: answered in 4 s and 8 s, a staff message, a failure outside Meta's window.
    exchange(conversation, asked_at=at(0, 0, 1), waits=[4])
    exchange(conversation, asked_at=at(0, 0, 2), waits=[8])
    Message.objects.create(conversation=conversation, role="staff", status="sent", created_at=at(0, 0, 3))
    Message.objects.create(
        conversation=conversation,
        role="staff",
        status="failed",
        error_code="outside_window",
        created_at=at(0, 0, 4),
    )
    # Rated 2 today, a few minutes after midnight in Copenhagen (yesterday in UTC).
    Handoff.objects.create(
        conversation=conversation,
        trigger="person",
        reason="Talk to a person",
        created_at=at(0, 0, 5),
        csat_score=2,
        csat_answered_at=at(0, 0, 9),
    )
    # A comment three days ago answered privately that day, and one today that got nothing.
    for number, (received_at, replied_at) in enumerate([(at(3, 9), at(3, 9, 1)), (at(0, 0, 6), None)]):
        Comment.objects.create(
            page_id="1001",
            platform="messenger",
            comment_id=f"1001_{number}",
            author_id="8123456789012345",
            commented_at=received_at,
            received_at=received_at,
            reply_sent_at=replied_at,
            status="answered" if replied_at else "ignored",
        )
    return article


def question(conversation, text: str, *, asked_at: datetime, article=None) -> UnansweredQuestion:
    message = Message.objects.create(
        conversation=conversation, role="client", status="answered", text=text, created_at=asked_at
    )
    return UnansweredQuestion.objects.create(message=message, text=text, asked_at=asked_at, article=article)


def by_day(chart) -> dict[str, list[str]]:
    return {row[0]: row[1:] for row in chart.table_rows}


def test_the_dashboard_shows_each_days_numbers(admin_client, history):
    response = admin_client.get(URL)

    assert response.status_code == 200
    messages, reply_times, failures, handoffs, knowledge, _, csat, csat_average, comments = response.context[
        "charts"
    ]
    three_days_ago, yesterday, today = (day_text(timezone.localdate() - timedelta(days=n)) for n in (3, 1, 0))
    # In: four questions; out: four replies (one in two parts), the failures not.
    assert by_day(messages)[three_days_ago] == ["4", "4"]
    assert by_day(messages)[yesterday] == ["1", "1"]
    assert by_day(messages)[today] == ["2", "3"]
    # First replies only: 10, 20 and 60 s, so the median is 20 s and the 90th percentile 52 s.
    assert by_day(reply_times)[three_days_ago] == ["20 s", "52 s"]
    assert by_day(reply_times)[yesterday] == ["30 s", "30 s"]
    assert by_day(reply_times)[today] == ["6 s", "8 s"]
    assert by_day(reply_times)[day_text(timezone.localdate() - timedelta(days=2))] == ["–", "–"]
    assert failures.table_head == [
        "Day",
        "Groq was unavailable",
        "Outside Messenger's 24-hour window",
        "The person cannot be reached",
    ]
    assert by_day(failures)[three_days_ago] == ["2", "0", "1"]
    assert by_day(failures)[today] == ["0", "1", "0"]
    assert handoffs.table_head == ["Day", "The assistant", "The person asked"]
    assert by_day(handoffs)[three_days_ago] == ["2", "1"]
    assert by_day(handoffs)[today] == ["0", "1"]
    assert by_day(knowledge)[three_days_ago] == ["2", "1"]
    assert knowledge.summary == "6 AI answers, 33% of them given a knowledge article."
    assert csat.table_head == ["Day", "1 ★", "2 ★", "3 ★", "4 ★", "5 ★"]
    assert by_day(csat)[three_days_ago] == ["0", "0", "0", "1", "1"]
    assert by_day(csat)[today] == ["0", "1", "0", "0", "0"]
    assert csat.summary == "3 answers, 3.7 of 5 on average."
    assert by_day(csat_average)[three_days_ago] == ["4.5"]
    assert by_day(csat_average)[yesterday] == ["–"]
    assert by_day(csat_average)[today] == ["2"]
    assert csat_average.summary == f"On {today}: 2.0 of 5 from 1 answer."
    assert [label for _, label in csat_average.y_ticks] == ["0", "1.25", "2.5", "3.75", "5"]
    assert comments.table_head == ["Day", "Comments received", "Private replies sent"]
    assert by_day(comments)[three_days_ago] == ["1", "1"]
    assert by_day(comments)[today] == ["1", "0"]
    assert comments.summary == "2 comments received and 1 private reply sent in 30 days."
    # The charts themselves: a bar per day and series with its tooltip, the same numbers for screen readers.
    html = response.content.decode()
    assert f"<title>{three_days_ago}: In (from people) 4</title>" in html
    assert f"<title>{three_days_ago}: 90th percentile 52 s</title>" in html
    assert html.count('<table class="visually-hidden"') == 9
    assert html.count("No data yet") == 1  # the questions: this history has none


def test_messages_in_are_split_by_channel(admin_client, conversation):
    instagram = conversation_get_or_create(
        channel="instagram", page_id="1001", external_id="1254459154682919"
    )
    for asker, days_ago in [(conversation, 3), (instagram, 3), (instagram, 3), (instagram, 0)]:
        exchange(asker, asked_at=at(days_ago, 10), waits=[5])

    channels = admin_client.get(URL).context["charts"][5]

    assert channels.title == "Messages in by channel"
    assert channels.table_head == ["Day", "Instagram", "Messenger"]
    assert by_day(channels)[day_text(timezone.localdate() - timedelta(days=3))] == ["2", "1"]
    assert by_day(channels)[day_text(timezone.localdate())] == ["1", "0"]
    assert channels.summary == "4 messages. Instagram: 3; Messenger: 1."


def test_settled_days_are_counted_once_and_today_on_every_view(admin_client, history, conversation):
    admin_client.get(URL)
    exchange(conversation, asked_at=at(3, 16), waits=[5])
    exchange(conversation, asked_at=at(0, 0, 6), waits=[5])

    messages = admin_client.get(URL).context["charts"][0]

    assert by_day(messages)[day_text(timezone.localdate() - timedelta(days=3))] == ["4", "4"]
    assert by_day(messages)[day_text(timezone.localdate())] == ["3", "4"]


def test_the_workers_hourly_count_is_what_staff_then_see_for_settled_days(
    admin_client, history, conversation
):
    dashboard_settled_days_count()
    exchange(conversation, asked_at=at(3, 16), waits=[5])  # after the count: not shown until tomorrow's

    messages = admin_client.get(URL).context["charts"][0]

    assert by_day(messages)[day_text(timezone.localdate() - timedelta(days=3))] == ["4", "4"]


def test_without_redis_every_day_is_counted(admin_client, history, monkeypatch, caplog):
    def unavailable(*args, **kwargs):
        raise RedisError("Connection refused")

    monkeypatch.setattr(cache, "get", unavailable)

    messages = admin_client.get(URL).context["charts"][0]

    assert by_day(messages)[day_text(timezone.localdate() - timedelta(days=3))] == ["4", "4"]
    assert "Dashboard cache unavailable; counting every day" in caplog.text


def test_the_top_unanswered_questions_link_to_writing_their_article(admin_client, conversation):
    norway = [
        question(conversation, "Do you ship to Norway?", asked_at=at(2, 9)),
        question(conversation, "do you ship to norway?  ", asked_at=at(1, 9)),
    ]
    question(conversation, "Gift wrapping?", asked_at=at(0, 0, 1))
    question(
        conversation,
        "Opening hours?",
        asked_at=at(1, 9),
        article=KnowledgeArticle.objects.create(title="Hours", body="9-5"),
    )
    question(conversation, "Old question?", asked_at=at(40, 9))

    response = admin_client.get(URL)

    top = response.context["unanswered"]
    assert [(q.text, q.times_asked) for q in top] == [("do you ship to norway?  ", 2), ("Gift wrapping?", 1)]
    add = reverse("admin:conversations_knowledgearticle_add")
    assert f'href="{add}?question={norway[1].pk}"' in response.content.decode()


def test_an_article_written_from_a_question_takes_the_same_question_off_the_top(admin_client, conversation):
    norway = question(conversation, "Do you ship to Norway?", asked_at=at(2, 9))
    question(conversation, "do you ship to norway?  ", asked_at=at(1, 9))
    question(conversation, "Gift wrapping?", asked_at=at(0, 0, 1))

    add = reverse("admin:conversations_knowledgearticle_add")
    article = {"title": "Delivery to Norway", "body": "Yes, in 3-5 days.", "approved": "on"}
    response = admin_client.post(f"{add}?question={norway.pk}", article)

    assert response.status_code == 302
    assert [q.text for q in admin_client.get(URL).context["unanswered"]] == ["Gift wrapping?"]


def test_an_empty_database_says_there_is_no_data_yet(admin_client):
    response = admin_client.get(URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert html.count("No data yet") == 10  # nine charts and the questions
    assert "<rect" not in html and "<polyline" not in html


def test_moderators_see_it_linked_from_every_admin_page(client, moderator):
    client.force_login(moderator)

    index = client.get(reverse("admin:index")).content.decode()
    assert index.count(f'href="{URL}"') == 2  # the top of the page and the header's links
    assert client.get(URL).status_code == 200


def test_staff_who_may_not_read_messages_and_people_who_are_not_staff_may_not(client, db):
    staff = get_user_model().objects.create_user("clerk", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(URL).status_code == 403
    assert f'href="{URL}"' not in client.get(reverse("admin:index")).content.decode()

    client.force_login(get_user_model().objects.create_user("visitor", password="pw"))
    response = client.get(URL)
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.parametrize(
    ("code", "label"),
    [
        ("graph:10/2018278", "The person cannot be reached"),
        ("graph:551", "The person cannot be reached"),
        ("graph:190", "Facebook refused the Page token"),
        ("graph:613", "Facebook's rate limit"),
        ("graph:429", "Facebook's rate limit"),
        ("graph:2", "Facebook was unavailable"),
        ("graph:503", "Facebook was unavailable"),
        ("graph:TransientDeliveryError", "Facebook did not answer"),
        ("graph:368", "Facebook refused the message (error 368)"),
        ("graph:100/2018109", "Facebook refused the message (error 100/2018109)"),
        ("graph:PermanentDeliveryError", "Facebook refused the message"),
        ("outside_window", "Outside Messenger's 24-hour window"),
        ("llm:TransientLLMError", "Groq did not answer"),
        ("llm:APITimeoutError", "Groq did not answer"),
        ("llm:PermanentLLMError", "Groq's answer was unusable"),
        ("llm:429", "Groq's rate limit"),
        ("llm:503", "Groq was unavailable"),
        ("llm:401", "Groq refused the API key"),
        ("llm:404", "Groq refused the request (HTTP 404)"),
        ("DataError", "Error in this service (DataError)"),
        ("", "Unknown"),
    ],
)
def test_failure_codes_read_as_reasons(code, label):
    assert failure_reason_label(code=code) == label


def test_the_dashboard_names_failures_in_words_not_error_classes(admin_client, conversation):
    # Settled days come from the cache: codes are kept there, the words are chosen when shown.
    for days_ago, code in [(3, "llm:TransientLLMError"), (3, "graph:190"), (0, "llm:TransientLLMError")]:
        Message.objects.create(
            conversation=conversation, role="ai", status="failed", error_code=code, created_at=at(days_ago, 9)
        )
    dashboard_settled_days_count()

    response = admin_client.get(URL)

    failures = response.context["charts"][2]
    assert failures.table_head == ["Day", "Groq did not answer", "Facebook refused the Page token"]
    assert by_day(failures)[day_text(timezone.localdate() - timedelta(days=3))] == ["1", "1"]
    assert failures.summary == (
        "3 failed messages. Groq did not answer: 2; Facebook refused the Page token: 1."
    )
    assert "TransientLLMError" not in response.content.decode()


def test_percentiles_without_postgresql_match_percentile_cont():
    waits = [timedelta(seconds=s) for s in (60, 10, 20)]
    assert percentile(waits, fraction=0.5) == timedelta(seconds=20)
    assert percentile(waits, fraction=0.9) == timedelta(seconds=52)
    assert percentile(waits[:1], fraction=0.9) == timedelta(seconds=60)


def test_the_days_end_today():
    days = dashboard_days()
    assert (len(days), days[-1], days[0]) == (
        30,
        timezone.localdate(),
        timezone.localdate() - timedelta(days=29),
    )
