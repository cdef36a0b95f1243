"""Connecting Facebook Pages (and the Instagram accounts linked to them), disconnecting them, their
settings, and their tokens' encryption. Which Page answers what is conversations.pages.

A Page is connected with a Page access token alone: Graph says which Page it is for, the app
is subscribed to the Page's webhook fields, and the linked Instagram professional account is
looked up. Only then is anything stored, the token encrypted at rest. Every change tells the
other processes (conversations.pages.pages_changed) once it is committed.
"""

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from conversations.models import Page
from conversations.pages import pages_changed, token_readable
from messenger.errors import DeliveryError, InvalidTokenError
from messenger.graph import GraphClient

logger = logging.getLogger(__name__)

# The webhook fields the app is subscribed to on each Page: messages and what comes with
# them (postbacks, echoes, reactions, edits, referrals), and the Page's feed (comments).
SUBSCRIBED_FIELDS = (
    "messages",
    "messaging_postbacks",
    "message_echoes",
    "message_reactions",
    "message_edits",
    "messaging_referrals",
    "feed",
)
_NAME_MAX_CHARS = Page._meta.get_field("name").max_length
# Meta's tokens are a few hundred characters; this bounds what a paste can make us send.
_TOKEN_MAX_CHARS = 2000


class PageConnectError(Exception):
    """A Page that could not be connected; `reason` says why in one line, never with the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ReencryptResult:
    rewritten: int
    # The Pages whose token none of the keys decrypts: left as they are.
    unreadable: list[Page]


def page_connect(*, access_token: str) -> Page:
    """Connect the Page `access_token` is for (again: its token is replaced), with its Instagram
    account if one is linked; the Page stored.

    Raises PageConnectError, with nothing stored, when the token is refused or Graph fails.
    """
    token = access_token.strip()
    if not token:
        raise PageConnectError("No token given: paste the Page access token.")
    if len(token) > _TOKEN_MAX_CHARS or not token.isascii() or not token.isprintable() or " " in token:
        raise PageConnectError("That is not a Page access token: a token is one word of letters and digits.")
    client = GraphClient.from_settings(access_token=token)
    try:
        page_id, name = _page_identify(client=client)
        client.app_subscribe(page_id=page_id, fields=SUBSCRIBED_FIELDS)
        instagram = client.instagram_account_get(page_id=page_id)
    except InvalidTokenError as error:
        raise PageConnectError(f"Facebook refused the token: {error.reason}") from error
    except DeliveryError as error:
        raise PageConnectError(f"Not connected: {error.reason}") from error
    now = timezone.now()
    with transaction.atomic():
        if instagram is not None:
            # The account moved to this Page: the other one no longer answers it.
            Page.objects.filter(instagram_account_id=instagram.id).exclude(page_id=page_id).update(
                instagram_account_id=None, instagram_username=""
            )
        page, _ = Page.objects.update_or_create(
            page_id=page_id,
            defaults={
                "name": name,
                "access_token": token,
                "instagram_account_id": instagram.id if instagram else None,
                "instagram_username": (instagram.username or "") if instagram else "",
                "token_state": Page.TokenState.WORKS,
                "token_checked_at": now,
                "token_error": "",
                "connected_at": now,
                "disconnected_at": None,
            },
        )
        pages_changed()
    logger.info(
        "Connected Page %s (%s), Instagram account %s", page.name, page.page_id, page.instagram_account_id
    )
    return page


def _page_identify(*, client: GraphClient) -> tuple[str, str]:
    """The id and name of the Page the client's token is for."""
    me = client.page_get()
    page_id = me.get("id", "")
    if not page_id.isdigit():
        raise PageConnectError("Facebook did not say which Page the token is for: is it a Page access token?")
    return page_id, me.get("name", "")[:_NAME_MAX_CHARS] or f"Page {page_id}"


def page_disconnect(*, page_id: str) -> Page:
    """Stop answering the Page: its token is forgotten, its conversations stay. Raises
    Page.DoesNotExist for a Page never connected."""
    with transaction.atomic():
        page = Page.objects.select_for_update().get(page_id=page_id)
        page.access_token = None
        page.disconnected_at = timezone.now()
        page.save(update_fields=["access_token", "disconnected_at"])
        pages_changed()
    logger.info("Disconnected Page %s (%s)", page.name, page.page_id)
    return page


# What staff may set for one Page; blank means the service's setting.
PAGE_SETTINGS = ("system_prompt", "handoff_message", "business_hours", "handoff_message_closed")


def page_settings_update(*, page: Page) -> Page:
    """Save staff's edits of a Page's own system prompt, handoff messages and business hours."""
    with transaction.atomic():
        page.save(update_fields=list(PAGE_SETTINGS))
        pages_changed()
    return page


def pages_reencrypt() -> ReencryptResult:
    """Encrypt every stored token again with the newest key (SECRET_KEY, FIELD_ENCRYPTION_SALTS'
    first salt), after a rotation put the old key in SECRET_KEY_FALLBACKS or a new salt first.

    A token no key decrypts is left as it is, and reported.
    """
    rewritten, unreadable = 0, []
    with transaction.atomic():
        for page in Page.objects.select_for_update().exclude(access_token=None).order_by("page_id"):
            if not token_readable(page.access_token):
                unreadable.append(page)
                continue
            page.save(update_fields=["access_token"])
            rewritten += 1
    return ReencryptResult(rewritten=rewritten, unreadable=unreadable)
