"""The DEBUG error page lists the settings: secrets inside their values are hidden too."""

import pytest
import redis
from django.test import Client
from django.urls import path


def fail(request):
    raise RuntimeError("something broke")


urlpatterns = [path("fail", fail)]

# The page shows the source lines around the `raise` above: the secrets below stay out of its reach.


@pytest.mark.urls(__name__)
def test_the_debug_page_hides_passwords_in_urls_and_the_alert_webhook(settings):
    redis_url = "redis://:redis-password@redis.example:6379/0"
    settings.DEBUG = True
    settings.REDIS_URL = redis_url
    settings.REDIS_POOL = redis.ConnectionPool.from_url(redis_url)
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": redis_url}}
    settings.STAFF_ALERT_WEBHOOK_URL = "https://hooks.slack.com/services/T0000/B0000/webhook-secret-path"
    settings.EMAIL_URL_EXAMPLE = "smtp+tls://alerts:mail-password@smtp.example.com:587"

    response = Client(raise_request_exception=False).get("/fail")

    page = response.content.decode()
    assert response.status_code == 500 and "something broke" in page
    for secret in ("redis-password", "webhook-secret-path", "mail-password"):
        assert secret not in page
    assert "redis://:********************@redis.example:6379/0" in page
    assert "password=********************" in page  # the Redis pool's own description
