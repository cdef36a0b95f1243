"""conversations.services.ratelimit against the real Redis: a sliding window per sender, one notice, fail-open."""

import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from conversations.models import Message
from conversations.selectors import NOTICE_PENDING
from conversations.services.ratelimit import rate_limit_apply
from devtools.processes import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def limit_of_ten(settings, redis_conn):
    settings.FACEBOOK_RATE_LIMIT_MESSAGES_PER_MINUTE = 10


def _received(conversation, count: int) -> list[Message]:
    return [
        Message.objects.create(
            conversation=conversation, role=Message.Role.CLIENT, status=Message.Status.RECEIVED
        )
        for _ in range(count)
    ]


def _verdicts(messages: list[Message], sender: str = "page:ada") -> list[bool]:
    """For each message, whether it needs a reply job: to be answered, or for the notice."""
    return [rate_limit_apply(message=message, sender=sender) for message in messages]


def _statuses() -> list[str]:
    return list(Message.objects.order_by("id").values_list("status", flat=True))


RECEIVED, LIMITED = Message.Status.RECEIVED, Message.Status.RATE_LIMITED


def test_fourteen_messages_in_a_minute_let_ten_through_and_mark_the_rest(ada_conversation):
    messages = _received(ada_conversation, 14)
    # The first one over the limit needs a job too: it sends the short notice.
    assert _verdicts(messages) == [True] * 11 + [False] * 3
    assert _statuses() == [RECEIVED] * 10 + [LIMITED] * 4
    assert list(Message.objects.filter(NOTICE_PENDING)) == [messages[10]]


def test_each_sender_has_a_window_of_their_own(ada_conversation):
    messages = _received(ada_conversation, 13)
    _verdicts(messages[:11])
    _verdicts([messages[11]], sender="page:bob")
    _verdicts([messages[12]], sender="other-page:ada")
    assert _statuses() == [RECEIVED] * 10 + [LIMITED] + [RECEIVED] * 2


def test_the_limit_comes_from_settings(settings, ada_conversation):
    settings.FACEBOOK_RATE_LIMIT_MESSAGES_PER_MINUTE = 2
    _verdicts(_received(ada_conversation, 4))
    assert _statuses() == [RECEIVED, RECEIVED, LIMITED, LIMITED]


def test_concurrent_messages_never_get_past_the_limit(ada_conversation):
    messages = _received(ada_conversation, 40)

    def apply(message: Message) -> bool:
        try:
            return rate_limit_apply(message=message, sender="page:ada")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        verdicts = list(pool.map(apply, messages))
    assert verdicts.count(True) == 11
    assert Message.objects.filter(status=LIMITED).count() == 30
    assert Message.objects.filter(NOTICE_PENDING).count() == 1


def test_unreachable_redis_lets_messages_through_with_a_warning(settings, caplog, ada_conversation):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    with caplog.at_level(logging.WARNING, logger="conversations.services.ratelimit"):
        verdicts = _verdicts(_received(ada_conversation, 12))
    assert verdicts == [True] * 12
    assert "Rate limiter unavailable" in caplog.text
    assert _statuses() == [RECEIVED] * 12
