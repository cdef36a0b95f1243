"""The browser tests' web process (its Graph API the stand-in) and the moderator they log in as."""

from importlib import import_module

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import Group, Permission
from django.db.models import Q

from devtools.processes import start_web
from tests.browser.chromium import CHROMIUM, MODERATOR, PASSWORD
from tests.processes import process_environment


@pytest.fixture
def web(transactional_db, graph_standin, tmp_path):
    """The Procfile's web process on this suite's database, its Graph API the stand-in."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium).")
    graph_standin.reset()
    env = process_environment(FACEBOOK_GRAPH_API_URL=graph_standin.url)
    process, base_url = start_web(env, tmp_path)
    yield base_url
    process.stop()


@pytest.fixture
def moderator(db):
    # Hashed the way the web process checks passwords (the suite's settings use a faster hasher).
    hasher = PBKDF2PasswordHasher()
    user = get_user_model().objects.create(
        username=MODERATOR, password=hasher.encode(PASSWORD, hasher.salt()), is_staff=True
    )
    user.groups.add(_moderators())
    return user


def _moderators() -> Group:
    """The Moderators group as migrations 0003 and 0008 made it: a test that flushed the database
    before (end-to-end tests do) took it away with the migrations' other data."""
    group, _ = Group.objects.get_or_create(name="Moderators")
    if not group.permissions.exists():
        wanted = [
            *import_module("conversations.migrations.0003_moderators").PERMISSIONS,
            *(
                ("conversations", name)
                for name in import_module("conversations.migrations.0008_knowledge").MODERATOR_PERMISSIONS
            ),
        ]
        query = Q.create(
            [Q(content_type__app_label=app_label, codename=codename) for app_label, codename in wanted],
            connector=Q.OR,
        )
        group.permissions.set(Permission.objects.filter(query))
    return group
