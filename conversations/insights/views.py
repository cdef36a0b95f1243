"""What staff and Prometheus see of the service: the admin's dashboard (the last 30 days at a glance,
as charts drawn on the server) and /metrics.

Reads come from conversations.insights.dashboard; this module only turns them into charts.
Reachable at /admin/dashboard/ (config/urls.py) for staff who may read messages.
"""

from collections import Counter
from datetime import date

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from conversations.insights.charts import (
    DURATION_STEPS,
    SERIES_MAX,
    Chart,
    Series,
    chart_bars,
    chart_lines,
    day_text,
    duration_text,
)
from conversations.insights.dashboard import (
    dashboard_channel_counts,
    dashboard_comment_counts,
    dashboard_csat,
    dashboard_daily_counts,
    dashboard_days,
    dashboard_failure_codes,
    dashboard_handoffs,
    dashboard_knowledge_use,
    dashboard_per_day,
    dashboard_reply_times,
    dashboard_since,
    dashboard_unanswered_top,
    failure_reason_label,
)
from conversations.insights.metrics import metrics_render

# What the page shows is read from messages, so it asks for the permission to read them.
DASHBOARD_PERMISSION = "conversations.view_message"


def dashboard_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(DASHBOARD_PERMISSION):
        raise PermissionDenied
    days = dashboard_days()
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "subtitle": f"The last {len(days)} days, {day_text(days[0])} to today",
        "charts": _charts(days=days),
        "unanswered": dashboard_unanswered_top(since=dashboard_since(day=days[0])),
        "time_zone": timezone.get_current_timezone_name(),
    }
    return TemplateResponse(request, "admin/conversations/dashboard.html", context)


def _charts(*, days: list[date]) -> list[Chart]:
    counts = dashboard_per_day(metric=dashboard_daily_counts, days=days)
    channels = _by_label(dashboard_per_day(metric=dashboard_channel_counts, days=days), days)
    times = dashboard_per_day(metric=dashboard_reply_times, days=days)
    failures = _by_label(_reasons(dashboard_per_day(metric=dashboard_failure_codes, days=days)), days)
    handoffs = _by_label(dashboard_per_day(metric=dashboard_handoffs, days=days), days)
    knowledge = dashboard_per_day(metric=dashboard_knowledge_use, days=days)
    csat = dashboard_per_day(metric=dashboard_csat, days=days)
    comments = dashboard_per_day(metric=dashboard_comment_counts, days=days)
    commented, privately = _daily(comments, days, "received"), _daily(comments, days, "private_replies")
    incoming, outgoing = _daily(counts, days, "incoming"), _daily(counts, days, "outgoing")
    with_knowledge, without = (
        _daily(knowledge, days, "with_knowledge"),
        _daily(knowledge, days, "without_knowledge"),
    )
    answers = sum(with_knowledge) + sum(without)
    latest = max(times, default=None)
    return [
        chart_bars(
            title="Messages in and out",
            days=days,
            series=[Series("In (from people)", incoming), Series("Out (replies sent)", outgoing)],
            y_label="Messages",
            summary=f"{sum(incoming):,} messages in and {sum(outgoing):,} out in {len(days)} days.",
        ),
        chart_lines(
            title="Time to the first reply",
            days=days,
            series=[
                Series(label, [times[day][key].total_seconds() if day in times else None for day in days])
                for label, key in [("Median", "median"), ("90th percentile", "p90")]
            ],
            y_label="Time",
            summary=(
                f"On {day_text(latest)}: median {duration_text(times[latest]['median'].total_seconds())}, "
                f"90th percentile {duration_text(times[latest]['p90'].total_seconds())} (definition below)."
                if latest
                else ""
            ),
            value_format=duration_text,
            steps=DURATION_STEPS,
        ),
        chart_bars(
            title="Failures by reason",
            days=days,
            series=failures,
            y_label="Failed messages",
            summary=_total_text(failures, "failed message"),
            stacked=True,
        ),
        chart_bars(
            title="Handoffs to staff",
            days=days,
            series=handoffs,
            y_label="Handoffs",
            summary=_total_text(handoffs, "handoff"),
            stacked=True,
        ),
        chart_bars(
            title="AI answers with and without knowledge",
            days=days,
            series=[Series("With an article", with_knowledge), Series("Without", without)],
            y_label="AI answers",
            summary=(
                f"{answers:,} AI answers, "
                f"{sum(with_knowledge) / answers:.0%} of them given a knowledge article."
                if answers
                else ""
            ),
            stacked=True,
        ),
        chart_bars(
            title="Messages in by channel",
            days=days,
            series=channels,
            y_label="Messages",
            summary=_total_text(channels, "message"),
            stacked=True,
        ),
        *_csat_charts(csat=csat, days=days),
        chart_bars(
            title="Comments and private replies",
            days=days,
            series=[Series("Comments received", commented), Series("Private replies sent", privately)],
            y_label="Comments",
            summary=(
                f"{sum(commented):,} comment{pluralize(sum(commented))} received and {sum(privately):,} "
                f"private repl{pluralize(sum(privately), 'y,ies')} sent in {len(days)} days."
                if sum(commented) or sum(privately)
                else ""
            ),
        ),
    ]


def _csat_charts(*, csat: dict[date, dict[int, int]], days: list[date]) -> list[Chart]:
    """How people rated staff's help: the answers per day by score, and each day's average."""
    scores = range(1, 6)
    by_score = [_daily(csat, days, score) for score in scores]
    per_day = [
        (sum(counts), sum(score * count for score, count in zip(scores, counts, strict=True)))
        for counts in zip(*by_score, strict=True)
    ]
    averages = [points / answers if answers else None for answers, points in per_day]
    answers = sum(answers for answers, _ in per_day)
    latest = max((index for index, average in enumerate(averages) if average is not None), default=None)
    return [
        chart_bars(
            title="How people rated our help (CSAT)",
            days=days,
            series=[Series(f"{score} ★", counts) for score, counts in zip(scores, by_score, strict=True)],
            y_label="Answers",
            summary=(
                f"{answers:,} answer{pluralize(answers)}, "
                f"{sum(points for _, points in per_day) / answers:.1f} of 5 on average."
                if answers
                else ""
            ),
            stacked=True,
        ),
        chart_lines(
            title="Average rating (CSAT)",
            days=days,
            series=[Series("Average", averages)],
            y_label="Rating, 1 to 5",
            summary=(
                f"On {day_text(days[latest])}: {averages[latest]:.1f} of 5 from "
                f"{per_day[latest][0]} answer{pluralize(per_day[latest][0])}."
                if latest is not None
                else ""
            ),
            value_format=_rating_text,
            # Four ticks of 1.25: the axis ends at 5, the best rating.
            steps=[1.25],
        ),
    ]


def _rating_text(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _daily(rows: dict, days: list[date], key: str) -> list[int]:
    return [rows.get(day, {}).get(key, 0) for day in days]


def _reasons(failures: dict[date, dict[str, int]]) -> dict[date, dict[str, int]]:
    """Failures by error code as failures by the reason staff read (several codes share one)."""
    reasons = {}
    for day, codes in failures.items():
        reasons[day] = Counter()
        for code, count in codes.items():
            reasons[day][failure_reason_label(code=code)] += count
    return reasons


def _by_label(rows: dict, days: list[date]) -> list[Series]:
    """One series per label, the most frequent first; past the chart's few colours, the rarest
    labels are summed as "Other"."""
    totals = Counter()
    for per_day in rows.values():
        totals.update(per_day)
    labels = [label for label, _ in sorted(totals.items(), key=lambda item: (-item[1], item[0]))]
    shown, rest = labels[: SERIES_MAX - 1], labels[SERIES_MAX - 1 :]
    if len(rest) == 1:
        shown, rest = labels, []
    series = [Series(label, _daily(rows, days, label)) for label in shown]
    if rest:
        series.append(
            Series("Other", [sum(rows.get(day, {}).get(label, 0) for label in rest) for day in days])
        )
    return series


def _total_text(series: list[Series], noun: str) -> str:
    total = sum(sum(one.values) for one in series)
    parts = "; ".join(f"{one.label}: {sum(one.values):,}" for one in series)
    return f"{total:,} {noun}{pluralize(total)}. {parts}." if total else ""


@never_cache
@require_safe
def metrics(request):
    """Prometheus's scrape target: for a bearer METRICS_TOKEN or a staff member's session."""
    if not (_metrics_token_given(request) or (request.user.is_active and request.user.is_staff)):
        return HttpResponseForbidden(
            "Forbidden: send Authorization: Bearer <METRICS_TOKEN>, or sign in to the admin as staff.\n",
            content_type="text/plain",
        )
    return HttpResponse(metrics_render(), content_type=CONTENT_TYPE_LATEST)


def _metrics_token_given(request) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return (
        bool(settings.METRICS_TOKEN)
        and scheme.lower() == "bearer"
        and constant_time_compare(token.strip(), settings.METRICS_TOKEN)
    )
