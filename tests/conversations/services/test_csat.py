"""How we did (CSAT): asked once when staff hand a conversation back after a handoff, the answer
stored on that handoff, thanked once and counted; a stray rating ignored, never the LLM's. Jobs
run in-process against the stand-ins."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_rq import get_queue

from conversations.insights.metrics import metrics_render
from conversations.models import Handoff, Message
from conversations.services.conversations import conversation_bot_pause, conversation_get_or_create
from conversations.services.replies import conversation_hand_back
from tests.conversations.services.test_handoff import ask

pytestmark = pytest.mark.django_db
PSID = "7395028461739203"
STARS = ["1 ★", "2 ★★", "3 ★★★", "4 ★★★★", "5 ★★★★★"]


@pytest.fixture
def conversation(graph, groq, redis_conn, settings):
    settings.CSAT_ENABLED = True
    conversation = conversation_get_or_create(page_id="104728561934527", external_id=PSID)
    conversation.person_last_wrote_at = timezone.now() - timedelta(hours=1)
    conversation.save(update_fields=["person_last_wrote_at"])
    return conversation


def rate(conversation, score: int) -> Message:
    return ask(conversation, STARS[score - 1], quick_reply_payload=f"CSAT_{score}")


def handed_over(conversation) -> Handoff:
    ask(conversation, "Talk to a person", postback_payload="HUMAN_AGENT")
    return conversation.handoffs.get()


def hand_back(conversation, django_capture_on_commit_callbacks) -> bool:
    """Staff resume the bot; the reply job it queues runs, as a worker would run it."""
    with django_capture_on_commit_callbacks(execute=True):
        asked = conversation_hand_back(conversation=conversation)
    for job in get_queue().get_jobs():
        if job.func_name.endswith("reply_to_message"):
            job.perform()
            job.delete()
    conversation.refresh_from_db()
    return asked


def sent(graph) -> list[dict]:
    return [call["json"]["message"] for call in graph.calls(kind="message") if call["status"] == 200]


def csat_counts() -> dict[str, float]:
    lines = metrics_render().decode().splitlines()
    return {
        line.split('"')[1]: float(line.rpartition(" ")[2])
        for line in lines
        if line.startswith("messenger_csat_answers_total{")
    }


def test_handing_back_after_a_handoff_asks_once_with_five_quick_replies(
    conversation, graph, django_capture_on_commit_callbacks
):
    handoff = handed_over(conversation)

    assert hand_back(conversation, django_capture_on_commit_callbacks)

    question = sent(graph)[-1]
    assert question["text"] == "How did we do?"
    assert [(button["title"], button["payload"]) for button in question["quick_replies"]] == [
        (stars, f"CSAT_{score}") for score, stars in enumerate(STARS, start=1)
    ]
    assert all(len(button["title"]) <= 20 for button in question["quick_replies"])  # Meta's limit
    handoff.refresh_from_db()
    assert handoff.csat_asked_at is not None and conversation.bot_active
    # Resumed again (already active): no second question.
    assert not hand_back(conversation, django_capture_on_commit_callbacks)
    assert [message["text"] for message in sent(graph)].count("How did we do?") == 1


@pytest.mark.parametrize(
    "why",
    ["nothing (so it is asked)", "csat off", "no handoff", "asked already", "outside the window", "console"],
)
def test_asked_unless(conversation, graph, settings, django_capture_on_commit_callbacks, why):
    conversation_bot_pause(conversation=conversation, by=None)
    if why != "no handoff":  # handed over while paused: asked unless `why`
        Handoff.objects.create(
            conversation=conversation,
            trigger="person",
            reason="x",
            alerted_at=timezone.now(),
            csat_asked_at=timezone.now() if why == "asked already" else None,
        )
    if why == "csat off":
        settings.CSAT_ENABLED = False
    if why == "outside the window":
        conversation.person_last_wrote_at = timezone.now() - timedelta(hours=25)
    if why == "console":
        conversation.identity.channel = "console"

    asked = why.startswith("nothing")
    assert hand_back(conversation, django_capture_on_commit_callbacks) is asked
    assert [message["text"] for message in sent(graph)] == (["How did we do?"] if asked else [])
    assert conversation.bot_active


def test_a_pause_after_the_handoff_was_over_asks_nothing(
    conversation, graph, django_capture_on_commit_callbacks, settings
):
    settings.CSAT_ENABLED = False
    handed_over(conversation)
    hand_back(conversation, django_capture_on_commit_callbacks)  # handed back with CSAT off: not asked
    settings.CSAT_ENABLED = True
    conversation_bot_pause(conversation=conversation, by=None)  # later, staff pause the bot themselves

    assert not hand_back(conversation, django_capture_on_commit_callbacks)


def test_the_answer_is_stored_thanked_once_counted_and_never_the_llms(
    conversation, graph, groq, django_capture_on_commit_callbacks
):
    handoff = handed_over(conversation)
    hand_back(conversation, django_capture_on_commit_callbacks)
    before = csat_counts()

    answer = rate(conversation, 4)
    rate(conversation, 5)  # the buttons tapped again: ignored

    handoff.refresh_from_db()
    assert (handoff.csat_score, handoff.csat_answered_at) == (4, answer.created_at)
    assert [message["text"] for message in sent(graph)][-2:] == [
        "How did we do?",
        "Thank you for telling us!",
    ]
    assert groq.calls() == []
    assert set(
        Message.objects.filter(details__has_key="quick_reply_payload").values_list("status", flat=True)
    ) == {"answered"}
    after = csat_counts()
    assert after["4"] - before["4"] == 1 and after["5"] == before["5"]


def test_a_stray_rating_is_ignored_and_the_llm_answers_only_the_rest(conversation, graph, groq):
    stray = Message.objects.create(
        conversation=conversation,
        role=Message.Role.CLIENT,
        text="3 ★★★",
        status=Message.Status.RECEIVED,
        details={"postback_payload": "CSAT_3"},
    )
    ask(conversation, "Do you ship to Oslo?")

    stray.refresh_from_db()
    assert stray.status == Message.Status.ANSWERED
    [call] = groq.calls()
    assert "★" not in call["prompt"].partition("<CURRENT_USER_QUERY>")[2]
    assert len(sent(graph)) == 1  # the answer to the question, no thanks


def test_a_rating_while_the_bot_is_paused_is_recorded_without_thanks(
    conversation, graph, django_capture_on_commit_callbacks
):
    handoff = handed_over(conversation)
    hand_back(conversation, django_capture_on_commit_callbacks)
    conversation_bot_pause(conversation=conversation, by=None)
    messages_before = len(sent(graph))

    rate(conversation, 2)

    handoff.refresh_from_db()
    assert handoff.csat_score == 2
    assert len(sent(graph)) == messages_before
