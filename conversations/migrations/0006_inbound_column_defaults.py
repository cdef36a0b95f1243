"""Database defaults for the message columns an inbound message leaves empty.

conversations.services.inbound inserts a message naming only the columns it sets; every
other column must then fill itself: NULL, or these. On PostgreSQL this only sets column
defaults, with no table rewrite.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0005_lean_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="message",
            name="error_code",
            field=models.CharField(blank=True, db_default="", default="", max_length=64),
        ),
        migrations.AlterField(
            model_name="message",
            name="error_detail",
            field=models.TextField(blank=True, db_default="", default=""),
        ),
        migrations.AlterField(
            model_name="message",
            name="llm_model",
            field=models.CharField(blank=True, db_default="", default="", max_length=128),
        ),
        migrations.AlterField(
            model_name="message",
            name="reaction",
            field=models.CharField(blank=True, db_default="", default="", max_length=64),
        ),
    ]
