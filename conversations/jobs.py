"""RQ jobs: thin, the work is in the services they call."""

from rq import get_current_job

from conversations import alerts
from conversations.media.services import media_files_expire
from conversations.services.comments import comment_reply_produce, comments_sweep
from conversations.services.conversations import contact_profile_fetch, contacts_profile_sweep
from conversations.services.delivery import page_token_check
from conversations.services.forgetting import tombstones_purge
from conversations.services.handoff import handoff_alerts_sweep, handoff_summarise
from conversations.services.replies import replies_sweep, reply_produce


def reply_to_message(message_id: int) -> None:
    """Answer the conversation of one stored client message (and whatever else waits in it)."""
    job = get_current_job()
    # RQ counts down retries_left before each retry; at 0 this run is the last one.
    reply_produce(message_id=message_id, final_attempt=not (job and job.retries_left))


def replies_sweep_run() -> None:
    replies_sweep()
    handoff_alerts_sweep()


def handoff_summarise_run(handoff_id: int) -> None:
    """Summarise a handoff's conversation for staff, then alert them (without it if it fails)."""
    handoff_summarise(handoff_id=handoff_id)


def comment_reply(comment_id: int) -> None:
    """Answer one stored comment: its private reply, then its public one."""
    job = get_current_job()
    comment_reply_produce(comment_pk=comment_id, final_attempt=not (job and job.retries_left))


def comments_sweep_run() -> None:
    comments_sweep()


def alert_deliver(**alert: object) -> None:
    """Send one alert to one channel; rq tries again (ALERT_RETRY_INTERVALS) when it fails."""
    job = get_current_job()
    alerts.alert_deliver(**alert, final_attempt=not (job and job.retries_left))


def contact_profile_fetch_run(contact_id: int) -> None:
    contact_profile_fetch(contact_id=contact_id)


def contacts_profile_sweep_run() -> None:
    contacts_profile_sweep()


def page_token_check_run() -> None:
    page_token_check()


def tombstones_purge_run() -> None:
    tombstones_purge()


def media_files_expire_run() -> None:
    media_files_expire()
