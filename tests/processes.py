"""The environment the suite's own processes (web, worker) run in."""

import os

from devtools.processes import VENV_BIN


def process_environment(**overrides: str) -> dict[str, str]:
    """The environment the suite runs in (database, Redis, secrets), plus overrides."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        database_url = f"sqlite:///{database['NAME']}"
    else:
        database_url = (
            f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
        )
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "DEBUG": "False",
        "PYTHONUNBUFFERED": "1",
        # Two web workers start faster than the Procfile's four, and a test needs no more.
        "WEB_CONCURRENCY": "2",
    }
    env.update(overrides)
    return env
