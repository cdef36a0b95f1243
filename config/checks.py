"""Production secrets are checked where they are needed, not when settings load.

So every management command works on a fresh machine (migrate, createsuperuser, --help),
while the web and worker processes refuse to start without them when DEBUG is off, with one
line instead of a traceback, and `manage.py check --deploy` lists what is missing.

BUSINESS_HOURS that cannot be read are an error of every `manage.py check` (and so of every
command that runs the checks, the worker's included), and the web process exits on them too.
"""

import sys

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from conversations.hours import BusinessHoursError, business_hours_parse


def production_secrets_missing() -> list[str]:
    """The production secrets (settings.PRODUCTION_SECRETS) that are not set."""
    return [name for name in settings.PRODUCTION_SECRETS if not _is_set(name)]


def _is_set(name: str) -> bool:
    try:
        value = getattr(settings, name)
    except ImproperlyConfigured:  # Django's own refusal to read an empty SECRET_KEY
        return False
    # The development-only key that stands in when DEBUG is on is no secret either.
    return bool(value) and not value.startswith("django-insecure-")


def production_secrets_require() -> None:
    """Exit with one line when DEBUG is off and a production secret is missing.

    A process without them would accept webhooks it cannot verify, or answer nobody.
    """
    missing = production_secrets_missing()
    if missing and not settings.DEBUG:
        sys.exit(f"Configuration error: {', '.join(missing)} must be set when DEBUG is off.")


_SECRET_CHECK_IDS = {"SECRET_KEY": 1, "FACEBOOK_APP_SECRET": 2, "FACEBOOK_VERIFY_TOKEN": 3, "GROQ_API_KEY": 5}


@checks.register(checks.Tags.security, deploy=True)
def production_secrets_check(app_configs: object = None, **kwargs: object) -> list[checks.Error]:
    # One id per secret, whichever others are missing (E004, the Page token's, is retired).
    missing = production_secrets_missing()
    return [
        checks.Error(
            f"{name} is not set.",
            hint=f"Set {name} in the environment or in .env (see .env.example).",
            id=f"config.E{_SECRET_CHECK_IDS[name]:03d}",
        )
        for name in settings.PRODUCTION_SECRETS
        if name in missing
    ]


@checks.register(checks.Tags.security, deploy=True)
def email_url_check(app_configs: object = None, **kwargs: object) -> list[checks.Error]:
    if not settings.EMAIL_URL_ERROR:
        return []
    return [
        checks.Error(
            f"EMAIL_URL is not an email URL ({settings.EMAIL_URL_ERROR}): alert emails go to the console.",
            hint="For example smtp+tls://user:password@smtp.example.com:587 (see docs/settings.md).",
            id="config.E010",
        )
    ]


@checks.register(checks.Tags.security)
def forwarded_allow_ips_check(app_configs: object = None, **kwargs: object) -> list[checks.Error]:
    # A typo would silently distrust the real proxy: HTTPS, HSTS and the lockout's address go wrong.
    from config.proxy import proxy_network

    return [
        checks.Error(
            f"FORWARDED_ALLOW_IPS has {entry!r}, which is neither an address, a network nor *.",
            hint="A comma list such as 127.0.0.1,10.0.0.0/8 (see docs/settings.md).",
            id="config.E011",
        )
        for entry in settings.FORWARDED_ALLOW_IPS
        if entry != "*" and proxy_network(entry) is None
    ]


@checks.register(checks.Tags.security, deploy=True)
def media_storage_options_check(app_configs: object = None, **kwargs: object) -> list[checks.Error]:
    if not settings.MEDIA_STORAGE_ERROR:
        return []
    return [
        checks.Error(
            f"MEDIA_STORAGE_OPTIONS is not a JSON object ({settings.MEDIA_STORAGE_ERROR}): the media "
            "storage gets no options.",
            hint='For example {"bucket_name": "my-bucket", "region_name": "eu-west-1"}.',
            id="config.E012",
        )
    ]


def business_hours_error() -> str:
    """Why BUSINESS_HOURS cannot be read, naming the offending part; empty when it can."""
    try:
        business_hours_parse(settings.BUSINESS_HOURS, time_zone=settings.TIME_ZONE)
    except BusinessHoursError as error:
        return f"BUSINESS_HOURS: {error}"
    return ""


def business_hours_require() -> None:
    """Exit with one line when BUSINESS_HOURS cannot be read: a handoff would fail on them."""
    error = business_hours_error()
    if error:
        sys.exit(f"Configuration error: {error}")


@checks.register()
def business_hours_check(app_configs: object = None, **kwargs: object) -> list[checks.Error]:
    error = business_hours_error()
    if not error:
        return []
    return [
        checks.Error(
            error,
            hint='Days, then time ranges, groups separated by ";": "mon-fri 09:00-17:00; sat 10:00-13:00". '
            "Empty means always open.",
            id="config.E013",
        )
    ]


@checks.register()
def comment_replies_check(app_configs: object = None, **kwargs: object) -> list[checks.Error]:
    # A typo must not silently leave comments unanswered (or answered): the service treats it as off.
    if settings.COMMENT_REPLIES in ("off", "on"):
        return []
    return [
        checks.Error(
            f"COMMENT_REPLIES is {settings.COMMENT_REPLIES!r}: it must be off or on (comments are not answered).",
            hint="COMMENT_REPLIES=on answers new comments with a private reply (see docs/settings.md).",
            id="config.E014",
        )
    ]


@checks.register()
def worker_concurrency_check(app_configs: object = None, **kwargs: object) -> list[checks.Error]:
    # Zero would start a worker process that never answers anyone.
    return [
        checks.Error(
            f"{name} is {value}: the worker needs at least 1 (nothing would be answered).",
            hint="RQ_WORKERS processes, each running RQ_THREADS jobs at once (see docs/settings.md).",
            id="config.E015",
        )
        for name, value in (("RQ_WORKERS", settings.RQ_WORKERS), ("RQ_THREADS", settings.RQ_THREADS))
        if value < 1
    ]
