"""conversations.ratelimit against the real Redis: a sliding window per sender, fail-open."""
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from conversations.ratelimit import RateLimitVerdict, rate_limit_hit, rate_limit_refund
from devtools.processes import free_port

ALLOWED = RateLimitVerdict.ALLOWED
FIRST = RateLimitVerdict.FIRST_OVER_LIMIT
OVER = RateLimitVerdict.OVER_LIMIT


@pytest.fixture(autouse=True)
def limit_of_ten(settings, redis_conn):
    settings.FACEBOOK_RATE_LIMIT_MESSAGES_PER_MINUTE = 10


def test_fourteen_messages_in_a_minute_let_ten_through_and_flag_one_for_the_notice():
    verdicts = [rate_limit_hit(sender="page:alice") for _ in range(14)]
    assert verdicts == [ALLOWED] * 10 + [FIRST] + [OVER] * 3


def test_each_sender_has_a_window_of_their_own():
    for _ in range(10):
        rate_limit_hit(sender="page:alice")
    assert rate_limit_hit(sender="page:alice") is FIRST
    assert rate_limit_hit(sender="page:bob") is ALLOWED
    assert rate_limit_hit(sender="other-page:alice") is ALLOWED


def test_the_limit_comes_from_settings(settings):
    settings.FACEBOOK_RATE_LIMIT_MESSAGES_PER_MINUTE = 2
    assert [rate_limit_hit(sender="page:alice") for _ in range(3)] == [ALLOWED, ALLOWED, FIRST]


def test_concurrent_messages_never_get_past_the_limit():
    with ThreadPoolExecutor(max_workers=16) as pool:
        verdicts = list(pool.map(lambda _: rate_limit_hit(sender="page:alice"), range(40)))
    assert verdicts.count(ALLOWED) == 10
    assert verdicts.count(FIRST) == 1
    assert verdicts.count(OVER) == 29


def test_unreachable_redis_lets_messages_through_with_a_warning(settings, caplog):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    with caplog.at_level(logging.WARNING, logger="conversations.ratelimit"):
        verdicts = [rate_limit_hit(sender="page:alice") for _ in range(12)]
    assert verdicts == [ALLOWED] * 12
    assert "Rate limiter unavailable" in caplog.text


def test_a_refunded_hit_frees_its_place_in_the_window_and_the_notice_its_own():
    for _ in range(10):
        rate_limit_hit(sender="page:alice")
    rate_limit_refund(sender="page:alice", verdict=ALLOWED)
    assert rate_limit_hit(sender="page:alice") is ALLOWED
    assert rate_limit_hit(sender="page:alice") is FIRST
    rate_limit_refund(sender="page:alice", verdict=FIRST)
    assert rate_limit_hit(sender="page:alice") is FIRST
    rate_limit_refund(sender="page:alice", verdict=OVER)  # it took nothing
    assert rate_limit_hit(sender="page:alice") is OVER


def test_a_refund_with_redis_unreachable_only_warns(settings, caplog):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    with caplog.at_level(logging.WARNING, logger="conversations.ratelimit"):
        rate_limit_refund(sender="page:alice", verdict=ALLOWED)
    assert "could not give back a hit" in caplog.text
