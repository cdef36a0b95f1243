"""Outages: Redis gone when a message arrives, a worker killed mid-reply; answered once, no one acting."""

import uuid

import pytest

from devtools.processes import PrivateRedis, wait_for
from tests.e2e.stack import settle, stack_running

pytestmark = pytest.mark.postgres
# Lock expiry (GROQ_TIMEOUT_SECONDS + REPLY_LOCK_MARGIN_SECONDS), sweep grace and start-up, with room.
RECOVERY_TIMEOUT = 40


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = PrivateRedis(data_dir=tmp_path_factory.mktemp("redis"))
    yield server
    server.kill()


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory, redis_server):
    with stack_running(
        django_db_blocker=django_db_blocker,
        log_dir=tmp_path_factory.mktemp("processes"),
        REDIS_URL=redis_server.url,
    ) as started:
        yield started


@pytest.fixture
def psid() -> str:
    return str(uuid.uuid4().int)[:16]


def test_a_message_arriving_while_redis_is_down_is_answered_once_redis_is_back(service, redis_server, psid):
    redis_server.kill()

    service.post_text(psid=psid, text=f"{psid} are you there?")
    redis_server.start()  # empty: whatever was queued is gone
    wait_for(lambda: service.sent_to(psid), timeout=RECOVERY_TIMEOUT, message="the reply")
    settle()

    assert len(service.sent_to(psid)) == 1
    assert len(service.prompts_with(psid)) == 1


def test_a_worker_killed_during_the_llm_call_is_answered_once_after_restart(service, psid):
    service.groq.script([{"delay": 2}])

    service.post_text(psid=psid, text=f"{psid} hello")
    wait_for(lambda: service.prompts_with(psid), message="the LLM call")
    service.kill_worker()
    service.restart_worker()
    wait_for(lambda: service.sent_to(psid), timeout=RECOVERY_TIMEOUT, message="the reply")
    settle()

    assert len(service.sent_to(psid)) == 1
    assert len(service.prompts_with(psid)) == 2  # the killed call and the one that answered
