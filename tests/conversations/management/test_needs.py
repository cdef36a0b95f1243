"""What each command needs (the Page token, the Groq key, the database, Redis) is checked before it
does anything, the same way in every command: the first one missing is one line on stderr and
exit 1, and nothing is stored or sent to Meta or Groq."""

import re
import subprocess
import sys

import pytest
from django.core.management import execute_from_command_line

from conversations.models import KnowledgeArticle, Message
from devtools.processes import BASE_DIR, free_port
from tests.pages import page_connected
from tests.processes import process_environment

PSID = "2400000000000001"
# What each command needs; every other failure below must not stop it.
NEEDS = {
    "send_message": ["token", "database"],
    "messenger_profile show": ["token", "database"],
    "messenger_profile apply": ["token", "database"],
    "pages list": ["database", "redis"],
    "knowledge_import": ["database", "redis"],
    "chat": ["groq", "database", "redis"],
}
LINES = {
    "token": "CommandError: FACEBOOK_PAGE_ACCESS_TOKEN is not set: this command reaches Messenger as the "
    "Page. Set it in the environment or in .env, or connect a Page (manage.py pages connect).",
    "groq": "CommandError: GROQ_API_KEY is not set: this command asks the LLM. Set it in the environment "
    "or in .env.",
    "redis": "CommandError: Redis is unreachable: Error 111 connecting to 127.0.0.1:{port}. Connection "
    "refused. Check REDIS_URL.",
}


@pytest.fixture
def article(tmp_path):
    path = tmp_path / "delivery.md"
    path.write_text("# Delivery\n\nWe ship to Norway.\n")
    return path


def argv(command: str, article) -> list[str]:
    args = {"send_message": [PSID, "Hi"], "knowledge_import": [str(article)]}.get(command, [])
    return [*command.split(), *args]


def manage(*args: str) -> int:
    """Run a command as `manage.py` would; its exit status."""
    try:
        execute_from_command_line(["manage.py", *args])
    except SystemExit as exit:
        return exit.code
    return 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("command", "need"),
    [(command, need) for command, needs in NEEDS.items() for need in needs if need != "database"],
)
def test_a_missing_setting_or_redis_out_of_reach_is_one_line_and_exit_1(
    command, need, graph, groq, settings, article, capsys
):
    port = free_port()
    if need == "token":
        settings.FACEBOOK_PAGE_ACCESS_TOKEN = ""
    elif need == "groq":
        settings.GROQ_API_KEY = ""
    else:
        settings.RQ_QUEUES = {"default": {"URL": f"redis://127.0.0.1:{port}/0"}}

    assert manage(*argv(command, article)) == 1

    assert capsys.readouterr() == ("", LINES[need].format(port=port) + "\n")
    assert (graph.calls(), groq.calls()) == ([], [])
    assert not Message.objects.exists() and not KnowledgeArticle.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("database", ["unreachable", "not migrated"])
@pytest.mark.parametrize("command", [command for command, needs in NEEDS.items() if "database" in needs])
def test_a_database_out_of_reach_or_not_migrated_is_one_line_and_exit_1(
    command, database, graph, groq, article, tmp_path
):
    url = (
        f"postgres://postgres@127.0.0.1:{free_port()}/messenger"
        if database == "unreachable"
        else f"sqlite:///{tmp_path / 'new.sqlite3'}"
    )

    result = subprocess.run(
        [sys.executable, "manage.py", *argv(command, article)],
        cwd=BASE_DIR,
        env=process_environment(DATABASE_URL=url, FACEBOOK_GRAPH_API_URL=graph.url, GROQ_BASE_URL=groq.url),
        input="Hello?\n",
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert (result.returncode, result.stdout) == (1, "")
    expected = (
        r"CommandError: The database is unreachable: .*Connection refused\. Check DATABASE_URL\.\n"
        if database == "unreachable"
        else r"CommandError: The database lacks \d+ migration\(s\): run `python manage.py migrate` first\.\n"
    )
    assert re.fullmatch(expected, result.stderr)
    assert (graph.calls(), groq.calls()) == ([], [])


@pytest.mark.django_db(transaction=True)
def test_redis_lost_while_a_command_runs_is_one_line_too(settings, article, capsys):
    # Redis answered the check, then the cache (where the import tells the search) is gone.
    port = free_port()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
        }
    }

    assert manage("knowledge_import", str(article)) == 1

    assert capsys.readouterr().err == (
        f"CommandError: Redis failed: Error 111 connecting to 127.0.0.1:{port}. Connection refused.\n"
    )
    assert KnowledgeArticle.objects.get().title == "Delivery"  # what was stored stays


@pytest.mark.django_db
def test_send_message_needs_no_redis(graph, settings, capsys, django_capture_on_commit_callbacks):
    settings.RQ_QUEUES = {"default": {"URL": f"redis://127.0.0.1:{free_port()}/0"}}

    with django_capture_on_commit_callbacks(execute=True):
        assert manage("send_message", "555", "Your parcel is here") == 0

    out, err = capsys.readouterr()
    assert out.strip() == Message.objects.get().external_id
    assert [call["json"]["message"]["text"] for call in graph.calls(kind="message")] == [
        "Your parcel is here"
    ]
    # The new contact's profile is fetched by the hourly sweep instead.
    assert "WARNING conversations.services.conversations: Profile job not queued (Redis unavailable)" in err


@pytest.mark.django_db(transaction=True)
def test_an_empty_secret_key_with_pages_connected_is_one_line_too(graph):
    # Connected Pages' tokens are encrypted with a key derived from SECRET_KEY.
    page_connected(graph, token="shop-token", page_id="2002", name="Shop Aarhus")

    result = subprocess.run(
        [sys.executable, "manage.py", "send_message", PSID, "Hi", "--page", "2002"],
        cwd=BASE_DIR,
        env=process_environment(SECRET_KEY="", FACEBOOK_GRAPH_API_URL=graph.url),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "CommandError: Configuration error: The SECRET_KEY setting must not be empty.\n"
    assert graph.calls(kind="message") == []
