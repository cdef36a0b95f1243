"""The "Moderators" group: what a support team needs to run the inbox without being superusers.

Read conversations and their messages, pause/resume the bot (change conversation), reply
and retry (send_message), forget a contact (delete contact: everything cascades from it),
read and edit the system prompt (edits add a version), and use the RQ dashboard.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations, models

GROUP_NAME = "Moderators"
PERMISSIONS = [
    ("conversations", "view_conversation"),
    ("conversations", "change_conversation"),
    ("conversations", "view_message"),
    ("conversations", "send_message"),
    ("conversations", "view_contact"),
    ("conversations", "delete_contact"),
    ("conversations", "view_systemprompt"),
    ("conversations", "add_systemprompt"),
    ("django_rq", "admin"),
]


def create_moderators(apps, schema_editor):
    # Permissions are normally created after all migrations ran; on a fresh database they
    # do not exist yet at this point, so create them now (it is idempotent).
    for app_label in {app_label for app_label, _ in PERMISSIONS}:
        app_config = apps.get_app_config(app_label)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP_NAME)
    query = models.Q()
    for app_label, codename in PERMISSIONS:
        query |= models.Q(content_type__app_label=app_label, codename=codename)
    permissions = list(Permission.objects.filter(query))
    if len(permissions) != len(PERMISSIONS):
        raise RuntimeError(
            f"expected {len(PERMISSIONS)} permissions for {GROUP_NAME}, found {len(permissions)}"
        )
    group.permissions.set(permissions)


def delete_moderators(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0002_replies"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_rq", "0003_alter_dashboard_permission_names"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                condition=models.Q(status="failed"), fields=["conversation"], name="message_failed"
            ),
        ),
        migrations.RunPython(create_moderators, delete_moderators),
    ]
