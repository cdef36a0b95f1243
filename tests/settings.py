"""Settings for the test suite: config.settings, fed a test environment.

PostgreSQL and Redis come from DATABASE_URL / REDIS_URL when set, else the local servers;
without a local PostgreSQL the suite runs on SQLite and PostgreSQL-only tests are skipped.
"""

import atexit
import os
import shutil
import socket
import tempfile

TEST_SECRETS = {
    "SECRET_KEY": "test-secret-key",
    "FACEBOOK_APP_SECRET": "test-app-secret",
    "FACEBOOK_VERIFY_TOKEN": "test-verify-token",
    "FACEBOOK_PAGE_ACCESS_TOKEN": "test-page-token",
    "GROQ_API_KEY": "test-groq-key",
    "FACEBOOK_APP_ID": "111111111111111",
    "CONTACT_EMAIL": "privacy@example.com",
    "METRICS_TOKEN": "test-metrics-token",
}
for name, value in TEST_SECRETS.items():
    os.environ.setdefault(name, value)
os.environ["DEBUG"] = "False"


def _postgres_answers() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        return False
    return True


if "DATABASE_URL" not in os.environ:
    if _postgres_answers():
        os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/messenger"
    else:
        os.environ["DATABASE_URL"] = "sqlite:////tmp/messenger-test.sqlite3"
# Under pytest-xdist each worker (gw0, gw1, ...) is a suite of its own: its own test database
# (pytest-django names it), Redis database, metrics and files.
_XDIST_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_XDIST = "PYTEST_XDIST_WORKER" in os.environ
# Counts of this run only, shared with the web and worker processes the suite starts.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ or _XDIST:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="messenger-test-metrics-")
    atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
# Files people send (conversations.media) of this run only, shared with its web and worker processes.
if "MEDIA_ROOT" not in os.environ or _XDIST:
    os.environ["MEDIA_ROOT"] = tempfile.mkdtemp(prefix="messenger-test-media-")
    atexit.register(shutil.rmtree, os.environ["MEDIA_ROOT"], ignore_errors=True)
# A database index of its own, so the suite's flushes never touch a developer's queues; each
# xdist worker counts down from it.
_REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
if _XDIST:
    _base, _, _index = _REDIS_URL.rpartition("/")
    _REDIS_URL = f"{_base}/{(int(_index or 0) - _XDIST_WORKER) % 16}"
os.environ["REDIS_URL"] = _REDIS_URL

from config.settings import *  # noqa: E402,F403

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not SQLite's in-memory test database, so the web and worker processes that
    # end-to-end tests start can open the same database.
    VAR_DIR.mkdir(exist_ok=True)  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{_XDIST_WORKER}.sqlite3")}  # noqa: F405

# Fast hashing: the suite creates users, it does not need to resist brute force.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Static files straight from the apps: the suite never runs collectstatic.
STATIC_ROOT = None
