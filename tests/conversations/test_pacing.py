"""Groq's budgets shared through Redis (conversations.pacing), against the Groq stand-in's quotas:
the real SDK, real Redis, real waits."""

import threading
import time

import pytest

from conversations.insights.metrics import LLM_CALLS
from conversations.llm import QuotaSpentError, llm_complete
from conversations.pacing import duration_seconds

PROMPT = "<CURRENT_USER_QUERY>{}</CURRENT_USER_QUERY>"


@pytest.fixture
def quota_groq(groq, settings):
    settings.GROQ_MODEL = "main-model"
    settings.GROQ_FALLBACK_MODELS = []
    settings.GROQ_TIMEOUT_SECONDS = 5
    return groq


def ask(text: str, *, waiting_since: float | None = None):
    return llm_complete(
        prompt=PROMPT.format(text), waiter=f"conversation:{text}", waiting_since=waiting_since or time.time()
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2m59.56s", 179.56), ("7.66s", 7.66), ("120ms", 0.12), ("1h2m", 3720.0), ("0s", 0.0)],
)
def test_groqs_durations_are_read(text, seconds):
    assert duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5", "-1s", "1s later"])
def test_a_duration_that_is_not_groqs_is_none(text):
    assert duration_seconds(text) is None


def test_calls_past_the_quota_wait_for_the_window_instead_of_being_refused(quota_groq):
    quota_groq.quota(requests=3, window_seconds=1)

    started = time.monotonic()
    answers = [ask(f"question {number}").text for number in range(7)]
    elapsed = time.monotonic() - started

    assert answers == [f"Echo: question {number}" for number in range(7)]
    assert quota_groq.stats()["refused"] == 0
    assert elapsed >= 2  # seven calls at three a window take three windows


def test_a_burst_is_answered_oldest_first_with_few_refusals(quota_groq):
    quota_groq.quota(requests=4, window_seconds=1)
    arrived = time.time()
    answers: dict[int, str] = {}

    def person(number: int) -> None:
        answers[number] = ask(f"person {number}", waiting_since=arrived + number / 1000).text

    threads = [threading.Thread(target=person, args=(number,)) for number in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert answers == {number: f"Echo: person {number}" for number in range(12)}
    assert quota_groq.stats()["refused"] <= 1
    answered = [
        int(call["prompt"].split()[1].split("<")[0]) for call in quota_groq.calls() if call["status"] == 200
    ]
    # The first window goes to whoever asked first; after it, those who waited longest go first.
    waited = answered[4:]
    assert max(waited[:4]) < min(waited[4:])


def test_a_refused_main_model_hands_the_reply_to_the_fallback_at_once(quota_groq, settings):
    settings.GROQ_FALLBACK_MODELS = ["fallback-model"]
    quota_groq.script([{"status": 429, "headers": {"retry-after": "30"}}])
    refused_before = LLM_CALLS.labels(model="main-model", outcome="refused")._value.get()

    started = time.monotonic()
    first = ask("first")
    second = ask("second")

    assert time.monotonic() - started < 2
    assert (first.model, second.model) == ("fallback-model", "fallback-model")
    assert [call["model"] for call in quota_groq.calls()] == [
        "main-model",
        "fallback-model",
        "fallback-model",
    ]
    assert LLM_CALLS.labels(model="main-model", outcome="refused")._value.get() == refused_before + 1


def test_the_fallback_is_asked_when_the_main_models_budget_is_known_to_be_spent(quota_groq, settings):
    settings.GROQ_FALLBACK_MODELS = ["fallback-model"]
    quota_groq.quota(requests=1, window_seconds=30, model="main-model")

    models = [ask(f"question {number}").model for number in range(3)]

    assert models == ["main-model", "fallback-model", "fallback-model"]
    assert quota_groq.stats()["refused"] == 0


def test_a_budget_spent_past_the_longest_wait_gives_up(quota_groq, settings):
    settings.REPLY_MAX_WAIT_SECONDS = 2
    quota_groq.quota(requests=1, window_seconds=30)
    ask("first")

    started = time.monotonic()
    with pytest.raises(QuotaSpentError) as caught:
        ask("second")

    assert time.monotonic() - started < 1  # known at once: no point waiting 30 s
    assert caught.value.http_status == 429
    assert quota_groq.stats()["refused"] == 0
