"""RQ jobs of the insights: thin, the work is in conversations.insights.dashboard."""

from conversations.insights.dashboard import dashboard_settled_days_count


def dashboard_settled_days_count_run() -> None:
    dashboard_settled_days_count()
