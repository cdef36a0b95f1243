"""What the service's commands need before they start, checked the same way by each of them.

A command declares its `needs`; each is checked before `handle` runs, in one order (settings
first, then the database, then Redis), and the first one missing is one line on stderr and
exit 1, before anything is stored or sent to Meta. A database or Redis lost while the
command runs is one line too, never a traceback.
"""

import enum

import django_rq
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, ProgrammingError, connections
from django.db.migrations.executor import MigrationExecutor
from redis.exceptions import RedisError

from conversations.models import Page

_DATABASE_ERRORS = (OperationalError, InterfaceError)


class Need(enum.Enum):
    """What a command may need, in the order they are checked: the cheap settings first."""

    PAGE_TOKEN = enum.auto()  # FACEBOOK_PAGE_ACCESS_TOKEN, or a Page connected in the database
    GROQ_KEY = enum.auto()
    DATABASE = enum.auto()
    REDIS = enum.auto()


class ServiceCommand(BaseCommand):
    """A command of the service: `needs` says what it cannot start without."""

    needs: tuple[Need, ...] = ()

    def execute(self, *args: object, **options: object) -> str | None:
        for need in Need:
            if need in self.needs:
                _CHECKS[need]()
        try:
            return super().execute(*args, **options)
        except ImproperlyConfigured as error:
            # Django's own refusals (an empty SECRET_KEY, which the Pages' tokens are encrypted with).
            raise CommandError(f"Configuration error: {error}") from error
        except _DATABASE_ERRORS as error:
            raise CommandError(f"The database failed: {_reason(error)}.") from error
        except RedisError as error:
            raise CommandError(f"Redis failed: {_reason(error)}.") from error


def _page_token_check() -> None:
    """A Page to write as: the environment's token, else a connected Page (an unreachable
    database is the database check's to report)."""
    if settings.FACEBOOK_PAGE_ACCESS_TOKEN:
        return
    try:
        connected = Page.objects.filter(disconnected_at=None).exists()
    except (*_DATABASE_ERRORS, ProgrammingError):  # ProgrammingError: not migrated yet
        connected = False
    if not connected:
        raise CommandError(
            "FACEBOOK_PAGE_ACCESS_TOKEN is not set: this command reaches Messenger as the Page. "
            "Set it in the environment or in .env, or connect a Page (manage.py pages connect)."
        )


def _groq_key_check() -> None:
    if not settings.GROQ_API_KEY:
        raise CommandError(
            "GROQ_API_KEY is not set: this command asks the LLM. Set it in the environment or in .env."
        )


def _database_check() -> None:
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        connection.ensure_connection()
        executor = MigrationExecutor(connection)
        unapplied = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except _DATABASE_ERRORS as error:
        raise CommandError(f"The database is unreachable: {_reason(error)}. Check DATABASE_URL.") from error
    if unapplied:
        raise CommandError(
            f"The database lacks {len(unapplied)} migration(s): run `python manage.py migrate` first."
        )


def _redis_check() -> None:
    try:
        django_rq.get_connection().ping()
    except RedisError as error:
        raise CommandError(f"Redis is unreachable: {_reason(error)}. Check REDIS_URL.") from error


def _reason(error: Exception) -> str:
    """The error's first line, with the database's or Redis's password masked should it appear."""
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(".")
    passwords = (
        settings.DATABASES[DEFAULT_DB_ALIAS].get("PASSWORD"),
        django_rq.get_connection().connection_pool.connection_kwargs.get("password"),
    )
    for password in passwords:
        if password:
            reason = reason.replace(password, "***")
    return reason


_CHECKS = {
    Need.PAGE_TOKEN: _page_token_check,
    Need.GROQ_KEY: _groq_key_check,
    Need.DATABASE: _database_check,
    Need.REDIS: _redis_check,
}
