"""The conversation, message and RQ job a log line is about, as fields of the line.

With LOG_FORMAT=json a log stack can then find everything about one conversation, whichever
process or function wrote it; the text format shows what the messages themselves say.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from rq import get_current_job

_conversation_id: ContextVar[int | None] = ContextVar("conversation_id", default=None)
_mid: ContextVar[str | None] = ContextVar("mid", default=None)


@contextmanager
def log_context(*, conversation_id: int, mid: str | None) -> Iterator[None]:
    """Lines logged inside carry `conversation_id` and `mid` (the Messenger message id)."""
    conversation_token, mid_token = _conversation_id.set(conversation_id), _mid.set(mid)
    try:
        yield
    finally:
        _conversation_id.reset(conversation_token)
        _mid.reset(mid_token)


class LogContextFilter(logging.Filter):
    """Sets conversation_id, mid and job_id on a record when they are known, and only then."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (("conversation_id", _conversation_id.get()), ("mid", _mid.get())):
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        job = get_current_job()
        if job is not None and not hasattr(record, "job_id"):
            record.job_id = job.id
        return True
