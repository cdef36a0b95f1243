"""The image: what the build context leaves out (.dockerignore), and the command the Dockerfile
and docker-compose.yml run (config.procfile). No Docker engine here, so .dockerignore is read
the way Docker reads it."""

import re
import subprocess
import sys

import pytest
import yaml

from devtools.processes import BASE_DIR
from tests.processes import process_environment

NEVER_IN_THE_IMAGE = [
    ".env",
    ".env.production",
    "var/db.sqlite3",
    "var/redis/dump.rdb",
    "var/metrics/counter_1.db",
    ".git/config",
    ".venv/bin/python",
    "conversations/__pycache__/models.cpython-311.pyc",
    "tests/.pytest_cache/v/cache/lastfailed",
    ".pytest_cache/README.md",
    ".ruff_cache/CACHEDIR.TAG",
    "test-artifacts/inbox.png",
]
IN_THE_IMAGE = [
    "manage.py",
    "Procfile",
    "requirements.txt",
    "config/settings.py",
    "conversations/models.py",
    "templates/privacy.html",
    ".env.example",
]


def dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides,
    `!` re-includes, `*` and `?` stay within a path segment, `**` spans any number of them."""
    excluded = False
    for line in (BASE_DIR / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        regex = _pattern_regex(pattern.removeprefix("!").strip("/"))
        parts = path.split("/")
        if any(regex.fullmatch("/".join(parts[:end])) for end in range(1, len(parts) + 1)):
            excluded = not negated
    return excluded


def _pattern_regex(pattern: str) -> re.Pattern:
    translated = ""
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
        translated += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
    return re.compile(translated)


@pytest.mark.parametrize("path", NEVER_IN_THE_IMAGE)
def test_secrets_data_and_history_stay_out_of_the_image(path):
    assert dockerignore_excludes(path)


@pytest.mark.parametrize("path", IN_THE_IMAGE)
def test_the_code_goes_into_the_image(path):
    assert not dockerignore_excludes(path)


def test_the_container_command_runs_a_procfile_process(tmp_path):
    result = procfile_run(
        "release", env=process_environment(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    )
    assert result.returncode == 0, result.stderr
    assert "Applying conversations.0001_initial... OK" in result.stdout


def test_the_container_command_names_the_processes_it_knows():
    result = procfile_run("webb", env=process_environment())
    assert (result.returncode, result.stderr.strip()) == (
        1,
        "usage: python -m config.procfile PROCESS (one of: release, web, worker)",
    )


def procfile_run(name: str, *, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "config.procfile", name]
    return subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)


def test_compose_gives_web_and_worker_one_volume_for_the_files_people_send():
    # The worker keeps a voice message or photo, the web process serves it to staff.
    compose = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())
    mounts = {
        name: {
            volume
            for volume in compose["services"][name].get("volumes", [])
            if volume.endswith(":/app/var/media")
        }
        for name in ("web", "worker")
    }

    assert mounts["web"] == mounts["worker"] != set()
    [volume] = mounts["web"]
    assert volume.partition(":")[0] in compose["volumes"]
