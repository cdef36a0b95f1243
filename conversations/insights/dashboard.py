"""Reads for the admin's dashboard: the last days of messages, reply times, failures, handoffs,
knowledge use, how people rated staff's help (CSAT) and unanswered questions, each one aggregate
query over an index.

Days are calendar days in the current time zone (settings.TIME_ZONE), so "today" is the
staff's today. Every per-day function counts rows from `since` until `until` (or now) and
returns plain values keyed by day; the dashboard fills the days that have no rows.
"""

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.core.cache import cache
from django.db import connection
from django.db.models import Aggregate, Count, DurationField, Exists, F, Max, OuterRef, Q, QuerySet
from django.db.models.functions import Lower, Trim, TruncDate
from django.utils import timezone
from redis.exceptions import RedisError

from conversations.models import ChannelIdentity, Comment, Handoff, Message, UnansweredQuestion
from messenger.errors import recipient_unreachable

logger = logging.getLogger(__name__)

DASHBOARD_DAYS = 30
# Today and yesterday are counted on every view; older days no longer change (a reply, its
# failure and its knowledge are recorded within Messenger's 24-hour window), so they are
# counted once a day and kept in the cache.
LIVE_DAYS = 2
SETTLED_DAYS_CACHE_SECONDS = 24 * 60 * 60
UNANSWERED_TOP = 10
# Graph's error codes, as messenger.errors classifies them, grouped as staff need to read them.
_GRAPH_TOKEN_REFUSED = 190
_GRAPH_RATE_LIMITED = frozenset({4, 17, 32, 341, 613})
# Graph's "try again later" codes, and the HTTP statuses of an answer without a Graph code.
_GRAPH_UNAVAILABLE = frozenset({1, 2, 1200, 500, 502, 503, 504})


class Percentile(Aggregate):
    """PostgreSQL's `percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)`: the
    continuous percentile, interpolated between the two nearest values."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)r) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression, *, fraction: float, **extra) -> None:
        # Formatted into the SQL, so it must be a number, never user input.
        super().__init__(expression, fraction=float(fraction), **extra)


@dataclass(frozen=True)
class UnansweredTopQuestion:
    text: str
    times_asked: int
    last_asked_at: datetime
    # The newest of the questions with this text: the one an article is written from.
    question_id: int


def dashboard_days(*, days: int = DASHBOARD_DAYS, today: date | None = None) -> list[date]:
    """The dashboard's days, oldest first, ending today in the current time zone."""
    today = today or timezone.localdate()
    return [today - timedelta(days=back) for back in range(days - 1, -1, -1)]


def dashboard_since(*, day: date) -> datetime:
    """The first moment of `day` in the current time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))


def dashboard_per_day(*, metric: Callable[..., dict[date, dict]], days: list[date]) -> dict[date, dict]:
    """`metric` for `days`: the settled days from the cache (counted when missing), the live ones now.

    Without Redis every day is counted now: slower, still right.
    """
    live_since = dashboard_since(day=days[-LIVE_DAYS])
    try:
        settled = _settled_days(metric=metric, days=days)
    except RedisError:
        logger.warning("Dashboard cache unavailable; counting every day", exc_info=True)
        return metric(since=dashboard_since(day=days[0]))
    return {**settled, **metric(since=live_since)}


def dashboard_settled_days_count() -> None:
    """Count the settled days of every chart into the cache, unless they are there already.

    The worker runs it every hour, so the day's first view by staff does not wait for the
    month to be counted (about a second at a million messages; docs/benchmarks.md).
    """
    days = dashboard_days()
    for metric in DASHBOARD_METRICS:
        _settled_days(metric=metric, days=days)


def _settled_days(*, metric: Callable[..., dict[date, dict]], days: list[date]) -> dict[date, dict]:
    """`metric` for `days` but the live ones, from the cache or counted into it; RedisError
    when the cache cannot be read."""
    settled_since, live_since = dashboard_since(day=days[0]), dashboard_since(day=days[-LIVE_DAYS])
    key = f"dashboard:{metric.__name__}:{settled_since.isoformat()}:{live_since.isoformat()}"
    settled = cache.get(key)
    if settled is None:
        settled = metric(since=settled_since, until=live_since)
        try:
            cache.set(key, settled, SETTLED_DAYS_CACHE_SECONDS)
        except RedisError:
            logger.warning("Dashboard cache unavailable; settled days not kept", exc_info=True)
    return settled


def _window(*, field: str, since: datetime, until: datetime | None) -> Q:
    return Q(**{f"{field}__gte": since}) & (Q(**{f"{field}__lt": until}) if until else Q())


def dashboard_daily_counts(*, since: datetime, until: datetime | None = None) -> dict[date, dict[str, int]]:
    """Per day: messages in (from people) and out (bot, staff and notices the channel accepted)."""
    rows = (
        Message.objects.filter(_window(field="created_at", since=since, until=until))
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(
            # Counting a column of message_created_kind, not the id, lets that index alone answer.
            incoming=Count("created_at", filter=Q(role=Message.Role.CLIENT)),
            outgoing=Count(
                "created_at", filter=Q(role__in=Message.OUTGOING_ROLES, status=Message.Status.SENT)
            ),
        )
        .order_by()  # Message's default ordering would be grouped by too
    )
    return {row["day"]: {"incoming": row["incoming"], "outgoing": row["outgoing"]} for row in rows}


def dashboard_channel_counts(*, since: datetime, until: datetime | None = None) -> dict[date, dict[str, int]]:
    """Per day: messages from people by the channel they wrote on (Messenger, Instagram, ...)."""
    messages = Message.objects.filter(
        _window(field="created_at", since=since, until=until), role=Message.Role.CLIENT
    )
    return _per_day_by(
        messages, field="conversation__identity__channel", labels=dict(ChannelIdentity.Channel.choices)
    )


def _per_day_by(
    rows: QuerySet, *, field: str, labels: dict[str, str] | None = None, day_field: str = "created_at"
) -> dict[date, dict[str, int]]:
    """Per day of their `day_field`: `rows` counted by `field` (by its label, when `labels` has one)."""
    counts = (
        rows.annotate(day=TruncDate(day_field))
        .values("day", field)
        .annotate(count=Count("pk"))
        .order_by()  # the model's default ordering would be grouped by too
    )
    per_day = defaultdict(dict)
    for row in counts:
        value = row[field]
        per_day[row["day"]][(labels or {}).get(value, value)] = row["count"]
    return dict(per_day)


def dashboard_reply_times(
    *, since: datetime, until: datetime | None = None
) -> dict[date, dict[str, timedelta]]:
    """Per day of the person's message: the median and 90th percentile of the time to the first reply.

    A client message's time to first reply runs from its arrival (created_at) to the moment
    the channel accepted (sent_at) the first message that answers it (reply_to: bot replies
    and notices; messages answered together count once, as the last of them). Messages not
    answered yet are left out.
    """
    first_replies = (
        Message.objects.filter(
            _window(field="reply_to__created_at", since=since, until=until),
            # A reply is stored after the message it answers, so this bound lets the scan start at `since`.
            created_at__gte=since,
            reply_to__isnull=False,  # implied by the join, but message_reply_time's condition must be seen
            reply_to__role=Message.Role.CLIENT,
            role__in=Message.OUTGOING_ROLES,
            sent_at__isnull=False,
        )
        .exclude(
            Exists(
                Message.objects.filter(
                    reply_to=OuterRef("reply_to"),
                    created_at__gte=since,
                    role__in=Message.OUTGOING_ROLES,
                    sent_at__lt=OuterRef("sent_at"),
                )
            )
        )
        .annotate(day=TruncDate("reply_to__created_at"), wait=F("sent_at") - F("reply_to__created_at"))
    )
    if connection.vendor == "postgresql":
        rows = (
            first_replies.values("day")
            .annotate(
                median=Percentile("wait", fraction=0.5, output_field=DurationField()),
                p90=Percentile("wait", fraction=0.9, output_field=DurationField()),
            )
            .order_by()
        )
        return {row["day"]: {"median": row["median"], "p90": row["p90"]} for row in rows}
    # SQLite (make run's default) has no percentile aggregate: the same rows, computed here.
    waits = defaultdict(list)
    for day, wait in first_replies.values_list("day", "wait").order_by():
        waits[day].append(wait)
    return {
        day: {"median": percentile(values, fraction=0.5), "p90": percentile(values, fraction=0.9)}
        for day, values in waits.items()
    }


def percentile(values: list[timedelta], *, fraction: float) -> timedelta:
    """The continuous percentile of `values`, as PostgreSQL's percentile_cont computes it."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def dashboard_failure_codes(*, since: datetime, until: datetime | None = None) -> dict[date, dict[str, int]]:
    """Per day: failed messages by Message.error_code (failure_reason_label reads them as words
    when they are shown, so the cache of settled days holds codes, not wording)."""
    failed = Message.objects.filter(
        _window(field="created_at", since=since, until=until), status=Message.Status.FAILED
    )
    return _per_day_by(failed, field="error_code")


def failure_reason_label(*, code: str) -> str:
    """What a Message.error_code (delivery.error_description) means, in words staff understand;
    several codes can share one."""
    source, _, detail = code.partition(":")
    if code == "outside_window":
        return "Outside Messenger's 24-hour window"
    if source == "graph":
        return _graph_failure_label(detail)
    if source == "llm":
        return _llm_failure_label(detail)
    return f"Error in this service ({code})" if code else "Unknown"


def _graph_failure_label(detail: str) -> str:
    """`detail` is Graph's error code (with its subcode after a slash), an HTTP status, or, when
    Facebook gave neither, the name of the error."""
    graph_code, _, graph_subcode = detail.partition("/")
    code, subcode = _int_or_none(graph_code), _int_or_none(graph_subcode)
    if recipient_unreachable(code=code, subcode=subcode):
        return "The person cannot be reached"
    if code == _GRAPH_TOKEN_REFUSED:
        return "Facebook refused the Page token"
    if code in _GRAPH_RATE_LIMITED or code == 429:
        return "Facebook's rate limit"
    if code in _GRAPH_UNAVAILABLE:
        return "Facebook was unavailable"
    if code is None and detail.startswith("Transient"):
        return "Facebook did not answer"
    return (
        f"Facebook refused the message (error {detail})"
        if code is not None
        else "Facebook refused the message"
    )


def _llm_failure_label(detail: str) -> str:
    """`detail` is Groq's HTTP status or, when it gave none, the name of the error."""
    status = _int_or_none(detail)
    if status is None:
        # No answer at all (a timeout, no connection, an empty answer), or one that was not Groq's API.
        return "Groq's answer was unusable" if detail == "PermanentLLMError" else "Groq did not answer"
    if status == 429:
        return "Groq's rate limit"
    if status >= 500:
        return "Groq was unavailable"
    if status in (401, 403):
        return "Groq refused the API key"
    return f"Groq refused the request (HTTP {status})"


def _int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def dashboard_handoffs(*, since: datetime, until: datetime | None = None) -> dict[date, dict[str, int]]:
    """Per day: handovers to staff by what triggered them (Handoff.Trigger labels)."""
    handoffs = Handoff.objects.filter(_window(field="created_at", since=since, until=until))
    return _per_day_by(handoffs, field="trigger", labels=dict(Handoff.Trigger.choices))


def dashboard_csat(*, since: datetime, until: datetime | None = None) -> dict[date, dict[int, int]]:
    """Per day the person answered: answers to the CSAT question by score (1 to 5)."""
    answered = Handoff.objects.filter(_window(field="csat_answered_at", since=since, until=until))
    return _per_day_by(answered, field="csat_score", day_field="csat_answered_at")


def dashboard_knowledge_use(*, since: datetime, until: datetime | None = None) -> dict[date, dict[str, int]]:
    """Per day: AI answers (one per LLM call, recorded on the reply's first part) given at least
    one knowledge article, and given none."""
    answers = (
        Message.objects.filter(_window(field="created_at", since=since, until=until), role=Message.Role.AI)
        .exclude(llm_model="")
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .order_by()  # Message's default ordering would be grouped by too
    )
    totals = {row["day"]: row["count"] for row in answers.annotate(count=Count("pk"))}
    # A filter, not a per-row flag: each answer of the range is then one probe of the articles' index.
    given = Message.knowledge_articles.through.objects.filter(message_id=OuterRef("pk"))
    with_knowledge = {
        row["day"]: row["count"] for row in answers.filter(Exists(given)).annotate(count=Count("pk"))
    }
    return {
        day: {
            "with_knowledge": with_knowledge.get(day, 0),
            "without_knowledge": total - with_knowledge.get(day, 0),
        }
        for day, total in totals.items()
    }


def dashboard_comment_counts(*, since: datetime, until: datetime | None = None) -> dict[date, dict[str, int]]:
    """Per day: comments received (stored: COMMENT_REPLIES on), and private replies Meta accepted."""
    per_day: dict[date, dict[str, int]] = defaultdict(dict)
    for key, field in (("received", "received_at"), ("private_replies", "reply_sent_at")):
        rows = (
            Comment.objects.filter(_window(field=field, since=since, until=until))
            .annotate(day=TruncDate(field))
            .values("day")
            .annotate(count=Count("pk"))
            .order_by()  # the model's default ordering would be grouped by too
        )
        for row in rows:
            per_day[row["day"]][key] = row["count"]
    return dict(per_day)


def dashboard_unanswered_top(*, since: datetime, limit: int = UNANSWERED_TOP) -> list[UnansweredTopQuestion]:
    """The questions asked most often since `since` that no article was written from yet;
    the same words in another case or with other outer spaces count as one question."""
    rows = (
        UnansweredQuestion.objects.filter(asked_at__gte=since, article__isnull=True)
        .annotate(key=Lower(Trim("text")))
        .values("key")
        .annotate(times_asked=Count("pk"), last_asked_at=Max("asked_at"), question_id=Max("pk"))
        .order_by("-times_asked", "-last_asked_at")[:limit]
    )
    texts = dict(
        UnansweredQuestion.objects.filter(pk__in=[row["question_id"] for row in rows]).values_list(
            "pk", "text"
        )
    )
    return [
        UnansweredTopQuestion(
            text=texts[row["question_id"]],
            times_asked=row["times_asked"],
            last_asked_at=row["last_asked_at"],
            question_id=row["question_id"],
        )
        for row in rows
    ]


# The per-day counts the dashboard shows, each kept per settled day in the cache.
DASHBOARD_METRICS = (
    dashboard_daily_counts,
    dashboard_channel_counts,
    dashboard_reply_times,
    dashboard_failure_codes,
    dashboard_handoffs,
    dashboard_knowledge_use,
    dashboard_csat,
    dashboard_comment_counts,
)
