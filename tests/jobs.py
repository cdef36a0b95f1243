"""What the suite's tests look at in the job queue."""

from django_rq import get_queue


def queued_reply_jobs() -> list:
    return [job for job in get_queue("default").get_jobs() if job.func_name.endswith("reply_to_message")]
