"""The admin dashboard's indexes: each of its queries reads a range of days from one of them
(index-only on PostgreSQL), whatever the number of messages before that range.

Plain CREATE INDEX, like the migrations before: it holds off new messages while it builds,
a few seconds at a million messages (docs/benchmarks.md).
"""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0010_handoffs"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["created_at", "role", "status"], name="message_created_kind"),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                condition=models.Q(
                    ("reply_to__isnull", False),
                    ("role__in", ["ai", "staff", "system"]),
                    ("sent_at__isnull", False),
                ),
                fields=["created_at", "reply_to", "sent_at"],
                name="message_reply_time",
            ),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                condition=models.Q(("role", "ai"), models.Q(("llm_model", ""), _negated=True)),
                fields=["created_at", "id"],
                name="message_ai_answer",
            ),
        ),
    ]
