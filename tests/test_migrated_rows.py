"""A flush (the end of every transactional test) leaves the rows the data migrations wrote as
`migrate` left them, so no test depends on running before the first end-to-end test."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command


def moderators_permissions() -> set[tuple[str, str]]:
    return set(
        Group.objects.get(name="Moderators").permissions.values_list("content_type__app_label", "codename")
    )


@pytest.mark.django_db(transaction=True)
def test_a_flush_puts_back_the_moderators_group_as_migrated():
    migrated = moderators_permissions()
    assert ("conversations", "view_comment") in migrated  # the last data migration's too

    call_command("flush", interactive=False, verbosity=0)

    assert moderators_permissions() == migrated
