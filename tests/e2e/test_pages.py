"""Two Pages and an Instagram account answered by one service: the real web and worker processes,
the real `manage.py pages` commands, the Graph and Groq stand-ins."""

import subprocess
import sys
import uuid

import pytest

from devtools.processes import BASE_DIR, wait_for
from devtools.standins.graph import PAGE_ID, PAGE_NAME
from devtools.webhook import instagram_message, text_message
from tests.e2e.stack import settle, stack_running

pytestmark = pytest.mark.postgres
ENVIRONMENT_TOKEN = "test-page-token"  # tests/settings.py
AARHUS = {"token": "EAAshop-aarhus", "page_id": "2002", "name": "Shop Aarhus"}
ODENSE = {"token": "EAAshop-odense", "page_id": "3003", "name": "Shop Odense"}
AARHUS_INSTAGRAM = ("17841400000000002", "shop.aarhus")


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """Web and worker whose environment's token answers the stand-in's own Page only."""
    with stack_running(
        django_db_blocker=django_db_blocker,
        log_dir=tmp_path_factory.mktemp("processes"),
        FACEBOOK_PAGE_ID=PAGE_ID,
    ) as started:
        yield started


def manage(stack, *args: str, stdin: str = "", **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**stack.env, **environment},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def pages(service):
    """Shop Aarhus (with its Instagram account) and Shop Odense connected by an operator, while the
    web and worker processes run."""
    service.graph.page_add(token=ENVIRONMENT_TOKEN, page_id=PAGE_ID, name=PAGE_NAME)
    service.graph.page_add(**AARHUS, instagram=AARHUS_INSTAGRAM)
    service.graph.page_add(**ODENSE)
    for page in (AARHUS, ODENSE):
        result = manage(service, "pages", "connect", stdin=page["token"] + "\n")
        assert result.returncode == 0, result.stderr
        assert page["token"] not in result.stdout + result.stderr
    return service


def person() -> str:
    return str(uuid.uuid4().int)[:16]


def replies(stack) -> dict[str, list[tuple[str, str]]]:
    """(token, text) of each message Graph accepted, by the person it went to."""
    sent: dict[str, list[tuple[str, str]]] = {}
    for call in stack.graph.calls(kind="message"):
        if call["status"] == 200:
            sent.setdefault(call["psid"], []).append((call["token"], call["json"]["message"]["text"]))
    return sent


def test_two_pages_and_an_instagram_account_are_each_answered_with_their_own_token(pages):
    aarhus, odense, instagram, environment = person(), person(), person(), person()
    strangers = {"messenger": person(), "instagram": person()}
    pages.post(text_message(mid=f"m_{uuid.uuid4().hex}", text=f"{aarhus} hej", psid=aarhus, page_id="2002"))
    pages.post(text_message(mid=f"m_{uuid.uuid4().hex}", text=f"{odense} hej", psid=odense, page_id="3003"))
    pages.post(
        instagram_message(
            mid=f"m_{uuid.uuid4().hex}", text="hej", igsid=instagram, account_id=AARHUS_INSTAGRAM[0]
        )
    )
    pages.post(text_message(mid=f"m_{uuid.uuid4().hex}", text="hi", psid=environment, page_id=PAGE_ID))
    # A Page and an Instagram account the app is subscribed to but this service does not answer.
    pages.post(
        text_message(mid=f"m_{uuid.uuid4().hex}", text="hi", psid=strangers["messenger"], page_id="9009")
    )
    pages.post(
        instagram_message(
            mid=f"m_{uuid.uuid4().hex}", igsid=strangers["instagram"], account_id="17841499999999999"
        )
    )

    wait_for(lambda: {aarhus, odense, instagram, environment} <= set(replies(pages)), message="four replies")
    settle()

    sent = replies(pages)
    assert [token for token, _ in sent[aarhus]] == [AARHUS["token"]]
    assert [token for token, _ in sent[odense]] == [ODENSE["token"]]
    assert [token for token, _ in sent[instagram]] == [AARHUS["token"]]
    assert [token for token, _ in sent[environment]] == [ENVIRONMENT_TOKEN]
    assert not set(strangers.values()) & {call["psid"] for call in pages.graph.calls()}
    assert len(pages.groq.calls()) == 4
    profile = next(call for call in pages.graph.calls(kind="profile") if call["psid"] == instagram)
    assert (profile["token"], profile["query"]["fields"]) == (AARHUS["token"], "name,username,profile_pic")


def test_a_disconnected_page_is_no_longer_answered_at_once(pages):
    result = manage(pages, "pages", "disconnect", "3003")
    assert (result.returncode, result.stdout) == (
        0,
        "Disconnected Shop Odense (3003): its conversations stay.\n",
    )
    odense = person()

    pages.post(text_message(mid=f"m_{uuid.uuid4().hex}", text="hej", psid=odense, page_id="3003"))
    settle(3)

    assert odense not in replies(pages)
    assert pages.groq.calls() == []


def test_after_a_key_rotation_and_reencrypt_the_processes_with_the_new_key_alone_answer_every_page(pages):
    rotated = {
        "SECRET_KEY": "rotated-secret-key",
        "SECRET_KEY_FALLBACKS": pages.env["SECRET_KEY"],
        "FIELD_ENCRYPTION_SALTS": "salt-2027,messenger-ai.page-tokens",
    }
    result = manage(pages, "pages", "reencrypt", **rotated)
    assert (result.returncode, result.stdout) == (0, "Re-encrypted 2 Page token(s) with the newest key.\n")

    pages.restart(
        SECRET_KEY="rotated-secret-key", SECRET_KEY_FALLBACKS="", FIELD_ENCRYPTION_SALTS="salt-2027"
    )
    aarhus, instagram = person(), person()
    pages.post(text_message(mid=f"m_{uuid.uuid4().hex}", text="hej", psid=aarhus, page_id="2002"))
    pages.post(
        instagram_message(mid=f"m_{uuid.uuid4().hex}", igsid=instagram, account_id=AARHUS_INSTAGRAM[0])
    )

    wait_for(lambda: {aarhus, instagram} <= set(replies(pages)), message="the replies")
    sent = replies(pages)
    assert [token for token, _ in sent[aarhus] + sent[instagram]] == [AARHUS["token"]] * 2
