"""The LLM behind one function, `llm_complete`, with typed errors, at Groq's pace.

Uses the official groq SDK, given GROQ_BASE_URL from the settings (it appends /openai/v1/...
to it). One client per process (`get_groq_client`) keeps one
connection pool.

The client is built with `max_retries=0`: retries are owned by exactly one layer, the RQ
job, which retries transient failures with growing intervals and a bounded number of tries.
The SDK's own retries would multiply those attempts and hide the time they take from the
job's timeout.

Errors are classified, not guessed: TransientLLMError is worth another try later,
PermanentLLMError is not. Their reasons are readable for staff and never contain the API key.
"""

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import groq
from django.conf import settings

from conversations import pacing
from conversations.insights.metrics import LLM_CALLS, LLM_LATENCY
from conversations.text import text_storable

logger = logging.getLogger(__name__)

_UNEXPECTED_RESPONSE = "Groq's response is not a chat completion (unexpected response)"
# Besides 5xx: the statuses the SDK itself would retry, and Groq's 498 (flex tier at capacity).
_TRANSIENT_STATUSES = frozenset({408, 409, 429, 498})
# Groq refuses the model for now (its quota, or 498 at capacity): the next model is asked at once.
_REFUSED_STATUSES = frozenset({429, 498})
T = TypeVar("T")


class LLMError(Exception):
    def __init__(self, reason: str, *, http_status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.http_status = http_status


class TransientLLMError(LLMError):
    pass


class PermanentLLMError(LLMError):
    pass


class QuotaSpentError(PermanentLLMError):
    """Groq's budget for every model stays spent past the time a reply may wait."""


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: int
    # Set when the model called handoff_to_human: why it hands the person over to staff.
    handoff_reason: str | None = None


HANDOFF_TOOL = "handoff_to_human"
# Offered with every call: the model hands the person over to staff instead of (or after) answering.
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": HANDOFF_TOOL,
            "description": (
                "Hand this conversation over to a member of staff, who will answer the person here. "
                "The bot then stops answering this person until staff hand it back."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "reason": {
                        "type": "string",
                        "description": "Why a person is needed, in one sentence for staff.",
                    }
                },
                "required": ["reason"],
            },
        },
    }
]
NO_REASON = "The assistant handed over without saying why."
_REASON_MAX_CHARS = 500


def build_groq_client(*, api_key: str, timeout: float, base_url: str) -> groq.Groq:
    """A Groq client without retries.

    The base URL is always given: left None, the SDK would read GROQ_BASE_URL from the
    environment itself, and take an empty one (`GROQ_BASE_URL=` handed over from a .env by
    docker compose, say) for the URL instead of its default.
    """
    return groq.Groq(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)


@functools.cache
def get_groq_client() -> groq.Groq:
    return build_groq_client(
        api_key=settings.GROQ_API_KEY, timeout=settings.GROQ_TIMEOUT_SECONDS, base_url=settings.GROQ_BASE_URL
    )


def llm_models() -> list[str]:
    """The models a reply may be asked of, in order: GROQ_MODEL, then GROQ_FALLBACK_MODELS."""
    return list(dict.fromkeys([settings.GROQ_MODEL, *settings.GROQ_FALLBACK_MODELS]))


def llm_complete(
    *, prompt: str, waiter: str, waiting_since: float, before_wait: Callable[[float], None] | None = None
) -> Completion:
    """The answer to `prompt` (the whole sectioned prompt, conversations.prompts) from the first
    of llm_models() with budget left, waiting in turn when all are spent (conversations.pacing).

    `waiter` names the reply (one conversation's, one comment's) and `waiting_since` is when its
    first message arrived (a Unix time): the oldest are answered first. Before each wait,
    `before_wait(seconds)` is told how long the caller may be away (it extends its locks and
    gives back what it should not hold meanwhile). A budget that stays spent past
    REPLY_MAX_WAIT_SECONDS after `waiting_since` is a QuotaSpentError.
    """
    client = get_groq_client()
    return _paced(
        lambda model: complete(client=client, prompt=prompt, model=model),
        tokens=pacing.tokens_estimate(prompt),
        waiter=waiter,
        waiting_since=waiting_since,
        deadline=waiting_since + settings.REPLY_MAX_WAIT_SECONDS,
        before_wait=before_wait,
    )


def llm_summarise(*, prompt: str, waiter: str) -> str:
    """The text `prompt` asks for (a summary for staff), with no tool offered, within
    HANDOFF_SUMMARY_TIMEOUT_SECONDS, waiting for Groq's budget no longer than that.

    Errors are llm_complete's; an empty answer is a TransientLLMError.
    """
    client = get_groq_client()

    def summarise(model: str) -> str:
        response = _chat_create(
            client=client, model=model, prompt=prompt, timeout=settings.HANDOFF_SUMMARY_TIMEOUT_SECONDS
        )
        try:
            content = response.choices[0].message.content
        except (AttributeError, IndexError, KeyError, TypeError) as error:
            raise PermanentLLMError(_UNEXPECTED_RESPONSE) from error
        text = text_storable(content).strip() if isinstance(content, str) else ""
        if not text:
            raise TransientLLMError("Groq returned an empty summary")
        return text

    now = time.time()
    return _paced(
        summarise,
        tokens=pacing.tokens_estimate(prompt),
        waiter=waiter,
        waiting_since=now,
        deadline=now + settings.HANDOFF_SUMMARY_TIMEOUT_SECONDS,
        before_wait=None,
    )


def _paced(
    call: Callable[[str], T],
    *,
    tokens: int,
    waiter: str,
    waiting_since: float,
    deadline: float,
    before_wait: Callable[[float], None] | None,
) -> T:
    """`call(model)` for the first model with budget; the next one at once when Groq refuses it
    (429, or 498 at capacity), and a wait in turn when every one is spent."""
    models = llm_models()
    while True:
        grant = pacing.model_take(
            models=models,
            waiter=waiter,
            waiting_since=waiting_since,
            tokens=tokens,
            call_seconds=settings.GROQ_TIMEOUT_SECONDS,
        )
        if grant.model is None:
            if time.time() + grant.wait_seconds > deadline:
                pacing.waiter_leave(waiter=waiter)
                raise QuotaSpentError(
                    f"Groq's quota for {', '.join(models)} is spent for longer than this reply may wait",
                    http_status=429,
                )
            wait = min(grant.wait_seconds, pacing.WAIT_STEP_SECONDS)
            if before_wait is not None:
                before_wait(wait + settings.GROQ_TIMEOUT_SECONDS)
            time.sleep(wait)
            continue
        try:
            return call(grant.model)
        except LLMError as error:
            if error.http_status not in _REFUSED_STATUSES:
                raise
            logger.info("Groq refused %s (HTTP %s): asking the next model", grant.model, error.http_status)


def complete(*, client: groq.Groq, prompt: str, model: str) -> Completion:
    """The answer to `prompt`, sent as one user message, from `model` through `client`.

    Only `message.content` is the answer; reasoning that gpt-oss models return is ignored.
    A response that is not a chat completion is a PermanentLLMError: whatever answered is
    not speaking Groq's API (a wrong GROQ_BASE_URL, say), and asking again will not change
    that. An empty answer is a TransientLLMError: the model is sampled, and another run
    usually answers.
    """
    started = time.monotonic()
    response = _chat_create(client=client, model=model, prompt=prompt, tools=TOOLS)
    latency = time.monotonic() - started
    LLM_LATENCY.observe(latency)
    latency_ms = round(latency * 1000)

    try:
        choice = response.choices[0]
        content = choice.message.content
        tool_calls = choice.message.tool_calls or []
    except (AttributeError, IndexError, KeyError, TypeError) as error:
        raise PermanentLLMError(_UNEXPECTED_RESPONSE) from error
    if content is not None and not isinstance(content, str):
        raise PermanentLLMError(_UNEXPECTED_RESPONSE)
    # Made storable here, so a NUL the model writes cannot fail the reply that stores it.
    text = text_storable(content or "").strip()
    handoff_reason = _handoff_reason(tool_calls)
    if not text and handoff_reason is None:
        raise TransientLLMError(
            f"Groq returned an empty answer (finish reason: {getattr(choice, 'finish_reason', None)})"
        )
    usage = getattr(response, "usage", None)
    return Completion(
        text=text,
        model=getattr(response, "model", None) or model,
        prompt_tokens=_token_count(usage, "prompt_tokens"),
        completion_tokens=_token_count(usage, "completion_tokens"),
        latency_ms=latency_ms,
        handoff_reason=handoff_reason,
    )


def _chat_create(
    *,
    client: groq.Groq,
    model: str,
    prompt: str,
    tools: list[dict] | None = None,
    timeout: float | None = None,
) -> Any:
    """Groq's chat completion of `prompt` by `model`; what its answer says of the model's
    budget is recorded (conversations.pacing), and the call counted by model and outcome."""
    extra: dict[str, Any] = {"tools": tools} if tools else {}
    if timeout is not None:
        extra["timeout"] = timeout
    raw = None
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": prompt}], **extra
        )
        response = raw.parse()
    except groq.APIStatusError as error:
        refused = groq_refusal_recorded(model=model, error=error)
        LLM_CALLS.labels(model=model, outcome="refused" if refused else "failed").inc()
        raise groq_error_typed(error, api_key=client.api_key) from error
    except groq.GroqError as error:
        pacing.budget_observe(model=model, headers=None, refused=False)
        LLM_CALLS.labels(model=model, outcome="failed").inc()
        raise groq_error_typed(error, api_key=client.api_key) from error
    except ValueError as error:  # e.g. a 2xx body that is not JSON
        pacing.budget_observe(model=model, headers=raw and raw.headers, refused=False)
        LLM_CALLS.labels(model=model, outcome="failed").inc()
        raise PermanentLLMError(_UNEXPECTED_RESPONSE) from error
    pacing.budget_observe(model=model, headers=raw.headers, refused=False)
    LLM_CALLS.labels(model=model, outcome="answered").inc()
    return response


def _handoff_reason(tool_calls: list[Any]) -> str | None:
    """The reason of the model's handoff_to_human call, or None when it made none.

    A call whose arguments are not the JSON asked for still hands over (the model meant to),
    with NO_REASON; a call to a tool we did not offer is logged and ignored.
    """
    for call in tool_calls:
        name = getattr(getattr(call, "function", None), "name", None)
        if name != HANDOFF_TOOL:
            logger.warning("The model called a tool that was not offered: %r", name)
            continue
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except (TypeError, ValueError):
            arguments = {}
        reason = arguments.get("reason") if isinstance(arguments, dict) else None
        if not isinstance(reason, str):
            return NO_REASON
        return text_storable(reason).strip()[:_REASON_MAX_CHARS] or NO_REASON
    return None


def _token_count(usage: Any, name: str) -> int | None:
    count = getattr(usage, name, None)
    return count if isinstance(count, int) else None


def groq_refusal_recorded(*, model: str, error: groq.APIStatusError) -> bool:
    """Record what Groq's error answer says of `model`'s budget (conversations.pacing); whether
    Groq refused the model for now (429, or 498 at capacity)."""
    refused = error.status_code in _REFUSED_STATUSES
    pacing.budget_observe(model=model, headers=error.response.headers, refused=refused)
    return refused


def groq_error_typed(error: groq.GroqError, *, api_key: str) -> LLMError:
    """`error` of the groq SDK as TransientLLMError or PermanentLLMError, its reason without the key."""
    # APITimeoutError is an APIConnectionError: test it first.
    if isinstance(error, groq.APITimeoutError):
        return TransientLLMError("Groq did not answer in time")
    if isinstance(error, groq.APIConnectionError):
        return TransientLLMError("Could not connect to Groq")
    if isinstance(error, groq.APIStatusError):
        status = error.status_code
        reason = _readable(f"Groq answered HTTP {status}: {_error_message(error.body)}", api_key=api_key)
        if status >= 500 or status in _TRANSIENT_STATUSES:
            return TransientLLMError(reason, http_status=status)
        return PermanentLLMError(reason, http_status=status)
    return PermanentLLMError(_readable(f"Groq call failed: {error}", api_key=api_key))


def _error_message(body: Any) -> str:
    """The message out of Groq's `{"error": {"message": ...}}`, or whatever text came instead."""
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        if isinstance(message, str) and message:
            return message
    if isinstance(body, str) and body.strip():
        return body.strip()
    return "no details"


def _readable(reason: str, *, api_key: str) -> str:
    """`reason` without the API key (an error may echo the request), cut to fit an admin cell."""
    if api_key:
        reason = reason.replace(api_key, "[redacted]")
    return reason if len(reason) <= _REASON_MAX_CHARS else reason[: _REASON_MAX_CHARS - 1] + "…"
