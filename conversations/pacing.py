"""Groq's budgets, as its own headers tell them, shared by every worker through Redis.

Groq answers every call with its budget for the model called (`x-ratelimit-remaining-requests`,
`-remaining-tokens`, `-reset-requests`, `-reset-tokens`, and `retry-after` on a 429). Each model
has a hash in Redis with what the last answers said; before a call a worker takes one request
from the first model of its list that has some left and tokens for its prompt. When
every model is spent, the callers wait for the earliest reset in the order they started
waiting (a sorted set scored by when each reply's first message arrived), so the oldest
messages are answered first and nobody calls only to be refused.

A model nothing is known about yet (a new deployment, a restart of Redis) gets one call at a
time until an answer tells its budget, so a burst never opens with a volley of 429s.
"""

import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from redis.exceptions import RedisError

from conversations.queues import redis_connection

logger = logging.getLogger(__name__)

_PREFIX = "groq:pace"
_WAITERS = f"{_PREFIX}:waiters"
_WAITERS_SEEN = f"{_PREFIX}:waiters:seen"
# What Redis remembers of a model's budget: a day, Groq's longest window.
_BUDGET_TTL_SECONDS = 86400
# A waiter that has not asked again for this long has gone (its worker died): it no longer
# keeps the waiters behind it waiting.
WAITER_TTL_SECONDS = 15
# A caller sleeps at most this long before asking again, so it notices a budget refilled early.
WAIT_STEP_SECONDS = 5.0
# Added to every reset Groq announces: its clock and ours differ, and the answer took time to
# arrive; calling a moment early would be refused.
_RESET_MARGIN_SECONDS = 0.25
# How soon a caller asks again while the answer that tells a budget is awaited.
_POLL_SECONDS = 0.2
# After a 429 or 498 that says nothing of when to come back.
_REFUSED_DEFAULT_SECONDS = 1.0
# Characters per token, to estimate a prompt's tokens before Groq counts them.
_CHARS_PER_TOKEN = 4

# KEYS: the waiters' sorted set, their last-seen set, then one budget hash per model in order.
# ARGV: now, member, score, estimated tokens, how long a lone first call may take, waiter TTL,
# and how soon to ask again while an answer that tells the budget is awaited.
# Returns {index of the model granted (1-based), 0} or {0, seconds to wait}.
_TAKE = """
local now, member = tonumber(ARGV[1]), ARGV[2]
local tokens, probe_seconds, waiter_ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local poll = tonumber(ARGV[7])
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('ZREM', KEYS[1], gone)
  redis.call('ZREM', KEYS[2], gone)
end
-- ARGV[3] as sent: Lua would print the number to fewer digits than a Unix time needs.
local ahead = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[3])
local soonest = nil
for i = 3, #KEYS do
  local b = redis.call('HMGET', KEYS[i], 'limit', 'remaining', 'reset_at', 'tokens', 'tokens_reset_at', 'probe_until', 'rolled')
  local available, wait = 0, 0
  if not b[1] then
    local probe_until = tonumber(b[6] or 0)
    -- The first answer usually comes long before the call's timeout: ask again soon.
    if probe_until <= now then available = 1 else wait = math.min(probe_until - now, poll) end
  else
    local remaining, reset_at = tonumber(b[2]), tonumber(b[3])
    if now >= reset_at then
      -- The window Groq told us of is over: the budget is whole again until an answer says more.
      remaining, reset_at = tonumber(b[1]), now + probe_seconds
      redis.call('HSET', KEYS[i], 'remaining', remaining, 'reset_at', reset_at, 'rolled', 1)
      b[7] = '1'
    end
    available, wait = math.max(remaining, 0), reset_at - now
    -- A window begun by a roll has no known end until an answer tells it: ask again soon.
    if tonumber(b[7]) == 1 then wait = math.min(wait, poll) end
    local tokens_left, tokens_reset_at = tonumber(b[4]), tonumber(b[5])
    if tokens_left and tokens_reset_at and now < tokens_reset_at and tokens_left < tokens then
      available, wait = 0, math.max(wait, tokens_reset_at - now)
    end
  end
  if ahead < available then
    if not b[1] then
      redis.call('HSET', KEYS[i], 'probe_until', now + probe_seconds)
    else
      redis.call('HINCRBY', KEYS[i], 'remaining', -1)
    end
    redis.call('ZREM', KEYS[1], member)
    redis.call('ZREM', KEYS[2], member)
    return {i - 2, '0'}
  end
  ahead = ahead - available
  if soonest == nil or wait < soonest then soonest = wait end
end
redis.call('ZADD', KEYS[1], 'NX', ARGV[3], member)
redis.call('ZADD', KEYS[2], now + waiter_ttl, member)
redis.call('EXPIRE', KEYS[1], waiter_ttl * 4)
redis.call('EXPIRE', KEYS[2], waiter_ttl * 4)
return {0, tostring(soonest)}
"""

# KEYS: one model's budget hash. ARGV: now, budget TTL, reset margin, then pairs of field and value from the
# answer: limit, remaining, reset_in, tokens, tokens_reset_in, refused_for (absent = not told).
_OBSERVE = """
local now, ttl, margin = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local told = {}
for i = 4, #ARGV, 2 do told[ARGV[i]] = tonumber(ARGV[i + 1]) end
local b = redis.call('HMGET', KEYS[1], 'limit', 'remaining', 'reset_at', 'rolled')
redis.call('HDEL', KEYS[1], 'probe_until')
if told.refused_for then
  -- Refused: nothing more until Groq says; a budget never known gets a limit of one meanwhile.
  -- A later end already known stands, unless it was only a roll's guess.
  local reset_at = now + told.refused_for + margin
  if b[3] and tonumber(b[4]) ~= 1 and tonumber(b[3]) > reset_at then reset_at = tonumber(b[3]) end
  redis.call('HSET', KEYS[1], 'limit', told.limit or b[1] or 1, 'remaining', 0, 'reset_at', reset_at, 'rolled', 0)
elseif told.remaining and told.reset_in then
  local reset_at = now + told.reset_in + margin
  if not b[1] or not b[3] or now >= tonumber(b[3]) then
    redis.call('HSET', KEYS[1], 'remaining', told.remaining, 'reset_at', reset_at, 'rolled', 0)
  else
    -- Answers arrive out of order, and calls granted are not all counted by Groq yet: a
    -- window's remaining budget only goes down.
    if tonumber(b[4]) ~= 1 and tonumber(b[3]) < reset_at then reset_at = tonumber(b[3]) end
    redis.call('HSET', KEYS[1], 'remaining', math.min(tonumber(b[2]), told.remaining), 'reset_at', reset_at, 'rolled', 0)
  end
  redis.call('HSET', KEYS[1], 'limit', told.limit or b[1] or (told.remaining + 1))
end
if told.tokens and told.tokens_reset_in then
  -- Groq's tokens refill continuously (its reset is when the bucket is full again): the latest
  -- answer says best what is left. A call is held back only when that is less than its prompt.
  redis.call('HSET', KEYS[1], 'tokens', told.tokens, 'tokens_reset_at', now + told.tokens_reset_in + margin)
end
redis.call('EXPIRE', KEYS[1], ttl)
return 1
"""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


@dataclass(frozen=True)
class Grant:
    """The model a call may go to now, or how long to wait before asking again."""

    model: str | None
    wait_seconds: float = 0.0


def tokens_estimate(text: str) -> int:
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


def model_take(
    *, models: list[str], waiter: str, waiting_since: float, tokens: int, call_seconds: float
) -> Grant:
    """One request of the first of `models` with budget left, for `waiter` (one per reply,
    `waiting_since` when its first message arrived), or how long to wait.

    `call_seconds` bounds how long the one call made while a budget is unknown may take.
    Without Redis nothing is known: the first model is called.
    """
    keys = [_WAITERS, _WAITERS_SEEN, *(_budget_key(model) for model in models)]
    try:
        index, wait = _script(_TAKE)(
            keys=keys,
            args=[
                time.time(),
                waiter,
                waiting_since,
                tokens,
                call_seconds,
                WAITER_TTL_SECONDS,
                _POLL_SECONDS,
            ],
        )
    except RedisError:
        logger.warning("Groq's budgets are unknown (Redis unavailable): calling %s", models[0])
        return Grant(model=models[0])
    if int(index):
        return Grant(model=models[int(index) - 1])
    return Grant(model=None, wait_seconds=max(float(wait), 0.0))


def waiter_leave(*, waiter: str) -> None:
    """`waiter` no longer waits (it gave up): the ones behind it move up."""
    try:
        _redis().zrem(_WAITERS, waiter)
    except RedisError:
        pass  # it is forgotten after WAITER_TTL_SECONDS anyway


def budget_observe(*, model: str, headers: Mapping[str, str] | None, refused: bool) -> None:
    """Record what Groq's answer for `model` said of its budget (`headers` None: no answer came).

    `refused`: Groq answered 429 or 498; the model gets nothing until its `retry-after`.
    """
    told: dict[str, float] = {}
    if headers is not None:
        for field, header, parse in (
            ("limit", "x-ratelimit-limit-requests", float),
            ("remaining", "x-ratelimit-remaining-requests", float),
            ("reset_in", "x-ratelimit-reset-requests", duration_seconds),
            ("tokens", "x-ratelimit-remaining-tokens", float),
            ("tokens_reset_in", "x-ratelimit-reset-tokens", duration_seconds),
        ):
            value = _header_number(headers.get(header), parse)
            if value is not None:
                told[field] = value
    if refused:
        retry_after = _header_number((headers or {}).get("retry-after"), float)
        told["refused_for"] = retry_after if retry_after is not None else told.get("reset_in", 0.0)
        told["refused_for"] = told["refused_for"] or _REFUSED_DEFAULT_SECONDS
    args: list[object] = [time.time(), _BUDGET_TTL_SECONDS, _RESET_MARGIN_SECONDS]
    for field, value in told.items():
        args += [field, value]
    try:
        _script(_OBSERVE)(keys=[_budget_key(model)], args=args)
    except RedisError:
        logger.debug("Groq's budget not recorded (Redis unavailable)", exc_info=True)


def duration_seconds(text: str) -> float | None:
    """Groq's durations ("2m59.56s", "7.66s", "120ms", "1h2m") in seconds; None when unreadable."""
    text = text.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def _header_number(value: str | None, parse) -> float | None:
    if value is None:
        return None
    try:
        number = parse(value.strip())
    except ValueError:
        return None
    if number is None or not math.isfinite(number) or number < 0:
        return None
    return number


def _budget_key(model: str) -> str:
    return f"{_PREFIX}:model:{model}"


def _script(source: str):
    # redis-py sends the script's digest, and its source only when the server lacks it.
    return _redis().register_script(source)


def _redis():
    return redis_connection()
