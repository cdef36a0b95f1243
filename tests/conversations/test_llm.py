"""The Groq wrapper against the Groq stand-in: the real SDK, real sockets, real timeouts."""

import threading
import time

import pytest

from conversations.llm import (
    Completion,
    PermanentLLMError,
    TransientLLMError,
    build_groq_client,
    complete,
    get_groq_client,
    llm_complete,
)
from devtools.standins.client import standin_process
from devtools.standins.groq import REASONING, echo_answer
from devtools.standins.server import closed_port_url

API_KEY = "gsk_test_secret_key_42"
MODEL = "openai/gpt-oss-120b"
PROMPT = (
    "<SYSTEM>Be kind.</SYSTEM>\n<HISTORY>\nclient: hi\n</HISTORY>\n"
    "<CURRENT_USER_QUERY>What time is it?</CURRENT_USER_QUERY>"
)


@pytest.fixture
def groq_standin(groq_service_standin, redis_conn):
    groq_service_standin.reset()
    return groq_service_standin


@pytest.fixture
def client(groq_standin):
    return build_groq_client(api_key=API_KEY, timeout=2, base_url=groq_standin.url)


@pytest.fixture
def fresh_client_cache():
    get_groq_client.cache_clear()
    yield
    get_groq_client.cache_clear()


def test_complete_sends_the_prompt_as_one_user_message(groq_standin, client):
    completion = complete(client=client, prompt=PROMPT, model=MODEL)

    [call] = groq_standin.calls()
    assert (call["method"], call["path"]) == ("POST", "/openai/v1/chat/completions")
    assert call["json"]["model"] == MODEL
    assert call["json"]["messages"] == [{"role": "user", "content": PROMPT}]
    assert call["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert completion.text == echo_answer(PROMPT)
    assert REASONING not in completion.text


def test_complete_records_model_usage_and_latency(groq_standin, client):
    groq_standin.script([{"delay": 0.3, "text": "  It is noon.\n"}])

    completion = complete(client=client, prompt="one two three", model=MODEL)

    assert completion == Completion(
        text="It is noon.",
        model=MODEL,
        prompt_tokens=3,
        completion_tokens=3,
        latency_ms=completion.latency_ms,
    )
    assert 300 <= completion.latency_ms < 2000


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, TransientLLMError),
        (500, TransientLLMError),
        (503, TransientLLMError),
        (498, TransientLLMError),
        (400, PermanentLLMError),
        (401, PermanentLLMError),
        (403, PermanentLLMError),
        (404, PermanentLLMError),
        (422, PermanentLLMError),
    ],
)
def test_http_errors_are_classified_and_never_retried_here(groq_standin, client, status, expected):
    groq_standin.script([{"status": status}])

    with pytest.raises(expected) as caught:
        complete(client=client, prompt=PROMPT, model=MODEL)

    assert type(caught.value) is expected
    assert caught.value.http_status == status
    assert caught.value.reason.startswith(f"Groq answered HTTP {status}: ")
    # Retries belong to the RQ job: the SDK makes one attempt.
    assert len(groq_standin.calls()) == 1


def test_a_rate_limit_is_transient_with_groqs_reason(groq_standin, client):
    groq_standin.script([{"status": 429}])

    with pytest.raises(TransientLLMError) as caught:
        complete(client=client, prompt=PROMPT, model=MODEL)

    assert "Rate limit reached" in caught.value.reason


def test_a_slow_llm_is_a_transient_timeout(groq_standin):
    client = build_groq_client(api_key=API_KEY, timeout=0.3, base_url=groq_standin.url)
    groq_standin.script([{"delay": 3}])

    started = time.monotonic()
    with pytest.raises(TransientLLMError, match="did not answer in time"):
        complete(client=client, prompt=PROMPT, model=MODEL)

    assert time.monotonic() - started < 2
    assert len(groq_standin.calls()) == 1


def test_a_closed_port_is_a_transient_connection_error():
    client = build_groq_client(api_key=API_KEY, timeout=2, base_url=closed_port_url())

    with pytest.raises(TransientLLMError, match="Could not connect"):
        complete(client=client, prompt=PROMPT, model=MODEL)


@pytest.mark.parametrize(
    "script",
    [
        {"body": "<html>proxy says hi</html>"},
        {"body": "not json", "headers": {"Content-Type": "application/json"}},
        {"body": {"object": "chat.completion", "choices": []}},
        {"body": {"choices": [{"message": None}]}},
        {"body": {"choices": [{"message": {"content": 42}}]}},
    ],
)
def test_a_response_that_is_not_a_completion_is_permanent(groq_standin, client, script):
    groq_standin.script([script])

    with pytest.raises(PermanentLLMError, match="unexpected response"):
        complete(client=client, prompt=PROMPT, model=MODEL)


@pytest.mark.parametrize("text", ["", "   \n", None, "\x00 \x00"])
def test_an_empty_answer_is_transient(groq_standin, client, text):
    # gpt-oss can spend its output on reasoning; a new sample usually answers. NULs are no answer.
    groq_standin.script([{"text": text}])

    with pytest.raises(TransientLLMError, match="empty answer"):
        complete(client=client, prompt=PROMPT, model=MODEL)


def test_a_reason_never_contains_the_api_key(groq_standin, client):
    groq_standin.script([{"status": 401, "message": f"Invalid API Key {API_KEY}"}])

    with pytest.raises(PermanentLLMError) as caught:
        complete(client=client, prompt=PROMPT, model=MODEL)

    assert API_KEY not in str(caught.value)
    assert "Invalid API Key [redacted]" in caught.value.reason


def test_llm_complete_uses_the_settings_and_groq_base_url(groq_standin, settings, fresh_client_cache):
    settings.GROQ_BASE_URL = groq_standin.url
    settings.GROQ_API_KEY = API_KEY
    settings.GROQ_MODEL = "openai/gpt-oss-20b"
    settings.GROQ_TIMEOUT_SECONDS = 7.5

    completion = llm_complete(prompt=PROMPT, waiter="conversation:1", waiting_since=time.time())

    [call] = groq_standin.calls()
    assert completion.model == "openai/gpt-oss-20b"
    assert call["json"]["model"] == "openai/gpt-oss-20b"
    assert call["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert call["headers"]["x-stainless-read-timeout"] == "7.5"


def test_one_client_per_process_without_sdk_retries(settings, fresh_client_cache):
    settings.GROQ_API_KEY = API_KEY

    client = get_groq_client()

    assert get_groq_client() is client
    assert client.max_retries == 0


def test_the_stand_in_counts_overlapping_calls(groq_standin, client):
    groq_standin.script(default={"delay": 0.3})
    threads = [
        threading.Thread(target=complete, kwargs={"client": client, "prompt": f"prompt {n}", "model": MODEL})
        for n in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    calls = groq_standin.calls()
    assert groq_standin.stats() == {
        "calls": 3,
        "kinds": {"chat": 3},
        "in_flight": 0,
        "max_in_flight": 3,
        "refused": 0,
    }
    assert sorted(call["prompt"] for call in calls) == ["prompt 0", "prompt 1", "prompt 2"]
    assert all(call["ended"] - call["started"] >= 0.3 for call in calls)


def test_the_groq_stand_in_runs_as_a_module():
    with standin_process("groq") as standin:
        standin.script([{"status": 503}], default={"text": "Scripted answer."})
        client = build_groq_client(api_key=API_KEY, timeout=2, base_url=standin.url)

        with pytest.raises(TransientLLMError):
            complete(client=client, prompt=PROMPT, model=MODEL)
        assert complete(client=client, prompt=PROMPT, model=MODEL).text == "Scripted answer."

        assert [call["status"] for call in standin.calls()] == [503, 200]
