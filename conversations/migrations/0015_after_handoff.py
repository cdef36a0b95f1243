"""After the handoff: the LLM's summary for staff, when staff's alert was raised, and how the person
rated staff's help (CSAT)."""

from django.db import migrations, models
from django.db.models import F


def handoffs_before_alerted(apps, schema_editor):
    # Their alert was raised when they were made: the recovery sweep must not raise it again.
    apps.get_model("conversations", "Handoff").objects.update(alerted_at=F("created_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0014_media"),
    ]

    operations = [
        migrations.AddField(
            model_name="handoff",
            name="summary",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="handoff",
            name="alerted_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(handoffs_before_alerted, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="handoff",
            index=models.Index(
                condition=models.Q(("alerted_at__isnull", True)),
                fields=["created_at"],
                name="handoff_unalerted",
            ),
        ),
        migrations.AddField(
            model_name="handoff",
            name="csat_asked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="handoff",
            name="csat_score",
            field=models.PositiveSmallIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="handoff",
            name="csat_answered_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="handoff",
            index=models.Index(
                condition=models.Q(("csat_answered_at__isnull", False)),
                fields=["csat_answered_at", "csat_score"],
                name="handoff_csat_answered",
            ),
        ),
        migrations.AddConstraint(
            model_name="handoff",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("csat_score__isnull", True),
                    models.Q(("csat_score__gte", 1), ("csat_score__lte", 5)),
                    _connector="OR",
                ),
                name="handoff_csat_score_1_to_5",
            ),
        ),
    ]
