"""A person deletes their own data from Messenger: ask, confirm or cancel, deleted, told once."""

import uuid

import pytest

from conversations.models import Contact, Message
from conversations.services.conversations import conversation_bot_pause
from conversations.services.data_deletion import DELETED_TEXT, KEPT_TEXT, QUESTION_TEXT
from conversations.services.inbound import inbound_events_store
from conversations.services.replies import reply_produce
from devtools.webhook import postback, text_message
from messenger.parser import parse_webhook

pytestmark = pytest.mark.django_db
PSID = "7395028461739201"


@pytest.fixture
def services(graph, groq, redis_conn):
    return graph, groq


def tap(event: dict) -> None:
    """The webhook stores the tap; the reply job answers it."""
    inbound_events_store(events=parse_webhook(event))
    message = Message.objects.filter(role=Message.Role.CLIENT).order_by("-id").first()
    reply_produce(message_id=message.pk, final_attempt=True)


def menu_tap() -> None:
    tap(postback(mid=f"m_{uuid.uuid4().hex}", title="Delete my data", payload="DELETE_MY_DATA", psid=PSID))


def quick_reply(payload: str, title: str) -> None:
    tap(text_message(mid=f"m_{uuid.uuid4().hex}", text=title, psid=PSID, quick_reply_payload=payload))


def sent(graph) -> list[dict]:
    return [call["json"]["message"] for call in graph.calls(kind="message") if call["status"] == 200]


def test_the_menu_item_asks_to_confirm_with_two_quick_replies_and_no_llm(services):
    graph, groq = services

    menu_tap()

    [question] = sent(graph)
    assert question["text"] == QUESTION_TEXT
    assert [(button["title"], button["payload"]) for button in question["quick_replies"]] == [
        ("Yes, delete it", "DELETE_MY_DATA_CONFIRM"),
        ("No, keep it", "DELETE_MY_DATA_CANCEL"),
    ]
    assert groq.calls() == []


def test_confirming_deletes_the_person_and_everything_and_says_so_once(services):
    graph, groq = services
    menu_tap()

    quick_reply("DELETE_MY_DATA_CONFIRM", "Yes, delete it")

    assert not Contact.objects.exists() and not Message.objects.exists()
    assert [message["text"] for message in sent(graph)] == [QUESTION_TEXT, DELETED_TEXT]
    assert groq.calls() == []


def test_cancelling_keeps_everything(services):
    graph, _ = services
    menu_tap()

    quick_reply("DELETE_MY_DATA_CANCEL", "No, keep it")

    assert Contact.objects.count() == 1 and Message.objects.filter(role=Message.Role.CLIENT).count() == 2
    assert sent(graph)[-1]["text"] == KEPT_TEXT


def test_a_paused_bot_does_not_hold_up_a_deletion(services):
    graph, _ = services
    menu_tap()
    conversation_bot_pause(conversation=Message.objects.first().conversation, by=None)

    quick_reply("DELETE_MY_DATA_CONFIRM", "Yes, delete it")

    assert not Contact.objects.exists()


def test_a_confirmation_for_someone_already_deleted_is_harmless(services):
    graph, _ = services
    menu_tap()
    quick_reply("DELETE_MY_DATA_CONFIRM", "Yes, delete it")

    quick_reply("DELETE_MY_DATA_CONFIRM", "Yes, delete it")  # a second tap, after the deletion

    assert not Contact.objects.exists() and not Message.objects.exists()
    assert [message["text"] for message in sent(graph)] == [QUESTION_TEXT, DELETED_TEXT, DELETED_TEXT]


def test_a_replayed_request_after_the_deletion_brings_nothing_back(services):
    graph, groq = services
    request = postback(
        mid=f"m_{uuid.uuid4().hex}", title="Delete my data", payload="DELETE_MY_DATA", psid=PSID
    )
    tap(request)
    quick_reply("DELETE_MY_DATA_CONFIRM", "Yes, delete it")

    inbound_events_store(events=parse_webhook(request))  # Meta retries the menu tap, late

    assert not Contact.objects.exists() and not Message.objects.exists()
    assert [message["text"] for message in sent(graph)] == [QUESTION_TEXT, DELETED_TEXT]

    # Writing again later, they are someone new to the service.
    tap(text_message(mid=f"m_{uuid.uuid4().hex}", text="Hello again", psid=PSID))
    assert Contact.objects.count() == 1 and len(groq.calls()) == 1
