"""A burst larger than Groq's quota, through the real web and worker processes: every person is
answered once, in turn, with no apology, and a fallback model takes over when the main one is spent."""

import uuid

import pytest
from django_rq import get_connection

from conversations.models import Message
from conversations.services.replies import APOLOGY_TEXT
from devtools.processes import wait_for
from tests.e2e.stack import settle

pytestmark = pytest.mark.postgres


@pytest.fixture
def paced(service):
    """The service, having forgotten what an earlier test taught it of Groq's budgets."""
    connection = get_connection("default")
    for key in connection.scan_iter("groq:pace:*"):
        connection.delete(key)
    return service


def people(count: int) -> list[str]:
    return [str(uuid.uuid4().int)[:16] for _ in range(count)]


def test_a_burst_four_times_the_quota_is_answered_once_each_in_turn_without_apology(paced):
    paced.groq.quota(requests=3, window_seconds=2)
    burst = people(12)

    for psid in burst:
        paced.post_text(psid=psid, text=f"{psid} how much is shipping?")
    wait_for(lambda: all(paced.sent_to(psid) for psid in burst), timeout=60, message="every reply")
    settle()

    for psid in burst:
        [reply] = paced.sent_to(psid)
        assert reply.startswith("Echo:") and reply != APOLOGY_TEXT
    assert paced.groq.stats()["refused"] <= 2
    sent_order = [call["psid"] for call in paced.graph.calls(kind="message") if call["status"] == 200]
    arrival = [burst.index(psid) for psid in sent_order]
    # The first window goes to whoever asked first (one call learns the quota); after it, those
    # who have waited longest are answered first, window by window.
    waited = arrival[3:]
    assert max(waited[:3]) < min(waited[-3:])


def test_a_conversations_replies_keep_their_order_while_the_quota_is_spent(paced):
    paced.groq.quota(requests=2, window_seconds=3)
    ada, *others = people(3)

    for psid in others:  # they spend the window
        paced.post_text(psid=psid, text=f"{psid} hello")
    paced.post_text(psid=ada, text=f"{ada} first question")
    wait_for(lambda: paced.groq.stats()["calls"] >= 2, message="the window spent")
    paced.post_text(psid=ada, text=f"{ada} second question")
    wait_for(lambda: len(paced.sent_to(ada)) == 2, timeout=30, message="both of Ada's replies")
    settle()

    first, second = paced.sent_to(ada)
    assert "first question" in first and "second question" in second
    assert paced.groq.stats()["refused"] <= 1


def test_a_spent_main_model_hands_replies_to_the_fallback_model(paced):
    paced.restart(GROQ_FALLBACK_MODELS="fallback-model")
    paced.groq.quota(requests=1, window_seconds=60, model="openai/gpt-oss-120b")
    burst = people(3)

    for psid in burst:
        paced.post_text(psid=psid, text=f"{psid} are you open today?")
    wait_for(lambda: all(paced.sent_to(psid) for psid in burst), timeout=30, message="every reply")
    settle()

    models = sorted(
        Message.objects.filter(
            role=Message.Role.AI, conversation__identity__external_id__in=burst
        ).values_list("llm_model", flat=True)
    )
    assert models == ["fallback-model", "fallback-model", "openai/gpt-oss-120b"]
    assert paced.groq.stats()["refused"] == 0
