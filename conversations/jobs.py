"""RQ jobs: thin, the work is in conversations.services.replies."""

from rq import get_current_job

from conversations.services.replies import replies_sweep, reply_produce


def reply_to_message(message_id: int) -> None:
    """Answer the conversation of one stored client message (and whatever else waits in it)."""
    job = get_current_job()
    # RQ counts down retries_left before each retry; at 0 this run is the last one.
    reply_produce(message_id=message_id, final_attempt=not (job and job.retries_left))


def replies_sweep_run() -> None:
    replies_sweep()
