"""The Pages the service answers for, as every process knows them, without a database query per event.

A Page is a connected one (conversations.models.Page, `manage.py pages connect`) or the
environment's: FACEBOOK_PAGE_ACCESS_TOKEN is one more Page, never stored. With FACEBOOK_PAGE_ID
set it is that Page; empty, it is every Page id that is not stored (today's single-Page
deployments change nothing). A connected Page with the same id wins over the environment's,
and a disconnected one is answered by nobody until it is connected again. Instagram events
are answered for the connected Page whose linked account they name.

Each process keeps the stored Pages (their tokens decrypted) in memory, loaded from the
database, and loads them again when the version kept in the cache (Redis, shared by every
process) moves: `pages_changed` moves it once a connect, disconnect or edit commits. So a
webhook delivery costs one Redis GET for its Pages, and a change is seen by every process at
its next delivery. Without Redis, the database is read each time.
"""

import base64
import binascii
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from redis.exceptions import RedisError

from conversations.models import ChannelIdentity, Page
from messenger.errors import InvalidTokenError
from messenger.events import Platform
from messenger.graph import GraphClient

logger = logging.getLogger(__name__)

VERSION_KEY = "pages:version"
# What the registry holds before its first load: never equal to a version in the cache.
_NEVER_LOADED = object()
# Fernet's token format (its spec): version byte 0x80, then time, IV, ciphertext and HMAC.
_FERNET_VERSION = 0x80
_FERNET_MIN_BYTES = 57


class PageNotConnectedError(InvalidTokenError):
    """A conversation's Page is not connected (any more): there is no token to write with."""


class PageChoiceError(ValueError):
    """A send that names no Page (or an unknown one) when that is not enough; `str()` says why."""


@dataclass(frozen=True)
class PageInfo:
    """One Page, as routing and Graph calls need it."""

    page_id: str
    name: str
    access_token: str = field(repr=False)
    instagram_account_id: str | None = None
    instagram_username: str = ""
    # Blank: the service's defaults (conversations.services.replies, .handoff).
    system_prompt: str = ""
    handoff_message: str = ""
    business_hours: str = ""
    handoff_message_closed: str = ""
    # FACEBOOK_PAGE_ACCESS_TOKEN's Page; its page_id is "" while FACEBOOK_PAGE_ID is unset and
    # no event or conversation names it.
    from_environment: bool = False

    @property
    def label(self) -> str:
        """How staff know the Page, in alerts and log lines."""
        if self.from_environment:
            return "FACEBOOK_PAGE_ACCESS_TOKEN's Page" + (f" ({self.page_id})" if self.page_id else "")
        return f"{self.name} ({self.page_id})"

    def graph_client(self) -> GraphClient:
        """The Graph client speaking for this Page, with its own token."""
        if not token_readable(self.access_token):
            raise InvalidTokenError(
                f"The access token of {self.label} cannot be decrypted with SECRET_KEY, "
                "SECRET_KEY_FALLBACKS and FIELD_ENCRYPTION_SALTS: restore the key it was encrypted "
                "with, or connect the Page again."
            )
        return GraphClient.from_settings(access_token=self.access_token)


@dataclass(frozen=True)
class Pages:
    """The stored Pages at one moment: the connected ones by Page id and by Instagram account
    id, and the ids of the disconnected ones."""

    by_page_id: dict[str, PageInfo]
    by_instagram_id: dict[str, PageInfo]
    disconnected: frozenset[str]

    def for_event(self, *, platform: Platform, entry_id: str) -> PageInfo | None:
        """The Page answering an event whose webhook entry has this id, or None: not ours."""
        if platform == "instagram":
            return self.by_instagram_id.get(entry_id)
        return self.get(page_id=entry_id)

    def get(self, *, page_id: str) -> PageInfo | None:
        """The Page with this Facebook id, connected or the environment's; None when it is neither."""
        return self.by_page_id.get(page_id) or self._environment_page(page_id=page_id)

    def available(self) -> list[PageInfo]:
        """Every Page a message can be sent as: the connected ones, then the environment's."""
        pages = list(self.by_page_id.values())
        environment = self._environment_page(page_id=settings.FACEBOOK_PAGE_ID)
        if environment is not None and environment.page_id not in self.by_page_id:
            pages.append(environment)
        return pages

    def _environment_page(self, *, page_id: str) -> PageInfo | None:
        if not settings.FACEBOOK_PAGE_ACCESS_TOKEN or page_id in self.disconnected:
            return None
        if settings.FACEBOOK_PAGE_ID and page_id != settings.FACEBOOK_PAGE_ID:
            return None
        return PageInfo(
            page_id=page_id, name="", access_token=settings.FACEBOOK_PAGE_ACCESS_TOKEN, from_environment=True
        )


class PageRegistry:
    """One process's Pages (see the module's docstring): `current()` costs one cache GET, and a
    database read only when the version moved."""

    def __init__(self) -> None:
        # (version, pages), replaced whole so that threads never see half of a reload.
        self._state: tuple[Any, Pages | None] = (_NEVER_LOADED, None)

    def current(self) -> Pages:
        try:
            version = cache.get(VERSION_KEY)
        except RedisError as error:
            logger.warning("Pages read from the database: the cache is unavailable (%s)", error)
            return _pages_load()
        known_version, pages = self._state
        if pages is None or version != known_version:
            pages = _pages_load()
            self._state = (version, pages)
        return pages

    def forget(self) -> None:
        """Load from the database at the next `current()`, whatever the version says."""
        self._state = (_NEVER_LOADED, None)


_registry = PageRegistry()


def pages_current() -> Pages:
    """This process's Pages, up to date with every change committed (see PageRegistry)."""
    return _registry.current()


def pages_forget() -> None:
    """Drop this process's Pages (tests: rows rolled back behind the version's back)."""
    _registry.forget()


def pages_changed() -> None:
    """Tell every process to load the Pages again, once the current transaction commits (loading
    before then would keep the old rows under the new version)."""
    transaction.on_commit(_version_bump, robust=True)


def page_for_conversation(*, identity: ChannelIdentity) -> PageInfo | None:
    """The Page a conversation is with; None for the console's, and for a Page not connected."""
    if identity.channel == ChannelIdentity.Channel.CONSOLE:
        return None
    return pages_current().get(page_id=identity.page_id)


def graph_client_for(*, page_id: str) -> GraphClient:
    """The Graph client of the Page a conversation is with (its `identity.page_id`).

    Raises PageNotConnectedError when that Page is not connected (any more).
    """
    page = pages_current().get(page_id=page_id)
    if page is None:
        raise PageNotConnectedError(
            f"Page {page_id} is not connected: connect it again (manage.py pages connect) to write here."
        )
    return page.graph_client()


def page_for_sending(*, page_id: str | None) -> PageInfo:
    """The Page a staff message goes out as: `page_id`'s, or the only one there is.

    Raises PageChoiceError when `page_id` is no Page of ours, or when it is missing and several
    Pages (or none) could send it.
    """
    pages = pages_current()
    if page_id:
        page = pages.get(page_id=page_id)
        if page is None:
            raise PageChoiceError(
                f"Page {page_id} is not connected (manage.py pages list shows those that are)."
            )
        return page
    available = pages.available()
    if len(available) == 1:
        return available[0]
    if not available:
        raise PageChoiceError(
            "No Page is connected: connect one (manage.py pages connect) or set FACEBOOK_PAGE_ACCESS_TOKEN."
        )
    ids = ", ".join(page.page_id or "FACEBOOK_PAGE_ACCESS_TOKEN's" for page in available)
    raise PageChoiceError(f"{len(available)} Pages are connected ({ids}): say which one to send as.")


def _pages_load() -> Pages:
    by_page_id, by_instagram_id, disconnected = {}, {}, set()
    for page in Page.objects.all():
        if page.disconnected_at is not None:
            disconnected.add(page.page_id)
            continue
        info = PageInfo(
            page_id=page.page_id,
            name=page.name,
            access_token=page.access_token or "",
            instagram_account_id=page.instagram_account_id,
            instagram_username=page.instagram_username,
            system_prompt=page.system_prompt.strip(),
            handoff_message=page.handoff_message.strip(),
            business_hours=page.business_hours.strip(),
            handoff_message_closed=page.handoff_message_closed.strip(),
        )
        by_page_id[page.page_id] = info
        if page.instagram_account_id:
            by_instagram_id[page.instagram_account_id] = info
    return Pages(by_page_id=by_page_id, by_instagram_id=by_instagram_id, disconnected=frozenset(disconnected))


def _version_bump() -> None:
    cache.set(VERSION_KEY, uuid.uuid4().hex, timeout=None)


def token_readable(token: str) -> bool:
    """False for no token, and for one still in Fernet's format: the field could not decrypt it
    (django-fernet-encrypted-fields then gives the stored text as it is) with the keys it has."""
    if not token:
        return False
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
    except (binascii.Error, ValueError):
        return True
    return not (len(raw) >= _FERNET_MIN_BYTES and raw[0] == _FERNET_VERSION)
