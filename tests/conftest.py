import pytest
from django.db import connection
from django_rq import get_connection

from devtools.standins.chat_webhook import WebhookStandIn
from devtools.standins.graph import GraphStandIn
from devtools.standins.groq import GroqStandIn
from tests import migrated_rows

migrated_rows.connect()


def pytest_report_header(config):
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        return "PostgreSQL is not answering: running on SQLite; PostgreSQL-only tests are skipped."
    return f"database: PostgreSQL {database['HOST']}:{database['PORT']}; redis: {settings.REDIS_URL}"


def pytest_collection_modifyitems(config, items):
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL; this run is on SQLite")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _pages_forgotten():
    """Each test reads the Pages of its own database: the rows an earlier test connected were
    rolled back, but the version it left in Redis says nothing of that."""
    from conversations.pages import pages_forget

    pages_forget()


@pytest.fixture
def redis_conn():
    """The test Redis database, emptied before the test."""
    conn = get_connection("default")
    conn.flushdb()
    return conn


@pytest.fixture(scope="session")
def graph_standin():
    with GraphStandIn() as standin:
        yield standin


@pytest.fixture
def graph(graph_standin, settings):
    """The Graph API stand-in, emptied, as the service's FACEBOOK_GRAPH_API_URL."""
    graph_standin.reset()
    settings.FACEBOOK_GRAPH_API_URL = graph_standin.url
    return graph_standin


@pytest.fixture(scope="session")
def groq_service_standin():
    with GroqStandIn() as standin:
        yield standin


@pytest.fixture
def groq(groq_service_standin, settings, redis_conn):
    """The Groq stand-in, emptied, as the service's GROQ_BASE_URL; what an earlier test taught
    the service of Groq's budgets (in Redis) is forgotten."""
    from conversations.llm import get_groq_client

    groq_service_standin.reset()
    settings.GROQ_BASE_URL = groq_service_standin.url
    get_groq_client.cache_clear()
    yield groq_service_standin
    get_groq_client.cache_clear()


@pytest.fixture
def ada_conversation(db):
    """A conversation with Ada, who has written to page 1001 (so the Page may write back)."""
    from conversations.models import ChannelIdentity, Contact, Conversation

    identity = ChannelIdentity.objects.create(
        contact=Contact.objects.create(name="Ada"), page_id="1001", external_id="2400000000000001"
    )
    return Conversation.objects.create(identity=identity)


@pytest.fixture(scope="session")
def webhook_standin():
    with WebhookStandIn() as standin:
        yield standin


@pytest.fixture
def alert_webhook(webhook_standin, settings):
    """The chat webhook stand-in, emptied, as STAFF_ALERT_WEBHOOK_URL."""
    webhook_standin.reset()
    settings.STAFF_ALERT_WEBHOOK_URL = f"{webhook_standin.url}/hooks/staff"
    return webhook_standin
