"""manage.py pages connect | list | disconnect | reencrypt, as an operator runs them."""

import io
import logging
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.core.management import execute_from_command_line
from django.db.models import TextField
from django.db.models.functions import Cast

from conversations.models import Page
from conversations.pages import pages_current
from conversations.services.pages import SUBSCRIBED_FIELDS
from devtools.processes import BASE_DIR
from tests.pages import page_connected
from tests.processes import process_environment

pytestmark = pytest.mark.django_db
TOKEN = "EAAGm0PX4ZCpsBAShopAarhusToken"
OTHER_TOKEN = "EAAGm0PX4ZCpsBAShopOdenseToken"
INSTAGRAM = ("17841400000000001", "shop.aarhus")


@pytest.fixture
def shop_token(graph, redis_conn):
    graph.page_add(token=TOKEN, page_id="2002", name="Shop Aarhus", instagram=INSTAGRAM)
    return TOKEN


def pages(*args: str, stdin: str = "") -> int:
    """Run `manage.py pages ...` as an operator would, `stdin` piped in; its exit status."""
    terminal, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        execute_from_command_line(["manage.py", "pages", *args])
    except SystemExit as exit:
        return exit.code
    finally:
        sys.stdin = terminal
    return 0


def raw_token(page_id: str) -> str:
    """The token as the database stores it."""
    return Page.objects.annotate(raw=Cast("access_token", TextField())).get(page_id=page_id).raw


def test_connect_asks_graph_subscribes_the_app_finds_instagram_and_stores_the_token_encrypted(
    graph, shop_token, capsys, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert pages("connect", "--token", shop_token) == 0

    assert capsys.readouterr().out.splitlines() == [
        "Connected Shop Aarhus (2002)",
        "Instagram: @shop.aarhus (17841400000000001)",
    ]
    assert [(call["kind"], call["token"]) for call in graph.calls()] == [
        ("page", TOKEN),
        ("subscribe", TOKEN),
        ("instagram_account", TOKEN),
    ]
    [subscribe] = graph.calls(kind="subscribe")
    assert subscribe["path"].endswith("/2002/subscribed_apps")
    assert subscribe["json"]["subscribed_fields"].split(",") == list(SUBSCRIBED_FIELDS)
    page = Page.objects.get()
    assert (page.page_id, page.name, page.instagram_account_id, page.token_state) == (
        "2002",
        "Shop Aarhus",
        "17841400000000001",
        Page.TokenState.WORKS,
    )
    assert page.access_token == TOKEN
    assert TOKEN not in raw_token("2002")  # encrypted at rest
    assert pages_current().for_event(platform="instagram", entry_id="17841400000000001").page_id == "2002"


def test_connect_reads_the_token_from_stdin_and_never_prints_it(graph, shop_token, capsys):
    assert pages("connect", stdin=f"{shop_token}\n") == 0

    out, err = capsys.readouterr()
    assert out.startswith("Connected Shop Aarhus (2002)")
    assert TOKEN not in out and TOKEN not in err
    assert Page.objects.get().access_token == TOKEN


@pytest.mark.parametrize("how", ["--token", "stdin"])
def test_a_refused_token_is_one_line_exit_1_nothing_stored_and_never_shown(
    graph, redis_conn, capsys, caplog, how
):
    graph.page_add(token=TOKEN, page_id="2002", name="Shop Aarhus")
    refused = "EAAGm0PX4ZCpsBAThisTokenIsNotKnown"

    with caplog.at_level(logging.DEBUG):
        status = pages("connect", "--token", refused) if how == "--token" else pages("connect", stdin=refused)

    out, err = capsys.readouterr()
    assert status == 1 and out == ""
    assert err.startswith("CommandError: Facebook refused the token: Invalid OAuth access token")
    assert len(err.splitlines()) == 1
    assert refused not in err and refused not in caplog.text
    assert all(refused not in str(record.args) for record in caplog.records)
    assert not Page.objects.exists()
    assert [call["kind"] for call in graph.calls()] == ["page"]  # not subscribed, not asked further


@pytest.mark.parametrize("token", ["", "   \n", "two words", "x" * 3000])
def test_what_cannot_be_a_token_is_refused_before_asking_graph(graph, redis_conn, capsys, token):
    assert pages("connect", stdin=token) == 1
    assert len(capsys.readouterr().err.splitlines()) == 1
    assert graph.calls() == [] and not Page.objects.exists()


def test_a_graph_failure_after_the_token_worked_stores_nothing(graph, shop_token, capsys):
    graph.script([{"on": "subscribe", "status": 403, "code": 200, "message": "(#200) Permissions error"}])

    assert pages("connect", "--token", shop_token) == 1

    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("CommandError: Not connected: (#200) Permissions error (HTTP 403, code 200")
    assert not Page.objects.exists()


def test_connecting_again_replaces_the_token_and_answers_a_disconnected_page_again(
    graph, shop_token, capsys, django_capture_on_commit_callbacks
):
    page_connected(graph, token=TOKEN, page_id="2002", name="Shop Aarhus")
    with django_capture_on_commit_callbacks(execute=True):
        assert pages("disconnect", "2002") == 0
    assert pages_current().get(page_id="2002") is None
    graph.page_add(token=OTHER_TOKEN, page_id="2002", name="Shop Aarhus")

    with django_capture_on_commit_callbacks(execute=True):
        assert pages("connect", "--token", OTHER_TOKEN) == 0

    page = Page.objects.get()
    assert (page.access_token, page.disconnected_at) == (OTHER_TOKEN, None)
    assert pages_current().get(page_id="2002").access_token == OTHER_TOKEN


def test_list_prints_one_line_per_page_and_the_environments(graph, redis_conn, settings, capsys):
    page_connected(graph, token=TOKEN, page_id="2002", name="Shop Aarhus", instagram=INSTAGRAM)
    page_connected(graph, token=OTHER_TOKEN, page_id="3003", name="Shop Odense")
    Page.objects.filter(page_id="3003").update(token_checked_at=None, token_state=Page.TokenState.UNCHECKED)
    settings.FACEBOOK_PAGE_ID = ""
    capsys.readouterr()

    assert pages("list") == 0

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(
        "2002  Shop Aarhus  Instagram: @shop.aarhus (17841400000000001)  token: works, checked "
    )
    assert lines[1] == "3003  Shop Odense  Instagram: none  token: not checked yet"
    assert lines[2] == (
        "every Page not connected here  (FACEBOOK_PAGE_ACCESS_TOKEN)  Instagram: none  token: from the environment"
    )


def test_disconnect_of_a_page_never_connected_is_one_line_and_exit_1(redis_conn, capsys):
    assert pages("disconnect", "4004") == 1
    assert (
        capsys.readouterr().err == "CommandError: No Page 4004 was ever connected (manage.py pages list).\n"
    )


def test_reencrypt_reports_a_token_no_key_decrypts(graph, redis_conn, capsys):
    page_connected(graph, token=TOKEN, page_id="2002", name="Shop Aarhus")
    page_connected(graph, token=OTHER_TOKEN, page_id="3003", name="Shop Odense")
    Page.objects.filter(page_id="3003").update(
        access_token=Fernet(Fernet.generate_key()).encrypt(b"x").decode()
    )

    capsys.readouterr()
    assert pages("reencrypt") == 1

    assert capsys.readouterr().err.splitlines()[-1] + "\n" == (
        "CommandError: 1 token(s) re-encrypted; the tokens of Shop Odense (3003) cannot be decrypted with "
        "SECRET_KEY, SECRET_KEY_FALLBACKS and FIELD_ENCRYPTION_SALTS: restore the old key, or connect those "
        "Pages again.\n"
    )


def manage_subprocess(*args: str, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=process_environment(**environment),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.django_db(transaction=True)
def test_after_rotating_the_secret_key_and_the_salt_reencrypt_leaves_every_token_readable_with_the_new_key(
    graph, redis_conn
):
    page_connected(graph, token=TOKEN, page_id="2002", name="Shop Aarhus")  # SECRET_KEY test-secret-key
    before = raw_token("2002")
    new_key_only = {"SECRET_KEY": "rotated-secret-key", "FIELD_ENCRYPTION_SALTS": "salt-2027"}
    rotating = {
        "SECRET_KEY": "rotated-secret-key",
        "SECRET_KEY_FALLBACKS": "test-secret-key",
        "FIELD_ENCRYPTION_SALTS": "salt-2027,messenger-ai.page-tokens",
    }
    assert manage_subprocess("pages", "reencrypt", **new_key_only).returncode == 1  # not yet readable

    result = manage_subprocess("pages", "reencrypt", **rotating)

    assert (result.returncode, result.stdout) == (0, "Re-encrypted 1 Page token(s) with the newest key.\n")
    assert raw_token("2002") != before
    check = manage_subprocess("pages", "reencrypt", **new_key_only)
    assert (check.returncode, check.stderr) == (0, "")
