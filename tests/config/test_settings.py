"""Settings rules: the web and worker processes need the production secrets, management commands
do not; DEBUG runs with warnings; every setting read is documented in .env.example and docs/settings.md.
"""

import os
import re
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from devtools.processes import BASE_DIR, Process
from tests.processes import process_environment

SECRETS = [
    "SECRET_KEY",
    "FACEBOOK_APP_SECRET",
    "FACEBOOK_VERIFY_TOKEN",
    "GROQ_API_KEY",
]


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def environment_without_secrets() -> dict[str, str]:
    # Empty, not absent: tests/settings.py put them in os.environ, and a .env must not fill them in.
    return process_environment(DEBUG="False", **{name: "" for name in SECRETS})


@pytest.mark.parametrize("process_name", ["web", "worker"])
def test_process_refuses_to_start_without_production_secrets(process_name, tmp_path):
    process = Process(process_name, environment_without_secrets(), tmp_path)
    try:
        returncode = process.wait(timeout=60)
    finally:
        process.stop()
    output_lines = [line for line in process.output().splitlines() if "Configuration error" in line]
    assert returncode != 0
    assert output_lines == [
        "Configuration error: SECRET_KEY, FACEBOOK_APP_SECRET, FACEBOOK_VERIFY_TOKEN, "
        "GROQ_API_KEY must be set when DEBUG is off."
    ]
    assert "Traceback" not in process.output()


@pytest.mark.parametrize("missing", SECRETS)
def test_each_missing_secret_is_named(missing):
    result = run_python("import config.wsgi", process_environment(DEBUG="False", **{missing: ""}))
    assert result.returncode == 1
    assert result.stderr.strip() == f"Configuration error: {missing} must be set when DEBUG is off."


@pytest.mark.parametrize(
    "command", [["migrate", "--plan"], ["showmigrations"], ["createsuperuser", "--help"], ["--help"]]
)
def test_management_commands_work_without_the_secrets(command):
    result = manage(*command, env=environment_without_secrets())
    assert result.returncode == 0, result.stderr
    assert "Configuration error" not in result.stderr


def test_check_deploy_names_each_missing_secret():
    result = manage("check", "--deploy", env=environment_without_secrets())
    assert result.returncode == 1
    # The ids stay as they were when the Page token was one of them (E004, retired).
    for number, name in zip((1, 2, 3, 5), SECRETS, strict=True):
        assert f"(config.E{number:03d}) {name} is not set." in result.stderr
    assert "Traceback" not in result.stderr


def test_check_deploy_is_quiet_about_secrets_that_are_set():
    result = manage("check", "--deploy", env=process_environment(DEBUG="False"))
    assert "config.E" not in result.stderr


BAD_HOURS = "mon-fry 09:00-17:00"
BAD_HOURS_ERROR = 'BUSINESS_HOURS: unknown day "fry" in "mon-fry 09:00-17:00"'


def test_check_names_the_bad_part_of_business_hours():
    result = manage("check", env=process_environment(BUSINESS_HOURS=BAD_HOURS))
    assert result.returncode == 1
    assert f"(config.E013) {BAD_HOURS_ERROR}" in result.stderr
    assert "Traceback" not in result.stderr
    assert manage("check", env=process_environment(BUSINESS_HOURS="mon-fri 09:00-17:00")).returncode == 0


@pytest.mark.parametrize(
    ("process_name", "says"), [("web", "Configuration error: "), ("worker", "(config.E013) ")]
)
def test_process_refuses_to_start_with_business_hours_it_cannot_read(process_name, says, tmp_path):
    process = Process(process_name, process_environment(BUSINESS_HOURS=BAD_HOURS), tmp_path)
    try:
        returncode = process.wait(timeout=60)
    finally:
        process.stop()
    assert returncode != 0
    assert f"{says}{BAD_HOURS_ERROR}" in process.output()
    assert "Traceback" not in process.output()


def test_debug_starts_without_secrets_and_warns():
    env = process_environment(DEBUG="True", **{name: "" for name in SECRETS})
    result = run_python("import django; django.setup(); print('started')", env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"
    assert "GROQ_API_KEY" in result.stderr and "DEBUG is on" in result.stderr


def test_production_defaults_are_secure():
    # No SECURE_PROXY_SSL_HEADER: Django would believe X-Forwarded-Proto from any client, where
    # gunicorn's wsgi.url_scheme believes only FORWARDED_ALLOW_IPS (tests/config/test_gunicorn.py).
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER)"
    )
    result = run_python(code, process_environment(DEBUG="False"))
    assert result.stdout.split() == ["False", "True", "True", "None"]


def test_every_documented_variable_has_its_default():
    names = [
        "FACEBOOK_GRAPH_API_VERSION",
        "FACEBOOK_GRAPH_API_URL",
        "FACEBOOK_RATE_LIMIT_MESSAGES_PER_MINUTE",
        "GROQ_MODEL",
        "LLM_HISTORY_LIMIT",
        "ALLOWED_HOSTS",
        "FACEBOOK_APP_ID",
    ]
    env = process_environment()
    for name in names:
        env.pop(name, None)
    code = "import django; django.setup(); from django.conf import settings as s; " + "; ".join(
        f"print(repr(s.{name}))" for name in names
    )
    result = run_python(code, env)
    assert result.stdout.splitlines() == [
        "'v24.0'",
        "'https://graph.facebook.com'",
        "10",
        "'openai/gpt-oss-120b'",
        "50",
        "['localhost', '127.0.0.1']",
        "''",
    ]


def test_every_setting_read_is_in_env_example_and_docs_settings():
    # Everything is read in config/settings.py, the processes' knobs too (config/gunicorn.py
    # and rqworkers take them from there): the Procfile names no variable.
    settings_source = (BASE_DIR / "config" / "settings.py").read_text()
    read = set(re.findall(r'\benv(?:\.\w+)?\(\s*"(\w+)"', settings_source))
    env_example = (BASE_DIR / ".env.example").read_text()
    example = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", env_example, re.MULTILINE))
    # The first cell of each row of docs/settings.md's tables names one variable, or several.
    settings_page = (BASE_DIR / "docs" / "settings.md").read_text()
    first_cells = re.findall(r"^\| ((?:`[A-Z][A-Z0-9_]*`(?:, )?)+) \|", settings_page, re.MULTILINE)
    documented = {name for cell in first_cells for name in re.findall(r"`(\w+)`", cell)}

    assert "${" not in (BASE_DIR / "Procfile").read_text()
    assert {
        "DEBUG",
        "SECRET_KEY",
        "DATABASE_URL",
        "PORT",
        "WEB_CONCURRENCY",
        "RQ_WORKERS",
        "GROQ_BASE_URL",
    } <= read
    assert example == read, f"not in .env.example: {read - example}; not read: {example - read}"
    assert documented == read, f"not in docs/settings.md: {read - documented}; not read: {documented - read}"


# PostgreSQL prepares a statement the connection runs again and again, so it is parsed and
# planned once; behind an old PgBouncer the operator turns that off in DATABASE_URL.
PREPARED_STATEMENTS = (
    "import django; django.setup(); from django.db import connection; "
    "query = 'SELECT count(*) FROM pg_class WHERE relname = %s'; "
    "[connection.cursor().execute(query, ['x']) for _ in range(6)]; "
    "cursor = connection.cursor(); cursor.execute('SELECT count(*) FROM pg_prepared_statements'); "
    "print(cursor.fetchone()[0] > 0)"
)


@pytest.mark.postgres
@pytest.mark.parametrize(("url_options", "prepared"), [("", "True"), ("?server_side_binding=false", "False")])
def test_repeated_statements_are_prepared_unless_turned_off(db, url_options, prepared):
    env = process_environment(DEBUG="True")
    result = run_python(PREPARED_STATEMENTS, {**env, "DATABASE_URL": env["DATABASE_URL"] + url_options})
    assert result.stdout.split() == [prepared], result.stderr


def test_a_bad_email_url_starts_all_the_same_and_check_deploy_says_so():
    env = process_environment(DEBUG="False", EMAIL_URL="smtps//oops")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "(config.E010) EMAIL_URL is not an email URL" in result.stderr
    assert run_python("import config.wsgi; print('started')", env).stdout.strip() == "started"


def environment_of_a_new_machine(tmp_path, **variables: str) -> dict[str, str]:
    """A shell with nothing of the service's set, as on a fresh clone: the suite's own database,
    Redis and secrets (tests/settings.py put them in os.environ) left out."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        **variables,
    }


def test_env_example_copied_unchanged_configures_nothing(tmp_path):
    # As `cp .env.example .env`; and its empty lines set in the environment too, as docker
    # compose's env_file hands them over (the groq SDK once read GROQ_BASE_URL="" itself).
    example = (BASE_DIR / ".env.example").read_text()
    empty_lines = re.findall(r"^([A-Z][A-Z0-9_]*)=$", example, re.MULTILINE)
    env = environment_of_a_new_machine(
        tmp_path, ENV_FILE=str(BASE_DIR / ".env.example"), GROQ_BASE_URL="", **dict.fromkeys(empty_lines, "")
    )
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "from conversations.llm import get_groq_client; "
        "print(s.DEBUG, s.DATABASES['default']['ENGINE'], s.REDIS_URL, s.PORT, get_groq_client().base_url)"
    )
    result = run_python(code, env)

    # `make run` turns DEBUG on unless something sets it: .env.example must not.
    assert not re.search(r"^DEBUG=", example, re.MULTILINE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "False",
        "django.db.backends.sqlite3",
        "redis://localhost:6379/0",
        "8000",
        "https://api.groq.com",
    ]
    check = manage("check", env=env)
    assert check.returncode == 0, check.stderr
    assert "System check identified no issues" in check.stdout


def test_the_environment_wins_over_the_env_file(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("PORT=8111\nRQ_WORKERS=3\nWEB_THREADS=\n")
    env = environment_of_a_new_machine(tmp_path, ENV_FILE=str(env_file), PORT="8222", WEB_THREADS="")
    code = "import django; django.setup(); from django.conf import settings as s; print(s.PORT, s.RQ_WORKERS, s.WEB_THREADS)"
    assert run_python(code, env).stdout.split() == ["8222", "3", "4"]


def test_site_url_is_an_allowed_host_and_a_trusted_origin(tmp_path):
    # Going live through a tunnel: its host answers, and the admin's forms may come from it.
    env = environment_of_a_new_machine(tmp_path, SITE_URL="https://bot-1234.ngrok-free.app", DEBUG="True")
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "from django.test import Client; "
        "print(Client().get('/privacy', HTTP_HOST='bot-1234.ngrok-free.app').status_code, "
        "Client().get('/privacy', HTTP_HOST='elsewhere.example').status_code, *s.CSRF_TRUSTED_ORIGINS)"
    )
    result = run_python(code, env)
    assert result.stdout.split() == ["200", "400", "https://bot-1234.ngrok-free.app"], result.stderr


def test_lists_are_read_as_people_write_them_and_a_bad_proxy_entry_is_a_check_error(tmp_path):
    # "a, b" is two entries, not "a" and " b" that match nothing; a typo is named, never a 500.
    env = environment_of_a_new_machine(
        tmp_path,
        FORWARDED_ALLOW_IPS="127.0.0.1, 10.0.0.0/8, proxy.local,",
        ALLOWED_HOSTS="a.example, b.example",
    )
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "from config.proxy import client_ip; from django.test import RequestFactory; "
        "print(*s.FORWARDED_ALLOW_IPS, *s.ALLOWED_HOSTS, sep='|'); "
        "print(client_ip(RequestFactory().get('/', REMOTE_ADDR='10.1.2.3', HTTP_X_FORWARDED_FOR='203.0.113.9')))"
    )
    result = run_python(code, env)
    assert result.stdout.splitlines() == [
        "127.0.0.1|10.0.0.0/8|proxy.local|a.example|b.example|localhost",  # SITE_URL adds its host
        "203.0.113.9",
    ], result.stderr

    check = manage("check", env=env)
    assert check.returncode == 1
    assert "config.E011" in check.stderr and "'proxy.local'" in check.stderr


@pytest.mark.parametrize("value", ["yes", "true", "enabled"])
def test_comment_replies_other_than_off_or_on_is_a_check_error(settings, value):
    settings.COMMENT_REPLIES = value

    with pytest.raises(SystemCheckError, match=rf"config\.E014.*COMMENT_REPLIES is '{value}'"):
        call_command("check")


def test_comment_replies_is_read_in_any_case_with_spaces_around(tmp_path):
    env = environment_of_a_new_machine(tmp_path, COMMENT_REPLIES=" On ", COMMENT_KEYWORDS="price, Porto ,")
    code = "import django; django.setup(); from django.conf import settings as s; print(s.COMMENT_REPLIES, *s.COMMENT_KEYWORDS, sep='|')"
    assert run_python(code, env).stdout.strip() == "on|price|Porto"
