"""The reply job's work, run in-process against the Graph and Groq stand-ins, PostgreSQL and Redis."""

import logging
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_rq import get_queue
from rq.job import Job, JobStatus

from conversations.llm import TransientLLMError
from conversations.models import Handoff, Message
from conversations.services.conversations import conversation_bot_pause, conversation_get_or_create
from conversations.services.ratelimit import NOTICE_TEXT
from conversations.services.replies import (
    APOLOGY_TEXT,
    ATTACHMENT_REPLY_TEXT,
    replies_sweep,
    reply_produce,
    reply_retry,
    reply_schedule,
)
from devtools.processes import wait_for
from devtools.standins.groq import echo_answer
from messenger.errors import TransientDeliveryError
from tests.conversations.test_prompts import DISGUISES, OWN_TAGS, readable_tags, section

pytestmark = pytest.mark.django_db
PAGE_ID = "104728561934527"
PSID = "7395028461739201"


@pytest.fixture
def conversation():
    return conversation_get_or_create(page_id=PAGE_ID, external_id=PSID)


@pytest.fixture
def services(graph, groq, redis_conn):
    return graph, groq


def client_message(conversation, text="Hello", **fields) -> Message:
    return Message.objects.create(
        conversation=conversation,
        role=Message.Role.CLIENT,
        text=text,
        status=Message.Status.RECEIVED,
        **fields,
    )


def earlier_messages(conversation, texts, roles=(Message.Role.CLIENT, Message.Role.AI)) -> None:
    """`texts` stored as answered history an hour ago, a minute apart, their roles taking turns."""
    start = timezone.now() - timedelta(hours=1)
    for index, text in enumerate(texts):
        role = roles[index % len(roles)]
        Message.objects.create(
            conversation=conversation,
            role=role,
            text=text,
            status=Message.Status.ANSWERED if role == Message.Role.CLIENT else Message.Status.SENT,
            created_at=start + timedelta(minutes=index),
        )


def sent_texts(graph) -> list[str]:
    return [call["json"]["message"]["text"] for call in graph.calls(kind="message") if call["status"] == 200]


def test_a_message_gets_the_llm_answer_stored_and_sent(services, conversation):
    graph, groq = services
    message = client_message(conversation, "What are your opening hours?")

    reply_produce(message_id=message.pk, final_attempt=True)

    [prompt] = [call["prompt"] for call in groq.calls()]
    assert sent_texts(graph) == [echo_answer(prompt)]
    assert [call["json"]["sender_action"] for call in graph.calls(kind="action")] == [
        "mark_seen",
        "typing_on",
    ]
    assert graph.calls()[-1]["kind"] == "message"  # seen and typing come before the answer
    assert graph.calls(kind="message")[0]["json"]["messaging_type"] == "RESPONSE"
    [reply] = Message.objects.filter(role=Message.Role.AI)
    assert reply.status == Message.Status.SENT
    assert reply.external_id.startswith("m_")
    assert reply.reply_to == message
    assert reply.llm_model == "openai/gpt-oss-120b"
    assert reply.prompt_tokens and reply.completion_tokens and reply.llm_latency_ms is not None
    message.refresh_from_db()
    assert message.status == Message.Status.ANSWERED


def test_running_the_job_again_sends_nothing_more(services, conversation):
    graph, groq = services
    message = client_message(conversation)

    reply_produce(message_id=message.pk, final_attempt=True)
    reply_produce(message_id=message.pk, final_attempt=True)

    assert len(groq.calls()) == 1
    assert len(sent_texts(graph)) == 1


def test_messages_waiting_together_get_one_reply_to_all_of_them(services, conversation):
    graph, groq = services
    first = client_message(conversation, "first question")
    client_message(conversation, "second question")
    last = client_message(conversation, "third question")

    reply_produce(message_id=first.pk, final_attempt=True)
    reply_produce(message_id=last.pk, final_attempt=True)

    [call] = groq.calls()
    query = call["prompt"].split("<CURRENT_USER_QUERY>")[1]
    assert query.index("first") < query.index("second") < query.index("third")
    assert Message.objects.get(role=Message.Role.AI).reply_to == last
    assert not Message.objects.filter(status=Message.Status.RECEIVED).exists()


def test_history_holds_the_last_messages_before_the_query_oldest_first(services, conversation, settings):
    _, groq = services
    settings.LLM_HISTORY_LIMIT = 5
    earlier_messages(conversation, [f"old message {index}" for index in range(8)])
    message = client_message(conversation, "new question")

    reply_produce(message_id=message.pk, final_attempt=True)

    history = groq.calls()[0]["prompt"].split("<HISTORY>\n")[1].split("\n</HISTORY>")[0]
    assert history.splitlines() == [
        "assistant: old message 3",
        "user: old message 4",
        "assistant: old message 5",
        "user: old message 6",
        "assistant: old message 7",
    ]


def test_a_huge_message_reaches_the_llm_cut_to_its_budget_and_stays_whole_in_the_database(
    services, conversation, settings
):
    _, groq = services
    huge = "Start of my message. " + "x" * 2_400_000 + " What is the end?"
    first = client_message(conversation, huge)
    reply_produce(message_id=first.pk, final_attempt=True)
    second = client_message(conversation, "And now?")

    reply_produce(message_id=second.pk, final_attempt=True)

    first_prompt, second_prompt = [call["prompt"] for call in groq.calls()]
    query = section(first_prompt, "CURRENT_USER_QUERY")
    assert len(query) == settings.LLM_MESSAGE_MAX_CHARS
    assert query.startswith("Start of my message. xxx") and query.endswith("xxx What is the end?")
    assert "[… 2,400,038 characters in all: the middle is left out …]" in query
    # The next reply reads it in its history, cut the same way.
    entry, _ = section(second_prompt, "HISTORY").split("\nassistant: ")
    assert entry.startswith("user: Start of my message.") and entry.endswith("What is the end?")
    assert len(entry) <= len("user: ") + settings.LLM_MESSAGE_MAX_CHARS + 2 * 2  # the note's indents
    assert section(second_prompt, "CURRENT_USER_QUERY") == "And now?"
    assert max(len(first_prompt), len(second_prompt)) <= settings.LLM_PROMPT_MAX_CHARS
    first.refresh_from_db()
    assert first.text == huge


def test_history_is_cut_oldest_first_to_fit_the_prompt_budget(services, conversation, settings):
    _, groq = services
    settings.LLM_PROMPT_MAX_CHARS = 2500
    earlier_messages(conversation, [f"old message {index:02} " + "x" * 200 for index in range(20)])
    message = client_message(conversation, "new question")

    reply_produce(message_id=message.pk, final_attempt=True)

    [prompt] = [call["prompt"] for call in groq.calls()]
    assert len(prompt) <= 2500
    kept = [line.split()[3] for line in section(prompt, "HISTORY").splitlines()]
    assert 3 <= len(kept) < 20
    assert kept == [f"{index:02}" for index in range(20 - len(kept), 20)]  # the newest, in order
    assert section(prompt, "SYSTEM") == settings.LLM_SYSTEM_PROMPT
    assert section(prompt, "CURRENT_USER_QUERY") == "new question"


@pytest.mark.parametrize(("history", "query"), DISGUISES)
def test_the_llm_reads_only_the_prompts_own_section_tags(services, conversation, history, query):
    _, groq = services
    earlier_messages(conversation, history, roles=[Message.Role.CLIENT])
    waiting = [client_message(conversation, text) for text in query]

    reply_produce(message_id=waiting[-1].pk, final_attempt=True)

    [call] = groq.calls()
    assert readable_tags(call["prompt"]) == OWN_TAGS


def test_a_long_answer_is_sent_in_parts_in_order(services, conversation):
    graph, groq = services
    answer = " ".join(f"Sentence number {index} of a long answer." for index in range(120))
    groq.script([{"text": answer}])
    message = client_message(conversation)

    reply_produce(message_id=message.pk, final_attempt=True)

    parts = sent_texts(graph)
    assert len(parts) == 3
    assert all(len(part) <= 2000 for part in parts)
    assert " ".join(parts) == answer


def test_a_split_reply_resumes_at_the_first_part_not_sent(services, conversation):
    graph, groq = services
    answer = "\n\n".join(["A" * 1500, "B" * 1500, "C" * 1500])
    groq.script([{"text": answer}])
    graph.script([{"on": "message"}, {"on": "message", "status": 503}])
    message = client_message(conversation)

    with pytest.raises(TransientDeliveryError):
        reply_produce(message_id=message.pk, final_attempt=False)
    reply_produce(message_id=message.pk, final_attempt=False)

    assert len(groq.calls()) == 1
    assert [text[0] for text in sent_texts(graph)] == ["A", "B", "C"]
    assert list(Message.objects.filter(role=Message.Role.AI).values_list("status", flat=True)) == ["sent"] * 3


# What the model may write that PostgreSQL cannot store, and what is stored instead.
UNSTORABLE = [
    pytest.param("Open\x00 until 18:00.", "Open until 18:00.", id="nul"),
    pytest.param("Open until 18:00 \ud83d.", "Open until 18:00 \ufffd.", id="lone-surrogate"),
]


@pytest.mark.parametrize(("written", "stored"), UNSTORABLE)
def test_an_unstorable_character_in_the_answer_is_cleaned_and_the_reply_sent(
    services, conversation, written, stored
):
    graph, groq = services
    groq.script([{"text": written}])
    message = client_message(conversation)

    reply_produce(message_id=message.pk, final_attempt=True)

    assert sent_texts(graph) == [stored]
    reply = Message.objects.get(role=Message.Role.AI)
    assert (reply.text, reply.status) == (stored, Message.Status.SENT)
    message.refresh_from_db()
    assert message.status == Message.Status.ANSWERED


@pytest.mark.parametrize(("written", "stored"), UNSTORABLE)
def test_an_unstorable_character_in_the_handoff_reason_is_cleaned_and_the_handoff_recorded(
    services, conversation, settings, written, stored
):
    graph, groq = services
    groq.script([{"tool_calls": [{"name": "handoff_to_human", "arguments": {"reason": written}}]}])
    message = client_message(conversation)

    reply_produce(message_id=message.pk, final_attempt=True)

    assert Handoff.objects.get().reason == stored
    conversation.refresh_from_db()
    assert (conversation.bot_active, conversation.handoff_reason) == (False, stored)
    assert sent_texts(graph) == [settings.HANDOFF_MESSAGE]


def test_a_transient_llm_error_is_raised_for_rq_to_retry(services, conversation):
    graph, groq = services
    groq.script([{"status": 503}])
    message = client_message(conversation)

    with pytest.raises(TransientLLMError):
        reply_produce(message_id=message.pk, final_attempt=False)

    message.refresh_from_db()
    assert message.status == Message.Status.RECEIVED
    assert sent_texts(graph) == []


def test_the_last_try_failing_marks_the_message_failed_and_apologises(services, conversation, caplog):
    graph, groq = services
    groq.script(default={"status": 500})
    message = client_message(conversation)

    reply_produce(message_id=message.pk, final_attempt=True)

    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert message.error_code == "llm:500"
    assert "Groq answered HTTP 500" in message.error_detail
    assert sent_texts(graph) == [APOLOGY_TEXT]
    assert "Traceback" in caplog.text or any(record.exc_info for record in caplog.records)


def test_a_permanent_llm_error_fails_at_once_with_an_apology(services, conversation):
    graph, groq = services
    groq.script([{"status": 401}])
    message = client_message(conversation)

    reply_produce(message_id=message.pk, final_attempt=False)

    assert len(groq.calls()) == 1
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert sent_texts(graph) == [APOLOGY_TEXT]


def test_a_person_who_cannot_be_reached_gets_no_llm_call_retry_or_apology(services, conversation):
    graph, groq = services
    graph.script(default={"status": 400, "code": 551})
    message = client_message(conversation)

    reply_produce(message_id=message.pk, final_attempt=False)

    assert groq.calls() == []
    assert graph.calls(kind="message") == []
    message.refresh_from_db()
    assert (message.status, message.error_code) == (Message.Status.FAILED, "graph:551")


def test_a_refused_page_token_is_an_operator_error(services, conversation, caplog):
    graph, groq = services
    graph.script([{"on": "message", "status": 400, "code": 190}])
    message = client_message(conversation)

    with caplog.at_level(logging.ERROR):
        reply_produce(message_id=message.pk, final_attempt=False)

    assert "FACEBOOK_PAGE_ACCESS_TOKEN" in caplog.text
    assert "test-page-token" not in caplog.text
    reply = Message.objects.get(role=Message.Role.AI)
    assert (reply.status, reply.error_code) == (Message.Status.FAILED, "graph:190")
    assert len(graph.calls(kind="message")) == 1  # no apology: it could not be sent either


def test_a_busy_conversation_requeues_the_job_instead_of_answering(services, conversation, redis_conn):
    graph, groq = services
    message = client_message(conversation)
    redis_conn.set(f"replies:conversation:{conversation.pk}", "another job")

    reply_produce(message_id=message.pk, final_attempt=True)

    assert groq.calls() == []
    [job_id] = get_queue("default").scheduled_job_registry.get_job_ids()
    assert Job.fetch(job_id, connection=redis_conn).args == (message.pk,)


def test_a_paused_bot_does_not_answer(services, conversation):
    graph, groq = services
    conversation_bot_pause(conversation=conversation, by=None)
    message = client_message(conversation)

    reply_produce(message_id=message.pk, final_attempt=True)

    assert groq.calls() == [] and graph.calls() == []
    message.refresh_from_db()
    assert message.status == Message.Status.RECEIVED


@pytest.mark.django_db(transaction=True)
def test_a_bot_paused_during_the_llm_call_does_not_send_the_answer(services, conversation):
    graph, groq = services
    groq.script([{"delay": 1}])
    message = client_message(conversation)
    job = threading.Thread(target=reply_in_own_connection, kwargs={"message_id": message.pk})
    job.start()

    wait_for(groq.calls, message="the LLM call")
    conversation_bot_pause(conversation=conversation, by=None)
    job.join()

    assert graph.calls(kind="message") == []
    message.refresh_from_db()
    assert message.status == Message.Status.RECEIVED


def reply_in_own_connection(*, message_id: int) -> None:
    try:
        reply_produce(message_id=message_id, final_attempt=True)
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("attachment", "understanding"),
    [
        pytest.param({"type": "video", "url": "https://video.fbcdn.net/a.mp4"}, True, id="a-video"),
        pytest.param({"type": "sticker", "url": "https://scontent.fbcdn.net/s.png"}, True, id="a-sticker"),
        pytest.param({"type": "image", "url": "https://scontent.fbcdn.net/a.jpg"}, False, id="media-off"),
    ],
)
def test_attachments_the_llm_cannot_read_get_the_fixed_reply_without_the_llm(
    services, conversation, settings, attachment, understanding
):
    graph, groq = services
    settings.MEDIA_UNDERSTANDING = understanding
    message = client_message(conversation, "", attachments=[attachment])

    reply_produce(message_id=message.pk, final_attempt=True)

    assert groq.calls() == []
    assert sent_texts(graph) == [ATTACHMENT_REPLY_TEXT]


def test_a_pending_rate_limit_notice_is_sent_once(services, conversation):
    graph, _ = services
    limited = Message.objects.create(
        conversation=conversation,
        role=Message.Role.CLIENT,
        text="spam",
        status=Message.Status.RATE_LIMITED,
        details={"rate_limit_notice": "pending"},
    )

    reply_produce(message_id=limited.pk, final_attempt=True)
    reply_produce(message_id=limited.pk, final_attempt=True)

    assert sent_texts(graph) == [NOTICE_TEXT]
    limited.refresh_from_db()
    assert limited.details["rate_limit_notice"] == "sent"


def test_schedule_queues_one_job_per_message(conversation, redis_conn, caplog):
    message = client_message(conversation)

    with caplog.at_level(logging.INFO):
        job_id = reply_schedule(message=message)

    job = Job.fetch(job_id, connection=redis_conn)
    assert (job.func_name, job.args, job.get_status()) == (
        "conversations.jobs.reply_to_message",
        (message.pk,),
        "queued",
    )
    assert f"Queued reply job: sender={PSID} job={job_id}" in caplog.text


def test_schedule_survives_redis_being_down(conversation, settings, caplog):
    settings.RQ_QUEUES = {"default": {"URL": "redis://127.0.0.1:1/0"}}
    message = client_message(conversation)

    assert reply_schedule(message=message) is None
    assert "Could not queue reply job" in caplog.text


def test_sweep_requeues_overdue_messages_but_not_fresh_or_waiting_ones(conversation, redis_conn):
    long_ago = timezone.now() - timedelta(minutes=5)
    overdue = client_message(conversation, created_at=long_ago)
    other = conversation_get_or_create(page_id=PAGE_ID, external_id="other-psid")
    waiting = client_message(other, created_at=long_ago)
    reply_schedule(message=waiting)
    fresh = conversation_get_or_create(page_id=PAGE_ID, external_id="fresh-psid")
    client_message(fresh)

    assert replies_sweep() == 1
    assert replies_sweep() == 0  # its job now waits in the queue

    queued = {job.args[0] for job in get_queue("default").get_jobs()}
    assert queued == {overdue.pk, waiting.pk}


def test_sweep_queues_a_second_job_beside_one_that_may_have_died_mid_run(conversation, redis_conn):
    overdue = client_message(conversation, created_at=timezone.now() - timedelta(minutes=5))
    Job.fetch(reply_schedule(message=overdue), connection=redis_conn).set_status(JobStatus.STARTED)

    assert replies_sweep() == 1

    jobs = get_queue("default").get_jobs()
    assert [job.args for job in jobs] == [(overdue.pk,), (overdue.pk,)]
    assert len({job.id for job in jobs}) == 2  # the second has an id of its own


def test_retry_makes_a_failed_message_answerable_again(services, conversation, redis_conn):
    graph, groq = services
    groq.script([{"status": 401}])
    message = client_message(conversation)
    reply_produce(message_id=message.pk, final_attempt=True)

    job_id = reply_retry(message=message)
    reply_produce(message_id=message.pk, final_attempt=True)

    assert Job.fetch(job_id, connection=redis_conn).get_status() == JobStatus.QUEUED
    message.refresh_from_db()
    assert message.status == Message.Status.ANSWERED
    assert sent_texts(graph)[-1].startswith("Echo:")


def test_no_bot_reply_is_attempted_past_24_hours(services, conversation):
    graph, groq = services
    conversation.person_last_wrote_at = timezone.now() - timedelta(hours=25)
    conversation.save(update_fields=["person_last_wrote_at"])
    message = client_message(conversation)

    reply_produce(message_id=message.pk, final_attempt=True)

    assert graph.calls() == [] and groq.calls() == []
    message.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", "outside_window")
    assert "outside the 24-hour window" in message.error_detail
