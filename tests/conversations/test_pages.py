"""Several Pages and their Instagram accounts in one service: events routed by their entry's id, each
Page's token on every Graph call, and the Pages every process keeps in memory (conversations.pages)."""

import logging
import time
import uuid

import pytest
from cryptography.fernet import Fernet
from django.core import mail

from conversations import payloads
from conversations.knowledge.search import knowledge_search
from conversations.knowledge.services import knowledge_article_save
from conversations.models import KnowledgeArticle, Message, Page, SystemPrompt
from conversations.pages import PageRegistry, pages_forget
from conversations.services.conversations import contact_profile_fetch
from conversations.services.delivery import page_token_check
from conversations.services.pages import page_disconnect, page_settings_update
from conversations.services.replies import reply_produce
from devtools.standins.graph import PAGE_ID
from devtools.webhook import (
    IGSID,
    INSTAGRAM_ACCOUNT_ID,
    PSID,
    instagram_message,
    post_signed,
    postback,
    text_message,
)
from tests.conversations.test_alerts import channels, deliver_queued  # noqa: F401 -- a fixture
from tests.jobs import queued_reply_jobs
from tests.messenger.fixtures import fixture
from tests.pages import ENVIRONMENT_TOKEN, environment_page_registered, page_connected

pytestmark = pytest.mark.django_db
SHOP_TOKEN = "EAAshop-token"
SHOP_ID = "2002"


@pytest.fixture
def services(graph, groq, redis_conn):
    environment_page_registered(graph)
    return graph, groq


@pytest.fixture
def shop(services):
    """Shop Aarhus, connected, with the Instagram account the devtools' deliveries write to."""
    graph, _ = services
    return page_connected(
        graph,
        token=SHOP_TOKEN,
        page_id=SHOP_ID,
        name="Shop Aarhus",
        instagram=(INSTAGRAM_ACCOUNT_ID, "shop.aarhus"),
    )


def mid() -> str:
    return f"m_{uuid.uuid4().hex}"


def answer_newest() -> Message:
    """Run the newest client message's reply job here, as a worker would; that message."""
    message = Message.objects.filter(role=Message.Role.CLIENT).latest("created_at", "id")
    reply_produce(message_id=message.pk, final_attempt=True)
    return message


def sent(graph) -> list[tuple[str, str, str]]:
    """(token, recipient, text) of every message Graph accepted."""
    return [
        (call["token"], call["psid"], call["json"]["message"]["text"])
        for call in graph.calls(kind="message")
        if call["status"] == 200
    ]


# --- routing ----------------------------------------------------------------------------------


def test_a_connected_pages_message_is_stored_under_it_and_answered_with_its_token(client, services, shop):
    graph, groq = services
    post_signed(client, text_message(mid=mid(), text="Hi shop", page_id=SHOP_ID))

    message = answer_newest()

    identity = message.conversation.identity
    assert (identity.channel, identity.page_id, identity.external_id) == ("messenger", SHOP_ID, PSID)
    [(token, psid, text)] = sent(graph)
    assert (token, psid) == (SHOP_TOKEN, PSID) and text.startswith("Echo:")
    assert {call["token"] for call in graph.calls(kind="action")} == {SHOP_TOKEN}


def test_any_other_page_is_still_the_environments_when_facebook_page_id_is_unset(client, services, shop):
    graph, _ = services
    post_signed(client, text_message(mid=mid(), text="Hi test page", page_id=PAGE_ID))

    message = answer_newest()

    assert message.conversation.identity.page_id == PAGE_ID
    assert [token for token, _, _ in sent(graph)] == [ENVIRONMENT_TOKEN]


def test_an_instagram_message_goes_to_the_linked_page_and_is_answered_with_its_token(client, services, shop):
    graph, groq = services
    groq.script([{"text": " ".join(["A sentence of the long answer."] * 60)}])  # 1,800 characters
    post_signed(client, instagram_message(mid=mid(), text="Hej, do you ship?"))

    message = answer_newest()

    identity = message.conversation.identity
    assert (identity.channel, identity.page_id, identity.external_id) == ("instagram", SHOP_ID, IGSID)
    parts = sent(graph)
    assert [(token, psid) for token, psid, _ in parts] == [(SHOP_TOKEN, IGSID)] * 2
    assert all(len(text) <= 1000 for _, _, text in parts)
    assert " ".join(text for _, _, text in parts) == " ".join(["A sentence of the long answer."] * 60)


def test_an_instagram_persons_profile_is_asked_with_instagrams_fields_and_the_pages_token(
    client, services, shop
):
    graph, _ = services
    post_signed(client, instagram_message(mid=mid(), text="Hello"))
    contact = Message.objects.get().conversation.identity.contact

    contact_profile_fetch(contact_id=contact.pk)

    [call] = graph.calls(kind="profile")
    assert (call["token"], call["psid"]) == (SHOP_TOKEN, IGSID)
    assert call["query"]["fields"] == "name,username,profile_pic"
    contact.refresh_from_db()
    assert contact.name == f"Test User {IGSID[-4:]}"


def test_an_echo_typed_in_metas_instagram_inbox_is_staff_taking_over(client, services, shop):
    post_signed(client, instagram_message(mid=mid(), text="Hello"))
    echo = instagram_message(mid=mid(), text="Staff here", is_echo=True, app_id=263902037430900)
    event = echo["entry"][0]["messaging"][0]
    event["sender"], event["recipient"] = event["recipient"], event["sender"]

    post_signed(client, echo)

    staff = Message.objects.get(role=Message.Role.STAFF)
    assert staff.text == "Staff here"
    assert staff.conversation.identity.channel == "instagram"
    assert not staff.conversation.bot_active


def test_other_pages_and_instagram_accounts_are_logged_once_and_neither_stored_nor_answered(
    client, services, shop, settings, caplog
):
    settings.FACEBOOK_PAGE_ID = PAGE_ID  # the environment's token answers that Page only
    with caplog.at_level(logging.WARNING, logger="conversations.services.inbound"):
        for _ in range(2):
            assert post_signed(client, text_message(mid=mid(), page_id="3003")).status_code == 200
            assert (
                post_signed(client, instagram_message(mid=mid(), account_id="17841499999999999")).status_code
                == 200
            )

    assert not Message.objects.exists()
    assert queued_reply_jobs() == []
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2
    assert "page '3003'" in warnings[0] and "Instagram account '17841499999999999'" in warnings[1]


def test_a_disconnected_page_is_answered_by_nobody_not_even_the_environments_token(
    client, services, shop, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        page_disconnect(page_id=SHOP_ID)

    post_signed(client, text_message(mid=mid(), page_id=SHOP_ID))
    post_signed(client, instagram_message(mid=mid()))

    assert not Message.objects.exists()
    assert Page.objects.get(page_id=SHOP_ID).access_token is None


def test_a_reply_queued_before_its_page_was_disconnected_is_not_sent(
    client, services, shop, django_capture_on_commit_callbacks
):
    graph, _ = services
    post_signed(client, text_message(mid=mid(), page_id=SHOP_ID))
    with django_capture_on_commit_callbacks(execute=True):
        page_disconnect(page_id=SHOP_ID)

    message = answer_newest()

    assert sent(graph) == []
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert "Page 2002 is not connected" in message.error_detail


# --- the registry -----------------------------------------------------------------------------


@pytest.mark.postgres
def test_routing_a_known_page_adds_no_database_query(client, services, shop, django_assert_max_num_queries):
    post_signed(client, text_message(mid=mid(), text="first", page_id=SHOP_ID))
    post_signed(client, instagram_message(mid=mid(), text="first"))
    # What a returning sender's message cost before Pages, with the one Page from the
    # environment: two savepoints and their releases, the tombstone check, the conversation's
    # id, the insert and the last activity.
    with django_assert_max_num_queries(8):
        post_signed(client, text_message(mid=mid(), text="again", page_id=SHOP_ID))
    with django_assert_max_num_queries(8):
        post_signed(client, instagram_message(mid=mid(), text="again"))
    assert Message.objects.count() == 4


def test_a_connect_and_a_disconnect_are_seen_at_once_by_every_process(
    services, django_capture_on_commit_callbacks
):
    graph, _ = services
    web, worker = PageRegistry(), PageRegistry()  # two processes' registries
    assert SHOP_ID not in web.current().by_page_id and SHOP_ID not in worker.current().by_page_id

    page_connected(graph, token=SHOP_TOKEN, page_id=SHOP_ID, name="Shop Aarhus")
    assert web.current().get(page_id=SHOP_ID).access_token == SHOP_TOKEN
    assert worker.current().for_event(platform="messenger", entry_id=SHOP_ID).name == "Shop Aarhus"

    with django_capture_on_commit_callbacks(execute=True):
        page_disconnect(page_id=SHOP_ID)
    assert web.current().get(page_id=SHOP_ID) is None and worker.current().get(page_id=SHOP_ID) is None
    assert SHOP_ID in web.current().disconnected


def test_without_redis_the_pages_are_read_from_the_database(services, shop, settings, caplog):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2},
        }
    }
    assert PageRegistry().current().get(page_id=SHOP_ID).name == "Shop Aarhus"
    assert "the cache is unavailable" in caplog.text


@pytest.mark.usefixtures("channels")
def test_a_token_no_key_decrypts_is_refused_by_us_naming_the_page(client, services, shop):
    graph, groq = services
    post_signed(client, text_message(mid=mid(), page_id=SHOP_ID))
    # Written through the field, a token encrypted with a key this service lacks reads back as
    # that Fernet token: what a rotation without `pages reencrypt` leaves.
    Page.objects.filter(page_id=SHOP_ID).update(
        access_token=Fernet(Fernet.generate_key()).encrypt(b"x").decode()
    )
    pages_forget()

    message = answer_newest()

    assert sent(graph) == [] and groq.calls() == []
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED and "cannot be decrypted" in message.error_detail
    page = Page.objects.get(page_id=SHOP_ID)
    assert page.token_state == Page.TokenState.REFUSED and "cannot be decrypted" in page.token_error
    deliver_queued()
    [email] = mail.outbox
    assert email.subject == "Facebook refused the access token of Shop Aarhus (2002)"


@pytest.mark.usefixtures("channels")
def test_the_token_check_asks_each_page_with_its_own_token_and_alerts_the_one_refused(services, shop):
    graph, _ = services
    graph.reset()
    environment_page_registered(graph)  # the shop's token is now unknown to Graph: refused

    page_token_check()

    assert sorted(call["token"] for call in graph.calls(kind="page")) == sorted(
        [SHOP_TOKEN, ENVIRONMENT_TOKEN]
    )
    shop.refresh_from_db()
    assert shop.token_state == Page.TokenState.REFUSED and shop.token_checked_at is not None
    deliver_queued()
    [email] = mail.outbox
    assert email.subject == "Facebook refused the access token of Shop Aarhus (2002)"

    environment_page_registered(graph)
    graph.page_add(token=SHOP_TOKEN, page_id=SHOP_ID, name="Shop Aarhus")
    page_token_check()
    shop.refresh_from_db()
    assert (shop.token_state, shop.token_error) == (Page.TokenState.WORKS, "")


# --- per Page ---------------------------------------------------------------------------------


def test_each_page_answers_with_its_own_system_prompt_else_the_global_one(
    client, services, shop, django_capture_on_commit_callbacks
):
    _, groq = services
    SystemPrompt.objects.create(text="You answer for every Page.")
    shop.system_prompt = "You are the assistant of Shop Aarhus."
    with django_capture_on_commit_callbacks(execute=True):
        page_settings_update(page=shop)

    post_signed(client, text_message(mid=mid(), text="Question for the shop", page_id=SHOP_ID))
    answer_newest()
    post_signed(
        client, text_message(mid=mid(), text="Question for the test page", page_id=PAGE_ID, psid="555")
    )
    answer_newest()

    shop_prompt, other_prompt = (call["prompt"] for call in groq.calls())
    assert "You are the assistant of Shop Aarhus." in shop_prompt
    assert "You answer for every Page." not in shop_prompt
    assert "You answer for every Page." in other_prompt and "Shop Aarhus" not in other_prompt


def test_each_page_tells_a_person_handed_over_its_own_message_else_handoff_message(
    client, services, shop, settings, django_capture_on_commit_callbacks
):
    graph, _ = services
    shop.handoff_message = "Someone from Shop Aarhus will answer you here."
    with django_capture_on_commit_callbacks(execute=True):
        page_settings_update(page=shop)

    for page_id, psid in [(SHOP_ID, PSID), (PAGE_ID, "555")]:
        post_signed(
            client,
            postback(
                mid=mid(), title="Talk to a person", payload=payloads.HUMAN_AGENT, psid=psid, page_id=page_id
            ),
        )
        answer_newest()

    assert [(token, text) for token, _, text in sent(graph)] == [
        (SHOP_TOKEN, "Someone from Shop Aarhus will answer you here."),
        (ENVIRONMENT_TOKEN, settings.HANDOFF_MESSAGE),
    ]


def test_a_page_is_given_its_own_articles_and_those_for_every_page_never_another_pages(
    services, shop, django_capture_on_commit_callbacks
):
    graph, _ = services
    page_connected(graph, token="EAAodense", page_id="3003", name="Shop Odense")
    articles = [("Opening hours", None), ("Aarhus showroom", SHOP_ID), ("Odense showroom", "3003")]
    with django_capture_on_commit_callbacks(execute=True):  # the search counts its words again
        for title, page_id in articles:
            body = f"{title}: the showroom opens at nine."
            knowledge_article_save(article=KnowledgeArticle(title=title, body=body, page_id=page_id))

    def titles(page_id: str | None) -> set[str]:
        found = knowledge_search(text="when does the showroom open", page_id=page_id)
        return {article.title for article in found}

    assert titles(SHOP_ID) == {"Opening hours", "Aarhus showroom"}
    assert titles("3003") == {"Opening hours", "Odense showroom"}
    assert titles(PAGE_ID) == {"Opening hours"}


# --- Instagram's stories ----------------------------------------------------------------------


def now_stamped(envelope: dict) -> dict:
    """A recorded delivery as if sent now: within the 24-hour window."""
    now_ms = int(time.time() * 1000)
    entry = envelope["entry"][0]
    entry["time"] = entry["messaging"][0]["timestamp"] = now_ms
    return envelope


def test_a_story_mention_is_stored_and_answered_knowing_what_it_is(client, services, shop):
    graph, groq = services
    post_signed(client, now_stamped(fixture("instagram_story_mention")))

    message = answer_newest()

    assert message.attachments[0]["type"] == "story_mention"
    [call] = groq.calls()
    query = call["prompt"].split("<CURRENT_USER_QUERY>")[1]
    assert "[the user mentioned you in their story]" in query
    [(_, psid, text)] = sent(graph)
    assert psid == IGSID and text.startswith("Echo:")  # the LLM's answer, not the fixed "text only" one


def test_a_reply_to_a_story_is_stored_and_answered_knowing_which_story(client, services, shop):
    _, groq = services
    delivery = now_stamped(fixture("instagram_story_reply"))
    story = delivery["entry"][0]["messaging"][0]["message"]["reply_to"]["story"]

    post_signed(client, delivery)
    message = answer_newest()

    assert message.details["story_reply"] == {"id": story["id"], "url": story["url"]}
    query = groq.calls()[0]["prompt"].split("<CURRENT_USER_QUERY>")[1]
    assert f"[the user replied to your story: {story['url']}]\nIs this one still available in blue?" in query


def test_an_unsent_instagram_message_is_acknowledged_and_ignored(client, services, shop):
    assert post_signed(client, now_stamped(fixture("instagram_deleted"))).status_code == 200
    assert not Message.objects.exists()
