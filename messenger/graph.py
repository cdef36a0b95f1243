"""Client for the parts of Meta's Graph API the service uses: the Send API (Messenger and Instagram,
private replies to comments included), people's profiles, the Page (its webhook subscription, its
Instagram account, its Messenger profile), and comments and posts.

A client speaks for one Page: the one whose access token it is made with (`from_settings()`
makes the client of FACEBOOK_PAGE_ACCESS_TOKEN's Page). Instagram is reached through the
Page it is linked to, with that Page's token.

One module-level `requests.Session` holds the connection pool for the whole process, so
consecutive sends reuse TLS connections. It has NO urllib3 retries, and none are added here:
retries belong to exactly one layer, the RQ job, which knows whether a message was already
sent and backs off with growing intervals. Stacking retries here would multiply the attempts
and could send a message twice. Every error is raised typed (see messenger.errors).

Processes that fork (gunicorn's master, the RQ pool's supervisor) make no Graph call before
they do, so no two processes ever share a live socket.

The page access token travels in the `Authorization: Bearer` header, never in a URL, so it
cannot leak through access logs, exception messages or our own logs.
"""

import logging
import re
import unicodedata
from collections.abc import Sequence
from typing import Any, NamedTuple
from urllib.parse import quote

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from messenger.errors import (
    PermanentDeliveryError,
    TransientDeliveryError,
    classify_graph_error,
)
from messenger.events import PLATFORMS, Platform
from messenger.profile import MESSENGER_PROFILE_FIELDS

logger = logging.getLogger(__name__)

# Metadata attached to every message the bot sends; its echo carries it back, which tells
# the bot's own messages from a human replying in Meta's inbox.
OUR_METADATA_MARKER = "messenger-ai:bot"
# Most characters one message may carry: Messenger's, and Instagram's.
MESSAGE_CHARACTER_LIMIT = 2000
INSTAGRAM_MESSAGE_CHARACTER_LIMIT = 1000
PROFILE_FIELDS = ("first_name", "last_name", "profile_pic")
INSTAGRAM_PROFILE_FIELDS = ("name", "username", "profile_pic")
# Where a public reply to a comment is posted, and the field that holds a post's text.
_COMMENT_REPLY_EDGE: dict[Platform, str] = {"messenger": "comments", "instagram": "replies"}
_POST_TEXT_FIELD: dict[Platform, str] = {"messenger": "message", "instagram": "caption"}

# Slightly over a multiple of 3 s, the TCP retransmission interval (requests' advice).
CONNECT_TIMEOUT_SECONDS = 3.05
# Sized for a threaded web process (send endpoint, admin) plus a worker's sequential sends.
_POOL_SIZE = 16


def _build_session() -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=_POOL_SIZE, pool_maxsize=_POOL_SIZE, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


_session = _build_session()


class InstagramAccount(NamedTuple):
    """The Instagram professional account linked to a Page."""

    id: str
    username: str | None


class SentMessage(NamedTuple):
    """What the Send API answered: the message's id, and the id of the person it went to (for a
    private reply, the commenter's page-scoped id, unknown until then)."""

    message_id: str
    recipient_id: str | None


class GraphClient:
    def __init__(
        self,
        *,
        base_url: str,
        api_version: str,
        access_token: str,
        timeout: tuple[float, float] = (CONNECT_TIMEOUT_SECONDS, 10),
    ) -> None:
        self._base_url = f"{base_url.rstrip('/')}/{api_version.strip('/')}"
        self._access_token = access_token
        self._timeout = timeout

    @classmethod
    def from_settings(cls, *, access_token: str | None = None) -> "GraphClient":
        """The client of FACEBOOK_PAGE_ACCESS_TOKEN's Page, or of the Page `access_token` is for,
        with the Graph settings (URL, version, timeout)."""
        return cls(
            base_url=settings.FACEBOOK_GRAPH_API_URL,
            api_version=settings.FACEBOOK_GRAPH_API_VERSION,
            access_token=access_token or settings.FACEBOOK_PAGE_ACCESS_TOKEN,
            timeout=(CONNECT_TIMEOUT_SECONDS, float(settings.GRAPH_TIMEOUT_SECONDS)),
        )

    def send_text(
        self,
        *,
        psid: str | None = None,
        comment_id: str | None = None,
        text: str,
        metadata: str,
        tag: str | None = None,
        quick_replies: Sequence[tuple[str, str]] = (),
    ) -> str:
        """Send one text message (at most the platform's character limit); returns Meta's mid.

        The recipient is a person (`psid`, their PSID or IGSID), or with `comment_id` the
        author of that comment, as its private reply (see `private_reply_send`).
        With a `tag` (Meta's message tags: HUMAN_AGENT) it goes out as a tagged message, which
        Meta allows outside the 24-hour window. `quick_replies` are (title, payload) buttons
        under it. A 2xx without a message id raises PermanentDeliveryError: Meta accepted the
        request, so the message may well have been delivered, and a retry could send it twice.
        """
        if (psid is None) == (comment_id is None):
            raise ValueError("send_text needs exactly one of psid and comment_id")
        if comment_id is not None:
            if tag:
                raise ValueError("a private reply cannot be tagged")
            return self.private_reply_send(
                comment_id=comment_id, text=text, metadata=metadata, quick_replies=quick_replies
            ).message_id
        kind = {"messaging_type": "MESSAGE_TAG", "tag": tag} if tag else {"messaging_type": "RESPONSE"}
        sent = self._message_send(
            recipient={"id": psid}, kind=kind, text=text, metadata=metadata, quick_replies=quick_replies
        )
        logger.info("Message sent: sender=%s mid=%s", psid, sent.message_id)
        return sent.message_id

    def private_reply_send(
        self, *, comment_id: str, text: str, metadata: str, quick_replies: Sequence[tuple[str, str]] = ()
    ) -> SentMessage:
        """Send the private reply to a comment: one message to its author, in Messenger (Facebook
        comments) or Instagram Direct (Instagram comments), with the Page's token.

        Meta takes one per comment, within 7 days of it: later ones raise CommentUnavailableError
        (see messenger.errors). The answer names the commenter's PSID (or IGSID), the id their
        replies will come from, which a comment does not give.
        """
        sent = self._message_send(
            recipient={"comment_id": comment_id},
            kind={"messaging_type": "RESPONSE"},
            text=text,
            metadata=metadata,
            quick_replies=quick_replies,
            about_comment=True,
        )
        logger.info(
            "Private reply sent: comment=%s sender=%s mid=%s", comment_id, sent.recipient_id, sent.message_id
        )
        return sent

    def _message_send(
        self,
        *,
        recipient: dict[str, str],
        kind: dict[str, str],
        text: str,
        metadata: str,
        quick_replies: Sequence[tuple[str, str]],
        about_comment: bool = False,
    ) -> SentMessage:
        message: dict[str, Any] = {"text": text, "metadata": metadata}
        if quick_replies:
            message["quick_replies"] = [
                {"content_type": "text", "title": title, "payload": payload}
                for title, payload in quick_replies
            ]
        response = self._request(
            "POST",
            "/me/messages",
            json={"recipient": recipient, **kind, "message": message},
            about_comment=about_comment,
        )
        answer = _json_object(response)
        message_id = answer.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            raise PermanentDeliveryError(
                "Facebook accepted the message but returned no message id (unexpected response)",
                http_status=response.status_code,
            )
        return SentMessage(message_id=message_id, recipient_id=_graph_id(answer.get("recipient_id")))

    def send_action(self, *, psid: str, action: str) -> None:
        """Send a sender action: `mark_seen`, `typing_on` or `typing_off`."""
        self._request("POST", "/me/messages", json={"recipient": {"id": psid}, "sender_action": action})

    def profile_get(self, *, psid: str, platform: Platform = "messenger") -> dict[str, str]:
        """The person's profile, those fields Meta gave; a typed DeliveryError when it refuses (no
        permission, the person unavailable).

        Messenger: first_name, last_name and profile_pic, as Meta names them. Instagram asks
        name, username and profile_pic and answers in the same keys: `first_name` is the
        person's whole name (their username when they have none), `username` and
        `profile_pic` are Instagram's, and there is no last_name.
        """
        fields = INSTAGRAM_PROFILE_FIELDS if _platform(platform) == "instagram" else PROFILE_FIELDS
        data = _json_object(self._request("GET", _node(psid), params={"fields": ",".join(fields)}))
        profile = {field: data[field] for field in fields if isinstance(data.get(field), str)}
        if platform == "instagram":
            name = profile.pop("name", "") or profile.get("username", "")
            profile.update({"first_name": name} if name else {})
        return profile

    def page_get(self) -> dict[str, str]:
        """The Page the token belongs to (`id`, `name`): a cheap way to ask whether the token still works."""
        profile = _json_object(self._request("GET", "/me", params={"fields": "id,name"}))
        return {field: str(profile[field]) for field in ("id", "name") if field in profile}

    def app_subscribe(self, *, page_id: str, fields: Sequence[str]) -> None:
        """Subscribe this app to the Page's webhook `fields` (messages, feed, ...): Meta sends a Page's
        events only to the apps it is subscribed to. The Page's own token is needed."""
        if not fields:
            raise ValueError("app_subscribe needs at least one field")
        response = self._request(
            "POST", f"{_node(page_id)}/subscribed_apps", json={"subscribed_fields": ",".join(fields)}
        )
        # Meta's own examples answer the string "true"; the API answers the boolean.
        if _json_object(response).get("success") not in (True, "true"):
            raise PermanentDeliveryError(
                "Facebook did not confirm the webhook subscription (unexpected response)",
                http_status=response.status_code,
            )

    def instagram_account_get(self, *, page_id: str) -> InstagramAccount | None:
        """The Instagram professional account linked to the Page, or None when there is none."""
        response = self._request(
            "GET", _node(page_id), params={"fields": "instagram_business_account{id,username}"}
        )
        account = _json_object(response).get("instagram_business_account")
        account_id = _graph_id(account.get("id")) if isinstance(account, dict) else None
        if account_id is None:
            return None
        username = account.get("username")
        return InstagramAccount(id=account_id, username=username if isinstance(username, str) else None)

    def comment_reply(self, *, comment_id: str, text: str, platform: Platform) -> str:
        """Answer a comment publicly, as the Page (a reply under it); returns the new comment's id.

        A 2xx without an id raises PermanentDeliveryError, not a retry: the reply may be posted.
        """
        edge = _COMMENT_REPLY_EDGE[_platform(platform)]
        response = self._request(
            "POST", f"{_node(comment_id)}/{edge}", json={"message": text}, about_comment=True
        )
        reply_id = _graph_id(_json_object(response).get("id"))
        if reply_id is None:
            raise PermanentDeliveryError(
                "Facebook accepted the reply but returned no id (unexpected response)",
                http_status=response.status_code,
            )
        logger.info("Comment answered: comment=%s reply=%s", comment_id, reply_id)
        return reply_id

    def post_text_get(self, *, post_id: str, platform: Platform) -> str:
        """The text of a Facebook post (its message) or of an Instagram media (its caption); "" when
        it has none."""
        field = _POST_TEXT_FIELD[_platform(platform)]
        text = _json_object(self._request("GET", _node(post_id), params={"fields": field})).get(field)
        return text if isinstance(text, str) else ""

    def messenger_profile_get(self) -> dict[str, Any]:
        """The Page's Messenger profile (get started, greeting, ice breakers, persistent menu) in Meta's
        format; {} when none of it is set."""
        response = self._request(
            "GET", "/me/messenger_profile", params={"fields": ",".join(MESSENGER_PROFILE_FIELDS)}
        )
        data = _json_object(response).get("data")
        return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}

    def messenger_profile_set(self, *, profile: dict[str, Any]) -> None:
        """Set the fields `profile` has (Meta's format); the Page's other fields stay as they are."""
        response = self._request("POST", "/me/messenger_profile", json=profile)
        if _json_object(response).get("result") != "success":
            raise PermanentDeliveryError(
                "Facebook did not confirm the Messenger profile (unexpected response)",
                http_status=response.status_code,
            )

    def _request(
        self, method: str, path: str, *, about_comment: bool = False, **kwargs: Any
    ) -> requests.Response:
        """The 2xx response, or a typed DeliveryError (`about_comment`: see classify_graph_error)."""
        try:
            response = _session.request(
                method,
                self._base_url + path,
                headers={"Authorization": f"Bearer {self._access_token}"},
                timeout=self._timeout,
                **kwargs,
            )
        except requests.Timeout as error:
            raise TransientDeliveryError("The Facebook Graph API did not answer in time") from error
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
            raise TransientDeliveryError("Could not connect to the Facebook Graph API") from error
        except requests.RequestException as error:
            # Left: an unusable URL or similar misconfiguration, which no retry fixes.
            raise PermanentDeliveryError(
                f"Could not call the Facebook Graph API: {type(error).__name__}"
            ) from error
        if not response.ok:
            raise classify_graph_error(
                http_status=response.status_code,
                body=response.content,
                secrets=(self._access_token,),
                about_comment=about_comment,
            )
        return response


def _graph_id(value: object) -> str | None:
    """An id from a Graph answer: a string, or a number some endpoints give."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value else None


def _node(id_: str) -> str:
    """The path of a Graph node: ids come from outside, so they are escaped."""
    return "/" + quote(id_, safe="")


def _platform(platform: str) -> Platform:
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}")
    return platform  # type: ignore[return-value]


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# Whitespace runs are the natural cut points (one with a blank line ends a paragraph); the
# no-break spaces are left alone, they exist to keep their neighbours together.
_WHITESPACE_RUN = re.compile(r"[^\S\u00a0\u2007\u202f]+")
_SENTENCE_END = frozenset(".!?…")
# Closing quotes and brackets that may follow a sentence's final punctuation: `said."`
_CLOSERS = frozenset("\"')]}»”’")
# Full-width sentence ends are not followed by a space (Chinese, Japanese).
_FULL_WIDTH_SENTENCE_END = re.compile(r"[。！？]")
_ZERO_WIDTH_JOINER = "\u200d"
_PARAGRAPH, _LINE, _SENTENCE, _WORD = range(4)


def split_message(text: str, *, limit: int = MESSAGE_CHARACTER_LIMIT) -> list[str]:
    """`text` cut into parts of at most `limit` characters, to be sent in order.

    Each cut is at the last paragraph break that fits, else the last line break, else the
    last sentence end, else the last space; a word longer than `limit` is the only thing cut
    mid-word. The whitespace at each cut, and around the whole text, is dropped (Messenger
    would trim it anyway); nothing else is lost or reordered. A blank text gives [].
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    parts = []
    rest = text.strip()
    while len(rest) > limit:
        cut = _cut_position(rest, limit=limit)
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts


def _cut_position(text: str, *, limit: int) -> int:
    """Where to cut `text` (stripped, longer than `limit`) so the head is at most `limit`."""
    last_by_rank: dict[int, int] = {}
    for match in _WHITESPACE_RUN.finditer(text):
        if match.start() > limit:
            break
        last_by_rank[_boundary_rank(text, start=match.start(), run=match.group())] = match.start()
    for match in _FULL_WIDTH_SENTENCE_END.finditer(text, 0, limit):
        last_by_rank[_SENTENCE] = max(last_by_rank.get(_SENTENCE, 0), match.end())
    if not last_by_rank:
        return _hard_cut_position(text, limit=limit)
    return last_by_rank[min(last_by_rank)]


def _boundary_rank(text: str, *, start: int, run: str) -> int:
    newlines = run.count("\n")
    if newlines >= 2:
        return _PARAGRAPH
    if newlines == 1:
        return _LINE
    end = start
    while end > 0 and text[end - 1] in _CLOSERS:
        end -= 1
    return _SENTENCE if end > 0 and text[end - 1] in _SENTENCE_END else _WORD


def _hard_cut_position(text: str, *, limit: int) -> int:
    """`limit`, moved back so a combining mark or a joined emoji stays with its base character."""
    cut = limit
    while cut > 1 and (
        unicodedata.category(text[cut]).startswith("M") or _ZERO_WIDTH_JOINER in (text[cut], text[cut - 1])
    ):
        cut -= 1
    return cut
