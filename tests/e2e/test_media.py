"""What people send besides plain text, through the real web and worker processes: voice messages
and photos read before the reply, a refused file, replies to a message, reactions and edits."""

import uuid

import pytest

from conversations.models import Message, MessageAttachment
from devtools.processes import wait_for
from devtools.standins.groq import image_description, transcript_of
from devtools.webhook import attachments_message, message_edit, reaction, text_message
from tests.e2e.stack import settle, stack_running

pytestmark = pytest.mark.postgres
VOICE = b"\x00\x00\x00\x18ftypM4A Hi, my order 4471 has not arrived"
PHOTO = b"\xff\xd8\xff\xe0 a parcel with a crushed corner"


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """The stack, fetching media from the Graph stand-in's CDN on 127.0.0.1 over http."""
    with stack_running(
        django_db_blocker=django_db_blocker,
        log_dir=tmp_path_factory.mktemp("processes"),
        MEDIA_ALLOW_HTTP="True",
        MEDIA_ALLOWED_HOSTS="127.0.0.1",
    ) as started:
        yield started


@pytest.fixture
def psid() -> str:
    return str(uuid.uuid4().int)[:16]


def mid() -> str:
    return f"m_{uuid.uuid4().hex}"


def query_of(prompt: str) -> str:
    return prompt.split("<CURRENT_USER_QUERY>\n")[1].split("\n</CURRENT_USER_QUERY>")[0]


def chat_prompts(service, psid: str) -> list[str]:
    return [call["prompt"] for call in service.groq.calls(kind="chat") if psid in call["prompt"]]


def test_a_voice_message_and_a_photo_are_understood_and_their_words_reach_the_prompt(service, psid):
    voice = service.graph.cdn_add(name=f"{psid}.mp4", body=VOICE, content_type="audio/mp4")
    photo = service.graph.cdn_add(name=f"{psid}.jpg", body=PHOTO, content_type="image/jpeg")

    service.post(attachments_message(mid=mid(), psid=psid, attachments=[("audio", voice), ("image", photo)]))
    [reply] = wait_for(lambda: service.sent_to(psid), message="the reply")
    settle()

    [chat] = service.groq.calls(kind="chat")
    assert query_of(chat["prompt"]) == (
        f"[the user sent a voice message, which says: {transcript_of(VOICE)}]\n"
        f"[the user sent an image, which shows: {image_description(PHOTO)}]"
    )
    assert [call["kind"] for call in service.groq.calls()] == ["transcription", "vision", "chat"]
    assert service.sent_to(psid) == [reply]
    kept = MessageAttachment.objects.filter(message__conversation__identity__external_id=psid)
    assert sorted(kept.values_list("kind", "state")) == [("audio", "understood"), ("image", "understood")]
    assert {attachment.file.read() for attachment in kept} == {VOICE, PHOTO}


def test_a_file_on_a_refused_host_is_never_fetched_and_the_person_is_still_answered(service, psid):
    # The same CDN under another name, which MEDIA_ALLOWED_HOSTS does not list.
    voice = service.graph.cdn_add(name=f"{psid}.mp4", body=VOICE, content_type="audio/mp4")

    service.post(
        attachments_message(
            mid=mid(), psid=psid, attachments=[("audio", voice.replace("127.0.0.1", "localhost"))]
        )
    )
    [reply] = wait_for(lambda: service.sent_to(psid), message="the reply")
    settle()

    assert service.graph.calls(kind="cdn") == [] and service.groq.calls(kind="transcription") == []
    [chat] = service.groq.calls(kind="chat")
    assert query_of(chat["prompt"]) == "[the user sent a voice message that could not be read]"
    assert service.sent_to(psid) == [reply]


def test_a_reply_to_our_message_shows_it_and_a_reaction_is_in_the_history_but_not_answered(service, psid):
    service.groq.script([{"on": "chat", "text": "We ship on Mondays."}])
    service.post(text_message(mid=mid(), psid=psid, text=f"{psid} when do you ship?"))
    [answer] = wait_for(lambda: service.sent_to(psid), message="the first reply")
    ours = Message.objects.get(conversation__identity__external_id=psid, role=Message.Role.AI)

    service.post(reaction(mid=ours.external_id, emoji="❤", psid=psid))
    wait_for(lambda: Message.objects.get(pk=ours.pk).reaction == "❤", message="the reaction stored")
    settle()
    assert len(service.sent_to(psid)) == 1 and len(chat_prompts(service, psid)) == 1  # not answered

    service.post(text_message(mid=mid(), psid=psid, text="to Lisbon?", reply_to_mid=ours.external_id))
    wait_for(lambda: len(service.sent_to(psid)) == 2, message="the second reply")

    prompt = chat_prompts(service, psid)[-1]
    assert answer == "We ship on Mondays."
    assert query_of(prompt) == '[replying to the assistant\'s message: "We ship on Mondays."]\nto Lisbon?'
    history = prompt.split("<HISTORY>\n")[1].split("\n</HISTORY>")[0]
    assert history.splitlines()[-2:] == [
        "assistant: We ship on Mondays.",
        'user: [the user reacted ❤ to: "We ship on Mondays."]',
    ]


def test_an_edit_before_the_reply_is_answered_with_the_new_text(service, psid):
    service.groq.script([{"on": "chat", "delay": 1.5}])  # the first reply holds the conversation
    service.post(text_message(mid=mid(), psid=psid, text=f"{psid} hello"))
    wait_for(lambda: chat_prompts(service, psid), message="the first LLM call")
    typo = mid()
    service.post(text_message(mid=typo, psid=psid, text="do you ship to Denmrak?"))
    service.post(message_edit(mid=typo, psid=psid, text="do you ship to Denmark?"))

    wait_for(lambda: len(service.sent_to(psid)) == 2, message="both replies")
    settle()

    prompts = chat_prompts(service, psid)
    assert len(prompts) == 2
    assert "Denmark" in query_of(prompts[-1]) and "Denmrak" not in prompts[-1]


def test_an_edit_of_an_answered_message_is_stored_and_not_answered_again(service, psid):
    asked = mid()
    service.post(text_message(mid=asked, psid=psid, text=f"{psid} do you ship to Denmrak?"))
    wait_for(lambda: service.sent_to(psid), message="the reply")

    service.post(message_edit(mid=asked, psid=psid, text=f"{psid} do you ship to Denmark?"))
    wait_for(lambda: "Denmark" in Message.objects.get(external_id=asked).text, message="the edit stored")
    settle()

    assert len(service.sent_to(psid)) == 1 and len(chat_prompts(service, psid)) == 1
    assert Message.objects.get(external_id=asked).details["edit"]["original_text"].endswith("Denmrak?")
