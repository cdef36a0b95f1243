"""Knowledge articles, the articles each reply was given, and the questions answered without any.

Also: a GIN index on the articles' search vector (PostgreSQL only; SQLite searches without
one), and the Moderators group may view, add and edit articles and work through the
unanswered questions.
"""

import django.contrib.postgres.search
import django.db.models.deletion
import django.utils.timezone
from django.contrib.auth.management import create_permissions
from django.db import migrations, models

MODERATOR_PERMISSIONS = [
    "view_knowledgearticle",
    "add_knowledgearticle",
    "change_knowledgearticle",
    "view_unansweredquestion",
    "change_unansweredquestion",
    "delete_unansweredquestion",
]


def search_index_create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX knowledge_article_search ON conversations_knowledgearticle USING gin (search_vector)"
        )


def search_index_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX knowledge_article_search")


def moderators_allow(apps, schema_editor):
    # As in 0003: permissions of models created in this run do not exist until created here.
    app_config = apps.get_app_config("conversations")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    group = apps.get_model("auth", "Group").objects.filter(name="Moderators").first()
    if group is not None:
        permissions = apps.get_model("auth", "Permission").objects.filter(
            content_type__app_label="conversations", codename__in=MODERATOR_PERMISSIONS
        )
        group.permissions.add(*permissions)


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0007_plain_column_defaults"),
    ]

    operations = [
        migrations.CreateModel(
            name="KnowledgeArticle",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("title", models.CharField(max_length=200)),
                ("body", models.TextField(help_text="Plain text or Markdown.")),
                (
                    "approved",
                    models.BooleanField(
                        default=True, help_text="Only approved articles are given to the bot."
                    ),
                ),
                (
                    "source",
                    models.CharField(blank=True, editable=False, max_length=500, null=True, unique=True),
                ),
                (
                    "search_vector",
                    django.contrib.postgres.search.SearchVectorField(editable=False, null=True),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "ordering": ["title", "id"],
            },
        ),
        migrations.AlterField(
            model_name="channelidentity",
            name="channel",
            field=models.CharField(
                choices=[("messenger", "Messenger"), ("console", "Console")],
                default="messenger",
                max_length=32,
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="knowledge_articles",
            field=models.ManyToManyField(
                blank=True,
                related_name="replies",
                to="conversations.knowledgearticle",
                verbose_name="knowledge given",
            ),
        ),
        migrations.CreateModel(
            name="UnansweredQuestion",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "text",
                    models.TextField(help_text="What the person asked, all the messages the reply answered."),
                ),
                ("asked_at", models.DateTimeField()),
                (
                    "article",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="questions",
                        to="conversations.knowledgearticle",
                    ),
                ),
                (
                    "message",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="unanswered_question",
                        to="conversations.message",
                    ),
                ),
            ],
            options={
                "ordering": ["-asked_at", "-id"],
                "indexes": [models.Index(fields=["-asked_at"], name="unanswered_question_asked")],
            },
        ),
        migrations.RunPython(search_index_create, search_index_drop),
        migrations.RunPython(moderators_allow, migrations.RunPython.noop),
    ]
