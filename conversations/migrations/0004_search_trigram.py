"""Trigram indexes for the admin's search: contact name and message text, case-insensitive.

Django's `icontains` on PostgreSQL is `UPPER(col::text) LIKE UPPER('%term%')`; a GIN index
of UPPER(col) with gin_trgm_ops serves exactly that expression. pg_trgm ships with
PostgreSQL; creating it needs a role allowed to (see docs/decisions.md, "Admin search").
SQLite has neither: there the search scans, which is fine for development. Going back
drops the indexes but keeps the extension, which something else may use.
"""

from django.db import migrations

INDEXES = {
    "contact_name_trgm": ("conversations_contact", "name"),
    "message_text_trgm": ("conversations_message", "text"),
}


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, (table, column) in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX {name} ON {table} USING gin (UPPER({column}) gin_trgm_ops)")


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX {name}")


class Migration(migrations.Migration):
    dependencies = [("conversations", "0003_moderators")]

    operations = [migrations.RunPython(create_indexes, drop_indexes)]
