"""Per-sender rate limit: a sliding window in Redis (DESIGN rule 9).

The window is the `limits` library's moving window: one atomic Lua call per message keeps a
log of the sender's accepted messages, so concurrent web workers can never let an eleventh
message through. A second one-per-minute window answers "is this the first message over
the limit?", which decides the single notice the reply job sends.

Fail-open: when Redis cannot be reached the message is let through with a warning, since
losing the limiter for a while is better than refusing every person.
"""
import enum
import functools
import logging

from django.conf import settings
from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis import RedisError

logger = logging.getLogger(__name__)

# The webhook must answer in milliseconds even when Redis hangs instead of refusing.
_REDIS_TIMEOUT_SECONDS = 1.0
_NOTICE_WINDOW = RateLimitItemPerMinute(1, namespace="NOTICE")


class RateLimitVerdict(enum.Enum):
    ALLOWED = "allowed"
    FIRST_OVER_LIMIT = "first_over_limit"  # this one gets the short notice
    OVER_LIMIT = "over_limit"  # later ones in the window get nothing


@functools.cache
def _limiter(redis_url: str) -> MovingWindowRateLimiter:
    # One connection pool per process (and per URL, so tests can point at a dead Redis).
    storage = RedisStorage(
        redis_url,
        wrap_exceptions=True,
        socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
        socket_timeout=_REDIS_TIMEOUT_SECONDS,
    )
    return MovingWindowRateLimiter(storage)


def rate_limit_hit(*, sender: str) -> RateLimitVerdict:
    """Count one message from `sender` (any stable key, e.g. page id and PSID) in its window."""
    limiter = _limiter(settings.REDIS_URL)
    window = _window()
    try:
        if limiter.hit(window, sender):
            return RateLimitVerdict.ALLOWED
        if limiter.hit(_NOTICE_WINDOW, sender):
            return RateLimitVerdict.FIRST_OVER_LIMIT
        return RateLimitVerdict.OVER_LIMIT
    except StorageError as error:
        logger.warning("Rate limiter unavailable, letting the message through: %s", error)
        return RateLimitVerdict.ALLOWED


def rate_limit_refund(*, sender: str, verdict: RateLimitVerdict) -> None:
    """Give back the hit that gave `verdict`, for a message that turned out not to be stored.

    A moving window is a Redis list of the hits' times, newest first, so this takes its
    newest entry off (a concurrent hit's, if one came between: a few milliseconds apart, so
    the same count). An over-limit hit added nothing to the message window; the first one
    added its entry to the notice window. Fail-open like the hit: at worst the sender loses
    one message of their window.
    """
    if verdict is RateLimitVerdict.OVER_LIMIT:
        return
    window = _window() if verdict is RateLimitVerdict.ALLOWED else _NOTICE_WINDOW
    storage = _limiter(settings.REDIS_URL).storage
    try:
        storage.get_connection().lpop(storage.prefixed_key(window.key_for(sender)))
    except RedisError as error:
        logger.warning("Rate limiter unavailable, could not give back a hit: %s", error)


def _window() -> RateLimitItemPerMinute:
    return RateLimitItemPerMinute(settings.FACEBOOK_RATE_LIMIT_MESSAGES_PER_MINUTE)
