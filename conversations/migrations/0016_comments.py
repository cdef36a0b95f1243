"""Comments on the Pages' posts and Instagram media, and their private and public replies
(conversations.services.comments); the Moderators group may read them in the admin."""

import django.db.models.deletion
import django.utils.timezone
from django.contrib.auth.management import create_permissions
from django.db import migrations, models

MODERATORS = "Moderators"


def moderators_read_comments(apps, schema_editor):
    # Permissions are normally created after all migrations ran: create this one now (idempotent).
    app_config = apps.get_app_config("conversations")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.get(content_type__app_label="conversations", codename="view_comment")
    for group in apps.get_model("auth", "Group").objects.filter(name=MODERATORS):
        group.permissions.add(view)


def moderators_forget_comments(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    for group in apps.get_model("auth", "Group").objects.filter(name=MODERATORS):
        group.permissions.remove(*Permission.objects.filter(codename="view_comment"))


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0015_after_handoff"),
    ]

    operations = [
        migrations.CreateModel(
            name="Comment",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("page_id", models.CharField(max_length=64, verbose_name="Page id")),
                (
                    "platform",
                    models.CharField(
                        choices=[("messenger", "Facebook"), ("instagram", "Instagram")], max_length=16
                    ),
                ),
                ("comment_id", models.CharField(max_length=255, unique=True)),
                ("post_id", models.CharField(blank=True, max_length=255, verbose_name="post")),
                ("parent_id", models.CharField(blank=True, max_length=255)),
                ("author_id", models.CharField(max_length=64)),
                ("author_name", models.CharField(blank=True, max_length=255, verbose_name="person")),
                ("text", models.TextField(blank=True)),
                ("commented_at", models.DateTimeField(help_text="When the comment was made, as Meta says.")),
                ("received_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("received", "Waiting for its reply"),
                            ("sending", "Reply written, not sent yet"),
                            ("answered", "Answered"),
                            ("ignored", "Ignored"),
                            ("failed", "Failed"),
                        ],
                        max_length=16,
                    ),
                ),
                ("reason_code", models.CharField(blank=True, default="", max_length=64)),
                ("reason", models.TextField(blank=True, default="")),
                ("reply_text", models.TextField(blank=True, default="", verbose_name="private reply")),
                ("reply_llm", models.JSONField(blank=True, null=True)),
                ("handoff_reason", models.TextField(blank=True, default="")),
                ("reply_mid", models.CharField(blank=True, default="", max_length=255)),
                ("reply_sent_at", models.DateTimeField(blank=True, null=True, verbose_name="replied at")),
                ("public_reply_text", models.TextField(blank=True, default="")),
                (
                    "public_reply_status",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("", "None"),
                            ("pending", "Not posted yet"),
                            ("posted", "Posted"),
                            ("failed", "Failed"),
                        ],
                        default="",
                        max_length=16,
                    ),
                ),
                ("public_reply_id", models.CharField(blank=True, default="", max_length=255)),
                ("public_reply_error", models.TextField(blank=True, default="")),
                ("raw", models.JSONField(blank=True, null=True)),
                (
                    "conversation",
                    models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="comments",
                        to="conversations.conversation",
                    ),
                ),
                (
                    "knowledge_articles",
                    models.ManyToManyField(
                        blank=True,
                        related_name="comment_replies",
                        to="conversations.knowledgearticle",
                        verbose_name="knowledge given",
                    ),
                ),
            ],
            options={
                "ordering": ["-received_at", "-id"],
                "indexes": [
                    models.Index(fields=["-received_at"], name="comment_received"),
                    models.Index(
                        condition=models.Q(
                            ("status__in", ["received", "sending"]),
                            ("public_reply_status", "pending"),
                            _connector="OR",
                        ),
                        fields=["received_at"],
                        name="comment_pending",
                    ),
                    models.Index(
                        condition=models.Q(("conversation__isnull", False)),
                        fields=["conversation"],
                        name="comment_conversation",
                    ),
                    models.Index(fields=["platform", "page_id", "author_id"], name="comment_author"),
                    models.Index(
                        condition=models.Q(("reply_sent_at__isnull", False)),
                        fields=["reply_sent_at"],
                        name="comment_replied",
                    ),
                ],
            },
        ),
        migrations.RunPython(moderators_read_comments, moderators_forget_comments),
    ]
