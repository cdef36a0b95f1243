"""The rows the data migrations write (the Moderators group and its permissions), put back after
every flush.

pytest-django ends each transactional test (every end-to-end and browser test, and any test using
`transactional_db` or `live_server`) with a flush, which empties every table: rows that only a
data migration writes are gone for every later test in that process. In one process nobody
noticed, because pytest-django runs all the `db` tests first; under pytest-xdist each worker runs
the files the scheduler hands it, in that order, so a worker that had run a file with a
transactional test went on to fail the admin tests that look up the Moderators group.
"""

from functools import cache
from importlib import import_module

from django.db import connections, transaction
from django.db.migrations.loader import MigrationLoader
from django.db.models.signals import post_migrate

# Each data migration that writes rows, in the order `migrate` runs them. A new data migration
# that writes rows a test may rely on belongs here.
DATA_MIGRATIONS = [
    ("conversations.migrations.0003_moderators", "create_moderators"),
    ("conversations.migrations.0008_knowledge", "moderators_allow"),
    ("conversations.migrations.0016_comments", "moderators_read_comments"),
]


@cache
def _migrated_apps(alias: str):
    """The models as the last migration left them: what the migrations' functions are written for."""
    return MigrationLoader(connections[alias], ignore_no_migrations=True).project_state().apps


def restore_after_flush(sender, *, using: str, plan=None, **kwargs) -> None:
    # post_migrate is sent once per app after `migrate` (with its plan) and after `flush` (with
    # none); conversations is the last of INSTALLED_APPS, so the permissions exist by then.
    if plan is not None or sender.label != "conversations":
        return
    apps = _migrated_apps(using)
    with transaction.atomic(using=using):
        for module, function in DATA_MIGRATIONS:  # none of them uses its schema editor
            getattr(import_module(module), function)(apps, None)


def connect() -> None:
    post_migrate.connect(restore_after_flush, dispatch_uid="tests.migrated_rows")
