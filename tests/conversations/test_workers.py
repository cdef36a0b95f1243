"""The worker leaves no trace of a person behind: its log lines name jobs by id, never by their
arguments, and a delivered alert (whose reason may name them) leaves nothing in Redis."""

import logging

from django_rq import get_queue
from rq.job import Job

from conversations.alerts import AlertKind, alert_raise
from conversations.workers import InProcessWorker

REASON = "Jane Roe (+1 555 0100) wants a refund for order 5521"


def test_a_delivered_alert_leaves_no_trace_in_the_logs_or_in_redis(alert_webhook, redis_conn, caplog, db):
    alert_raise(kind=AlertKind.HANDOFF, reason=REASON)
    queue = get_queue()
    [job_id] = queue.get_job_ids()

    with caplog.at_level(logging.INFO):
        InProcessWorker([queue], connection=queue.connection).work(burst=True)

    [call] = alert_webhook.calls(kind="alert")
    assert "5521" in call["json"]["text"]  # delivered, with the reason
    lines = [record.getMessage() for record in caplog.records]
    assert any(job_id in line for line in lines)
    assert [line for line in lines if "5521" in line or "Jane" in line] == []
    assert not Job.exists(job_id, connection=redis_conn)
    assert [key for key in redis_conn.scan_iter() if job_id.encode() in key] == []
