"""The one `env` object the service reads its settings with (django-environ), and `.env`.

One precedence rule for every process and command: a variable set in the environment wins
over the same one in `.env`, and an empty value means "not set", its default applies. So
`.env.example` copied unchanged configures nothing, and `PORT=8001 make run` is on 8001
whatever `.env` says.
"""

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent


class _SetVariables(Mapping):
    """os.environ without its empty variables."""

    def __getitem__(self, name: str) -> str:
        value = os.environ[name]
        if value == "":
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (name for name, value in os.environ.items() if value != "")

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Env(environ.Env):
    """django-environ's Env, for which an empty variable is an unset one."""

    ENVIRON = _SetVariables()

    def list(self, var: str, cast: object = None, default: object = environ.Env.NOTSET) -> list:
        """A comma list as people write one: "a, b," is ["a", "b"] (django-environ keeps the spaces)."""
        items = super().list(var, cast=cast, default=default)
        return [item.strip() for item in items if item.strip()] if cast is None else items


def dotenv_load(path: Path) -> None:
    """Set each variable `path` gives a value that the environment does not already set."""
    if not path.is_file():
        return  # optional: the environment alone is enough
    values: dict[str, str] = {}

    class _Capture(environ.Env):
        ENVIRON = values

    _Capture.read_env(path, overwrite=True)
    for name, value in values.items():
        if value != "" and not os.environ.get(name):
            os.environ[name] = value


# ENV_FILE names another file than the project's `.env` (tests load .env.example this way).
dotenv_load(Path(os.environ.get("ENV_FILE") or BASE_DIR / ".env"))
env = Env()
