"""Settings: everything comes from the environment (and `.env` when present).

Missing production secrets never stop the settings from loading: the web and worker processes
check them (config.checks), so every management command works on a fresh machine.
"""

import logging
import os
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
import redis

from config.env import BASE_DIR, env

VAR_DIR = BASE_DIR / "var"

DEBUG = env.bool("DEBUG", default=False)

# Secrets: empty means "not configured"; config.checks says where that is fatal.
SECRET_KEY = env.str("SECRET_KEY", default="")
# Former secret keys, still accepted (sessions, signatures) and still decrypting Page tokens
# until `manage.py pages reencrypt` has rewritten them with SECRET_KEY.
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
FACEBOOK_PAGE_ACCESS_TOKEN = env.str("FACEBOOK_PAGE_ACCESS_TOKEN", default="")
FACEBOOK_VERIFY_TOKEN = env.str("FACEBOOK_VERIFY_TOKEN", default="")
FACEBOOK_APP_SECRET = env.str("FACEBOOK_APP_SECRET", default="")
GROQ_API_KEY = env.str("GROQ_API_KEY", default="")
# Not FACEBOOK_PAGE_ACCESS_TOKEN: Pages may be connected in the database instead (manage.py pages);
# with neither, the worker says so once (conversations.services.delivery.page_token_check).
PRODUCTION_SECRETS = (
    "SECRET_KEY",
    "FACEBOOK_APP_SECRET",
    "FACEBOOK_VERIFY_TOKEN",
    "GROQ_API_KEY",
)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# The processes (Procfile): config/gunicorn.py and `manage.py rqworkers` read these, so the
# environment wins over `.env` for them as for everything else.
PORT = env.int("PORT", default=8000)
# In development (DEBUG on) the web process listens on this machine only: the debug pages must
# not be reachable from the network. Behind a proxy or in a container it listens everywhere.
BIND_HOST = env.str("BIND_HOST", default="127.0.0.1" if DEBUG else "0.0.0.0")
# gunicorn worker processes, and threads in each: a thread waits on a slow client's upload while
# the others answer (docs/decisions.md), so WEB_CONCURRENCY x WEB_THREADS requests run at once.
WEB_CONCURRENCY = env.int("WEB_CONCURRENCY", default=4)
WEB_THREADS = env.int("WEB_THREADS", default=4)
# The proxies whose X-Forwarded-Proto and X-Forwarded-For are believed (addresses or networks,
# or * for any): gunicorn's own rule for the scheme, and config.proxy's for the client address.
FORWARDED_ALLOW_IPS = env.list("FORWARDED_ALLOW_IPS", default=["127.0.0.1", "::1"])
# The worker process: RQ_WORKERS processes (one per core uses them all), each running RQ_THREADS
# jobs at once in threads, which mostly wait on Groq and Meta (docs/decisions.md).
RQ_WORKERS = env.int("RQ_WORKERS", default=2)
RQ_THREADS = env.int("RQ_THREADS", default=32)

# Messenger (Graph API)
FACEBOOK_APP_ID = env.str("FACEBOOK_APP_ID", default="")
# Optional: the Page FACEBOOK_PAGE_ACCESS_TOKEN is for; set, that token answers this Page only,
# empty, any Page that is not connected in the database (conversations.pages).
FACEBOOK_PAGE_ID = env.str("FACEBOOK_PAGE_ID", default="")
# Connected Pages' tokens are encrypted at rest (django-fernet-encrypted-fields, which reads
# SALT_KEY): a key is derived from SECRET_KEY (and each fallback) with each salt, the first
# salt's encrypting, the others' only decrypting. Rotating: put a new salt first, then
# `manage.py pages reencrypt`.
SALT_KEY = env.list("FIELD_ENCRYPTION_SALTS", default=["messenger-ai.page-tokens"])
# Staff messages between 24 hours and 7 days after the person's last message go out with
# Meta's HUMAN_AGENT tag (the app needs that permission); off, they are refused.
FACEBOOK_HUMAN_AGENT_TAG = env.bool("FACEBOOK_HUMAN_AGENT_TAG", default=False)
FACEBOOK_GRAPH_API_VERSION = env.str("FACEBOOK_GRAPH_API_VERSION", default="v24.0")
FACEBOOK_GRAPH_API_URL = env.str("FACEBOOK_GRAPH_API_URL", default="https://graph.facebook.com").rstrip("/")
FACEBOOK_RATE_LIMIT_MESSAGES_PER_MINUTE = env.int("FACEBOOK_RATE_LIMIT_MESSAGES_PER_MINUTE", default=10)
GRAPH_TIMEOUT_SECONDS = env.float("GRAPH_TIMEOUT_SECONDS", default=10.0)
# The Page's Messenger profile that `manage.py messenger_profile apply` sets (messenger.profile):
# the greeting on the welcome screen ({{user_first_name}} is Meta's placeholder), and the ice
# breakers as a JSON list of questions. Kept as text so a malformed list is the command's one-line
# error, not a crash of every process at start.
MESSENGER_GREETING = env.str(
    "MESSENGER_GREETING", default="Hi {{user_first_name}}! Ask us anything here and we'll answer right away."
)
MESSENGER_ICE_BREAKERS = env.str("MESSENGER_ICE_BREAKERS", default="[]")

# LLM (Groq). The base URL is given to the SDK's client, which would otherwise read the variable
# itself and take an empty one for a URL.
GROQ_BASE_URL = env.str("GROQ_BASE_URL", default="https://api.groq.com").rstrip("/")
GROQ_MODEL = env.str("GROQ_MODEL", default="openai/gpt-oss-120b")
GROQ_TIMEOUT_SECONDS = env.float("GROQ_TIMEOUT_SECONDS", default=30.0)
# Asked in order when GROQ_MODEL is refused (429, 498) or its budget is spent (conversations.pacing).
GROQ_FALLBACK_MODELS = env.list("GROQ_FALLBACK_MODELS", default=[])
# How long a reply may wait for Groq's budget before the person gets the apology.
REPLY_MAX_WAIT_SECONDS = env.int("REPLY_MAX_WAIT_SECONDS", default=600)
LLM_HISTORY_LIMIT = env.int("LLM_HISTORY_LIMIT", default=50)
# The prompt's budget, in characters (conversations.prompts): each message's text at most the
# first, the whole prompt at most the second, history cut oldest first. Stored messages stay whole.
LLM_MESSAGE_MAX_CHARS = env.int("LLM_MESSAGE_MAX_CHARS", default=4000)
LLM_PROMPT_MAX_CHARS = env.int("LLM_PROMPT_MAX_CHARS", default=48000)
# Replies (conversations.services.replies): RQ's retry intervals for transient failures (their
# count is the number of retries), and the recovery sweep's period and grace period.
REPLY_RETRY_INTERVALS = [
    int(seconds) for seconds in env.list("REPLY_RETRY_INTERVALS", default=["5", "15", "30"])
]
REPLY_SWEEP_INTERVAL_SECONDS = env.int("REPLY_SWEEP_INTERVAL_SECONDS", default=30)
REPLY_SWEEP_GRACE_SECONDS = env.int("REPLY_SWEEP_GRACE_SECONDS", default=45)
# A conversation's reply lock lives GROQ_TIMEOUT_SECONDS plus this, so a killed worker's lock expires.
REPLY_LOCK_MARGIN_SECONDS = env.int("REPLY_LOCK_MARGIN_SECONDS", default=30)
LLM_SYSTEM_PROMPT = env.str(
    "LLM_SYSTEM_PROMPT",
    default=(
        "You are the friendly assistant of this Facebook Page. Answer the person's latest "
        "message briefly and helpfully, in their language. State facts about the business "
        "(prices, delivery, returns, opening hours, policies, products) only from KNOWLEDGE, "
        "and never invent them. When KNOWLEDGE does not cover what the person asks, say so "
        "plainly and offer to pass them to a member of staff. Call handoff_to_human, with the "
        "reason, when the person asks for a person, is upset or complains, needs something only "
        "staff can do (a refund, a change to an order, an exception to a policy), or asks "
        "something that matters to them which KNOWLEDGE does not cover; then do not answer "
        "the question yourself."
    ),
)
# Understanding what people send (conversations.media): voice messages are transcribed and images
# described by Groq before the bot's turn. Files are fetched only from MEDIA_ALLOWED_HOSTS (".x.com"
# is x.com and any subdomain of it), over https unless MEDIA_ALLOW_HTTP, at most MEDIA_MAX_BYTES
# within MEDIA_FETCH_TIMEOUT_SECONDS; an address that is private, loopback, link-local or reserved
# only for a host listed exactly. Kept for staff MEDIA_RETENTION_DAYS, their text for good.
MEDIA_UNDERSTANDING = env.bool("MEDIA_UNDERSTANDING", default=True)
GROQ_TRANSCRIPTION_MODEL = env.str("GROQ_TRANSCRIPTION_MODEL", default="whisper-large-v3-turbo")
GROQ_VISION_MODEL = env.str("GROQ_VISION_MODEL", default="meta-llama/llama-4-scout-17b-16e-instruct")
MEDIA_ALLOWED_HOSTS = env.list(
    "MEDIA_ALLOWED_HOSTS", default=[".fbcdn.net", ".fbsbx.com", ".cdninstagram.com"]
)
MEDIA_ALLOW_HTTP = env.bool("MEDIA_ALLOW_HTTP", default=False)
MEDIA_MAX_BYTES = env.int("MEDIA_MAX_BYTES", default=25_000_000)
MEDIA_FETCH_TIMEOUT_SECONDS = env.float("MEDIA_FETCH_TIMEOUT_SECONDS", default=15.0)
MEDIA_RETENTION_DAYS = env.int("MEDIA_RETENTION_DAYS", default=30)
# Where the files are kept: Django's default storage, the local MEDIA_ROOT unless another backend
# (e.g. django-storages' storages.backends.s3.S3Storage) and its options (a JSON object) are named.
MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(VAR_DIR / "media"))
MEDIA_STORAGE_BACKEND = env.str(
    "MEDIA_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage"
)
try:
    MEDIA_STORAGE_OPTIONS = env.json("MEDIA_STORAGE_OPTIONS", default={})
    MEDIA_STORAGE_ERROR = "" if isinstance(MEDIA_STORAGE_OPTIONS, dict) else "not a JSON object"
except ValueError as error:
    MEDIA_STORAGE_OPTIONS, MEDIA_STORAGE_ERROR = {}, str(error)
if MEDIA_STORAGE_ERROR:
    MEDIA_STORAGE_OPTIONS = {}

# Knowledge (conversations.knowledge.search): how many articles each reply may be given, how
# much of their text in all, PostgreSQL's text search configuration (its language: stemming and
# stop words), and the score below which an article is not given (chosen on bench/knowledge).
KNOWLEDGE_TOP_K = env.int("KNOWLEDGE_TOP_K", default=3)
KNOWLEDGE_MAX_CHARS = env.int("KNOWLEDGE_MAX_CHARS", default=6000)
KNOWLEDGE_SEARCH_CONFIG = env.str("KNOWLEDGE_SEARCH_CONFIG", default="english")
KNOWLEDGE_MIN_RANK = env.float("KNOWLEDGE_MIN_RANK", default=0.15)
# Groups of words customers use for the same thing ("voucher", "gift card"); /dev/null for none
# (an empty value means the default file, as for every setting).
KNOWLEDGE_SYNONYMS_FILE = env.str(
    "KNOWLEDGE_SYNONYMS_FILE", default=str(BASE_DIR / "conversations" / "knowledge" / "synonyms.txt")
)

CONTACT_EMAIL = env.str("CONTACT_EMAIL", default="")

# Handing a person over to staff, and telling staff (conversations.handoff, conversations.alerts).
HANDOFF_MESSAGE = env.str(
    "HANDOFF_MESSAGE",
    default="I've asked someone from our team to take over. They'll reply here as soon as they can.",
)
# When staff are there to answer (conversations.hours: "mon-fri 09:00-17:00; sat 10:00-13:00"), in
# TIME_ZONE; empty means always. Outside them a handoff tells the person HANDOFF_MESSAGE_CLOSED, its
# {opens} the next opening in words ("tomorrow at 09:00"). A syntax error is a system check error
# (config.checks), so the web and worker processes do not start with it.
BUSINESS_HOURS = env.str("BUSINESS_HOURS", default="")
HANDOFF_MESSAGE_CLOSED = env.str(
    "HANDOFF_MESSAGE_CLOSED",
    default="I've asked someone from our team to take over. We're closed now; they'll reply when we open, {opens}.",
)
# At a handoff the LLM summarises the conversation for staff; the alert waits at most this long for it.
HANDOFF_SUMMARY_TIMEOUT_SECONDS = env.float("HANDOFF_SUMMARY_TIMEOUT_SECONDS", default=10.0)
# How we did: when staff hand a conversation back after a handoff, the person is asked CSAT_QUESTION
# once, with five quick replies (1 to 5 stars); an answer is thanked once with CSAT_THANKS.
CSAT_ENABLED = env.bool("CSAT_ENABLED", default=False)
CSAT_QUESTION = env.str("CSAT_QUESTION", default="How did we do?")
CSAT_THANKS = env.str("CSAT_THANKS", default="Thank you for telling us!")
STAFF_ALERT_EMAILS = env.list("STAFF_ALERT_EMAILS", default=[])
STAFF_ALERT_WEBHOOK_URL = env.str("STAFF_ALERT_WEBHOOK_URL", default="")
# The service's public address, for links in alerts (e.g. https://bot.example.com). Its host is
# one the service answers to, and its origin one the admin's forms may come from, so going live
# behind a tunnel or a proxy needs SITE_URL only.
SITE_URL = env.str("SITE_URL", default="http://localhost:8000").rstrip("/")
_site = urlsplit(SITE_URL)
if _site.hostname:
    _site_host = f"[{_site.hostname}]" if ":" in _site.hostname else _site.hostname
    if _site_host not in ALLOWED_HOSTS:
        ALLOWED_HOSTS.append(_site_host)
    _site_origin = f"{_site.scheme}://{_site.netloc.rpartition('@')[2]}"
    if _site_origin not in CSRF_TRUSTED_ORIGINS:
        CSRF_TRUSTED_ORIGINS.append(_site_origin)
PAGE_TOKEN_CHECK_HOURS = env.float("PAGE_TOKEN_CHECK_HOURS", default=6)
# Seconds before each further try of an alert channel that failed; their count is the retries.
ALERT_RETRY_INTERVALS = [
    int(seconds) for seconds in env.list("ALERT_RETRY_INTERVALS", default=["10", "60", "300"])
]
# Alert emails: django-environ's email URL (smtp://user:password@host:587, consolemail://, ...).
# A URL that is not one leaves the console backend in place; `check --deploy` reports it.
try:
    vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
    EMAIL_URL_ERROR = ""
except environ.ImproperlyConfigured as error:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    EMAIL_URL_ERROR = str(error)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="webmaster@localhost")

# /metrics answers a bearer METRICS_TOKEN, or a staff member signed in to the admin.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Where every process (gunicorn's, the RQ pool's) keeps its counts for /metrics to add up.
# prometheus_client reads the variable when first imported, which is after settings load.
PROMETHEUS_MULTIPROC_DIR = Path(env.str("PROMETHEUS_MULTIPROC_DIR", default=str(VAR_DIR / "metrics")))
PROMETHEUS_MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(PROMETHEUS_MULTIPROC_DIR)

# Comments into conversations (conversations.services.comments): `on` answers each new comment on
# the Pages' posts and Instagram media with one private reply written by the LLM; `off` ignores
# them. Any other value is a check error (config.checks) and answers nothing. With keywords
# (a comma list), only comments containing one of them, in any case, are answered. A public
# reply text also answers each of those comments publicly, under it.
COMMENT_REPLIES = env.str("COMMENT_REPLIES", default="off").strip().lower()
COMMENT_KEYWORDS = env.list("COMMENT_KEYWORDS", default=[])
COMMENT_PUBLIC_REPLY = env.str("COMMENT_PUBLIC_REPLY", default="").strip()

# Staff tools: a message sent by staff (admin, API, send_message) pauses the bot for that
# conversation, so it does not talk over a human; staff resume it from the admin.
STAFF_REPLY_PAUSES_BOT = env.bool("STAFF_REPLY_PAUSES_BOT", default=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_rq",
    "axes",
    "conversations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it answers a locked-out login with 429.
    "axes.middleware.AxesMiddleware",
]

# Admin logins (django-axes): after ADMIN_LOGIN_FAILURE_LIMIT failures for one user name from one
# client address, that pair is locked out for ADMIN_LOGIN_LOCKOUT_MINUTES (each further try
# restarts the wait); a successful login clears the count. The client address is the proxy's
# forwarded one only when the proxy is trusted (FORWARDED_ALLOW_IPS). Staff unlock a pair early
# in the admin (Axes > Access attempts) or with `manage.py axes_reset_username NAME`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("ADMIN_LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.proxy.client_ip"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
# Reuse connections between requests; health checks drop ones the server closed.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _db_options = DATABASES["default"].setdefault("OPTIONS", {})
    _db_options.setdefault("connect_timeout", 5)
    # Statements that run again and again (the webhook's insert, the jobs' queries) are
    # parsed and planned once per connection instead of every time: psycopg prepares them on
    # their 5th run, which needs server-side parameter binding (docs/decisions.md). Behind
    # PgBouncer in transaction mode this needs PgBouncer >= 1.21 (max_prepared_statements);
    # with an older one, DATABASE_URL's `?server_side_binding=false` turns it off.
    _db_options["server_side_binding"] = env.parse_value(
        str(_db_options.get("server_side_binding", True)), bool
    )
    _db_options.setdefault("prepare_threshold", 5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://localhost:6379/0")
# One connection pool per process for every django-rq caller (enqueueing, health check,
# workers). Given a "URL", django-rq builds a new client and pool on each call, so every
# enqueue would open a TCP connection, and it ignores CONNECTION_KWARGS. The pool connects
# lazily and redis-py renews it in forked processes (gunicorn's and the RQ pool's workers).
# Fail fast when Redis is down: the webhook must still answer in milliseconds.
REDIS_POOL = redis.ConnectionPool.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
RQ_QUEUES = {
    "default": {
        # HOST and PORT are required by django-rq but unused: the pool decides.
        "HOST": REDIS_POOL.connection_kwargs.get("host", ""),
        "PORT": REDIS_POOL.connection_kwargs.get("port", 0),
        "DB": REDIS_POOL.connection_kwargs.get("db", 0),
        "REDIS_CLIENT_KWARGS": {"connection_pool": REDIS_POOL},
        "DEFAULT_TIMEOUT": 180,
    },
}
# Shared by every web process, so the send endpoint's throttle counts per user, not per
# gunicorn worker.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "cache",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    },
}
# Services enqueue inside their own transaction.on_commit callbacks, where they can
# log the job id and survive a Redis outage; django-rq must not defer a second time.
RQ = {"COMMIT_MODE": "auto"}
RQ_SHOW_ADMIN_LINK = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"messenger_send": env.str("API_SEND_THROTTLE_RATE", default="60/min")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Messenger AI assistant API",
    "DESCRIPTION": "Send Messenger messages on behalf of the Page and check the service's health.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from our own static files: the docs page works with no CDN reachable.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": MEDIA_STORAGE_BACKEND, "OPTIONS": MEDIA_STORAGE_OPTIONS},
    # Not the manifest storage: the web process must serve the admin's CSS even where no
    # collectstatic step ran (a bare Procfile deploy); collected files are used when present.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# The DEBUG error page hides secrets inside settings too: URL passwords (REDIS_URL, the cache)
# and the alert webhook's URL, whose path is its secret.
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.reporting.SecretsHiddenFilter"

# Production defaults: behind a TLS-terminating proxy. Whether a request came in over HTTPS is
# gunicorn's word (wsgi.url_scheme), which believes X-Forwarded-Proto from FORWARDED_ALLOW_IPS
# only; Django's SECURE_PROXY_SSL_HEADER would believe it from anyone.
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# `json`: one JSON object per line (Django, gunicorn and rq alike), for a log stack to search.
LOG_FORMAT = env.str("LOG_FORMAT", default="text").lower()
if LOG_FORMAT not in ("text", "json"):
    print(f"WARNING: LOG_FORMAT={LOG_FORMAT!r} is neither text nor json; logging as text.", file=sys.stderr)
    LOG_FORMAT = "text"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    # Adds the conversation id, mid and RQ job id of the work being logged, as fields.
    "filters": {"context": {"()": "conversations.log_context.LogContextFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # With LOG_LEVEL=DEBUG, Django would log every SQL statement; httpx's INFO line per
        # Groq request is left on, which is what operators expect to see.
        "django.db.backends": {"level": "WARNING"},
        # django-axes announces its version at every start of every command.
        "axes.apps": {"level": "WARNING"},
    },
}
# Python's warnings (a library's deprecation, a missing static directory) as log lines too, in
# the same format; Django no longer routes them itself.
logging.captureWarnings(True)

# With DEBUG on, a missing secret is a warning and a development key stands in. With DEBUG off,
# the web and worker processes refuse to start (config.checks) and an empty SECRET_KEY stays
# empty: Django itself refuses whatever needs it (sessions, signing).
_missing_secrets = [name for name in PRODUCTION_SECRETS if not globals()[name]]
if DEBUG and _missing_secrets:
    _names = ", ".join(_missing_secrets)
    print(f"WARNING: {_names} not set; starting anyway because DEBUG is on.", file=sys.stderr)
    SECRET_KEY = SECRET_KEY or "django-insecure-dev-only-key-never-use-in-production"
