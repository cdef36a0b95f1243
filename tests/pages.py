"""Connected Pages for the suite: registered with the Graph stand-in, then connected as an operator would."""

from django.test import TestCase

from conversations.models import Page
from conversations.services.pages import page_connect
from devtools.standins.graph import PAGE_ID, PAGE_NAME, GraphStandIn

# The environment's token (tests/settings.py): once a test registers Pages with the stand-in,
# it answers only registered tokens, so this one is registered as the stand-in's own Page.
ENVIRONMENT_TOKEN = "test-page-token"


def page_connected(
    graph: GraphStandIn, *, token: str, page_id: str, name: str, instagram: tuple[str, str] | None = None
) -> Page:
    """Page `page_id` connected with `token`, seen at once by this process's Pages."""
    graph.page_add(token=token, page_id=page_id, name=name, instagram=instagram)
    with TestCase.captureOnCommitCallbacks(execute=True):
        return page_connect(access_token=token)


def environment_page_registered(graph: GraphStandIn) -> None:
    """Keep the environment's token working once other Pages are registered with the stand-in."""
    graph.page_add(token=ENVIRONMENT_TOKEN, page_id=PAGE_ID, name=PAGE_NAME)
