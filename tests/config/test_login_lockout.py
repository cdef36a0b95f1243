"""Admin logins: a few failures lock a user name out from one client address for a while
(django-axes), and behind a proxy the client's address is the one a trusted proxy forwarded."""

import pytest
from django.contrib.auth.models import User

LOGIN = "/admin/login/"
PASSWORD = "the-right-password"


@pytest.fixture
def staff(db):
    return User.objects.create_user(username="maria", password=PASSWORD, is_staff=True)


def login(client, *, password: str, **meta: str) -> int:
    response = client.post(LOGIN, {"username": "maria", "password": password, "next": "/admin/"}, **meta)
    return response.status_code


def fail_until_locked(client, settings, **meta: str) -> list[int]:
    return [login(client, password="guess", **meta) for _ in range(settings.AXES_FAILURE_LIMIT)]


def test_failures_lock_the_user_out_from_that_address(client, settings, staff):
    statuses = fail_until_locked(client, settings, REMOTE_ADDR="198.51.100.7")

    assert statuses[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # the form again, with an error
    assert statuses[-1] == 429
    # Locked: even the right password is refused from there, for a while...
    assert login(client, password=PASSWORD, REMOTE_ADDR="198.51.100.7") == 429
    # ...while the same person elsewhere signs in.
    assert login(client, password=PASSWORD, REMOTE_ADDR="198.51.100.8") == 302


def test_a_success_clears_the_count(client, settings, staff):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login(client, password="guess", REMOTE_ADDR="198.51.100.7")
    assert login(client, password=PASSWORD, REMOTE_ADDR="198.51.100.7") == 302
    client.logout()

    assert login(client, password="guess", REMOTE_ADDR="198.51.100.7") == 200


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_clients(client, settings, staff):
    settings.FORWARDED_ALLOW_IPS = ["10.0.0.0/8"]
    via_proxy = {"REMOTE_ADDR": "10.0.0.2"}

    fail_until_locked(client, settings, **via_proxy, HTTP_X_FORWARDED_FOR="203.0.113.9")

    # The proxy's other clients are not locked out with the one who failed.
    assert login(client, password=PASSWORD, **via_proxy, HTTP_X_FORWARDED_FOR="203.0.113.10") == 302
    client.logout()
    # Whatever the failing client writes into the header itself stands left of what the proxy added.
    spoofed = "192.0.2.77, 203.0.113.9"
    assert login(client, password=PASSWORD, **via_proxy, HTTP_X_FORWARDED_FOR=spoofed) == 429


def test_an_untrusted_client_cannot_choose_its_address(client, settings, staff):
    settings.FORWARDED_ALLOW_IPS = ["10.0.0.0/8"]

    statuses = [
        login(client, password="guess", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        for n in range(settings.AXES_FAILURE_LIMIT)
    ]

    assert statuses[-1] == 429
