"""Handing a conversation over to staff, the person's last message time (Messenger's 24-hour
window, filled in from the messages already stored), and the contact's profile."""

from django.conf import settings
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def person_last_wrote_at_fill(apps, schema_editor):
    Conversation = apps.get_model("conversations", "Conversation")
    Message = apps.get_model("conversations", "Message")
    newest = Message.objects.filter(conversation=OuterRef("pk"), role="client", sent_at__isnull=False)
    Conversation.objects.update(
        person_last_wrote_at=Subquery(newest.order_by("-sent_at").values("sent_at")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0008_knowledge"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="contact",
            name="first_name",
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AddField(
            model_name="contact",
            name="picture_url",
            field=models.URLField(blank=True, max_length=2000),
        ),
        migrations.AddField(
            model_name="contact",
            name="profile_error",
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AddField(
            model_name="conversation",
            name="handoff_reason",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="conversation",
            name="person_last_wrote_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="conversation",
            name="waiting_for_staff_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="contact",
            index=models.Index(
                condition=models.Q(("name", "")),
                fields=["profile_fetched_at"],
                name="contact_profile_missing",
            ),
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                condition=models.Q(("waiting_for_staff_since__isnull", False)),
                fields=["-last_activity_at"],
                name="conversation_waiting",
            ),
        ),
        migrations.RunPython(person_last_wrote_at_fill, migrations.RunPython.noop),
    ]
