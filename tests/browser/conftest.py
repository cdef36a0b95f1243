"""The browser tests' web process (its Graph API the stand-in) and the moderator they log in as."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import Group

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
    # As the migrations made it (a flush puts it back: tests/migrated_rows.py).
    user.groups.add(Group.objects.get(name="Moderators"))
    return user
