"""Stand-in for Meta's Graph API: the Send API, profiles, Pages, comments, posts and Meta's CDN.

    POST /{version}/me/messages   (or /{version}/{page-id}/messages)
                                  kind "message" → {"recipient_id", "message_id": "m_..."}
                                  kind "action" (sender_action) → {"recipient_id"}
                                  kind "private_reply" (recipient.comment_id) → {"recipient_id":
                                  commenter_psid(comment), "message_id"}; a second one to the
                                  same comment answers Meta's 10900 "Activity already replied to"
    GET  /{version}/me            kind "page" → the token's Page: {"id", "name"}
    POST /{version}/{page-id}/subscribed_apps   kind "subscribe" (subscribed_fields, comma list)
                                  → {"success": true}; without subscribed_fields, 100
    GET  /{version}/{page-id}?fields=instagram_business_account{id,username}
                                  kind "instagram_account" → {"id", "instagram_business_account":
                                  {"id", "username"}} (without the latter when none is linked)
    GET  /{version}/{id}?fields=message (Facebook post) or fields=caption (Instagram media)
                                  kind "post" → {"id", "message" or "caption": the text a test
                                  registered}, no text field when none was
    POST /{version}/{comment-id}/comments (Facebook) or /replies (Instagram), with `message`
                                  kind "comment_reply" → {"id": the reply's id}
    GET  /{version}/{psid}        kind "profile" → first_name, last_name, profile_pic, id; an
                                  Instagram profile (fields=name,username,profile_pic) → name,
                                  username, profile_pic, id
    GET  /{version}/me/messenger_profile   kind "messenger_profile_get" → {"data": [the fields
                                  asked for that are set]}, {"data": []} when none is
    POST /{version}/me/messenger_profile   kind "messenger_profile_set" → {"result": "success"};
                                  the fields posted replace those kept, as on Meta's side
    GET  /cdn/{name}              kind "cdn" → the bytes a test registered, with their content
                                  type, as Meta's CDN serves media (no token); 404 when unknown

Pages: with none registered, every token is the one test Page (PAGE_ID, "Test Page"). Once
a test registers Pages (`POST /_pages`, `GraphStandInClient.page_add`), each registered token
is its Page, any other token is refused (190), and subscribing another Page than the
token's is refused (210).

Like Graph it refuses a request without an access token (190), a text over 2000 characters
(100), and a comment reply without a message (100). Scripted errors answer with Meta's error
JSON; keys: status, code, subcode, message, type (defaults per code below). Recorded calls
carry "psid" (the person written to or looked up), "comment_id" (for private and public
replies), "token" (the access token used) and "page_id" (its Page; None for an unknown one).

Control routes besides the common ones (devtools/standins/server.py):
    POST /_pages  {"token", "id", "name", "instagram": {"id", "username"} or null}
    POST /_posts  {"id", "text"}: the text of a Facebook post or an Instagram media
    POST /_cdn    {"name", "content_type", "body_base64"}: a file served at /cdn/{name}

Run alone: python -m devtools.standins.graph --port 8101
"""

import base64
import hashlib
import re
import uuid
from typing import Any

from devtools.standins.client import GraphStandInClient
from devtools.standins.server import Reply, Request, StandIn, StandInServer, main

_VERSION = r"/v\d+\.\d+"
_MESSAGES_PATH = re.compile(rf"{_VERSION}/(me|\d+)/messages")
_PAGE_PATH = re.compile(rf"{_VERSION}/me")
_MESSENGER_PROFILE_PATH = re.compile(rf"{_VERSION}/me/messenger_profile")
_MESSENGER_PROFILE_FIELDS = ("get_started", "greeting", "ice_breakers", "persistent_menu")
_SUBSCRIBE_PATH = re.compile(rf"{_VERSION}/(?P<page>[^/]+)/subscribed_apps")
_COMMENT_REPLY_PATH = re.compile(rf"{_VERSION}/(?P<comment>[^/]+)/(comments|replies)")
_NODE_PATH = re.compile(rf"{_VERSION}/(?P<node>[^/]+)")
_CDN_PATH = re.compile(r"/cdn/(?P<name>[^/]+)")
_POST_FIELDS = ("message", "caption")
PAGE_ID = "104728561934527"
PAGE_NAME = "Test Page"
_TEXT_LIMIT = 2000

# Meta's own wording for the codes the tests script.
_ERROR_MESSAGES = {
    1: "An unknown error occurred",
    2: "An unexpected error has occurred. Please retry your request later.",
    4: "(#4) Application request limit reached",
    10: "(#10) This message is sent outside of allowed window.",
    100: "(#100) No matching user found",
    190: "Invalid OAuth access token - Cannot parse access token",
    210: "(#210) A page access token is required to request this resource.",
    551: "(#551) This person isn't available right now.",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    2500: "Unknown path components",
    10900: "(#10900) Activity already replied to",
}


def commenter_psid(comment_id: str) -> str:
    """The page-scoped id the stand-in gives the author of `comment_id` (what a private reply
    answers): the same for the same comment, so a test can write as that person."""
    return str(int(hashlib.sha256(comment_id.encode()).hexdigest(), 16))[:16]


def _graph_error(*, status: int, code: int, subcode: int | None = None, message: str | None = None) -> Reply:
    error: dict[str, Any] = {
        "message": message or _ERROR_MESSAGES.get(code, "An unknown error occurred"),
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": f"A{uuid.uuid4().hex[:22]}",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return Reply(status=status, body={"error": error})


class GraphServer(StandInServer):
    def reset(self) -> None:
        super().reset()
        # The Page's Messenger profile as set through the API, so GET shows what POST set.
        self.messenger_profile: dict[str, Any] = {}
        # What tests registered: Pages by token, posts' texts, CDN files; and the comments that
        # had their one private reply.
        self.pages: dict[str, dict[str, Any]] = {}
        self.posts: dict[str, str] = {}
        self.cdn: dict[str, tuple[str, bytes]] = {}
        self.private_replied: set[str] = set()

    def kind_of(self, request: Request) -> str:
        path, method = request.path, request.method
        if _MESSENGER_PROFILE_PATH.fullmatch(path) and method in ("GET", "POST"):
            return f"messenger_profile_{'get' if method == 'GET' else 'set'}"
        if method == "GET" and _CDN_PATH.fullmatch(path):
            return "cdn"
        if method == "POST" and _MESSAGES_PATH.fullmatch(path):
            return _message_kind(request.json)
        if method == "POST" and _SUBSCRIBE_PATH.fullmatch(path):
            return "subscribe"
        if method == "POST" and _COMMENT_REPLY_PATH.fullmatch(path):
            return "comment_reply"
        if method == "GET" and _PAGE_PATH.fullmatch(path):
            return "page"
        if method == "GET" and _NODE_PATH.fullmatch(path):
            return _node_kind(fields=request.query.get("fields", ""))
        return "unknown"

    def record_fields(self, request: Request) -> dict[str, Any]:
        token = _token(request)
        page = self._page_of(token)
        return {
            "psid": _psid(request),
            "comment_id": _comment_id(request),
            "token": token,
            "page_id": page["id"] if page else None,
        }

    def error_reply(self, *, script: dict[str, Any]) -> Reply:
        status = script["status"]
        default_code = 613 if status == 429 else 2 if status >= 500 else 100
        reply = _graph_error(
            status=status,
            code=script.get("code", default_code),
            subcode=script.get("subcode"),
            message=script.get("message"),
        )
        if "type" in script:
            reply.body["error"]["type"] = script["type"]
        return reply

    def answer(self, request: Request, *, kind: str, script: dict[str, Any]) -> Reply:
        if kind == "unknown":
            return _graph_error(status=400, code=2500, message=f"Unknown path components: {request.path}")
        if kind == "cdn":
            return self._cdn_answer(request)
        token = _token(request)
        if not token:
            return _graph_error(status=400, code=190, message="An active access token must be used.")
        page = self._page_of(token)
        if page is None:
            return _graph_error(status=400, code=190)
        if kind == "page":
            return Reply(status=200, body={"id": page["id"], "name": page["name"]})
        if kind.startswith("messenger_profile_"):
            return self._messenger_profile_answer(request, kind=kind)
        answer = {
            "subscribe": self._subscribe_answer,
            "instagram_account": self._instagram_account_answer,
            "post": self._post_answer,
            "comment_reply": self._comment_reply_answer,
            "profile": self._profile_answer,
            "private_reply": self._private_reply_answer,
        }.get(kind, self._message_answer)
        return answer(request, page=page)

    def control(self, request: Request) -> Reply:
        routes = {"/_pages": self._page_add, "/_posts": self._post_add, "/_cdn": self._cdn_add}
        route = routes.get(request.path) if request.method == "POST" else None
        if route is None:
            return super().control(request)
        body = request.json
        if not isinstance(body, dict):
            return Reply(status=400, body={"error": "expected a JSON object"})
        try:
            with self._lock:
                route(body)
        except (KeyError, TypeError, ValueError) as error:  # a field missing, or base64 that is not
            return Reply(status=400, body={"error": f"bad {request.path} body: {error!r}"})
        return Reply(status=200, body={"ok": True})

    # --- control ----------------------------------------------------------------------------

    def _page_add(self, body: dict[str, Any]) -> None:
        self.pages[body["token"]] = {
            "id": str(body["id"]),
            "name": body["name"],
            "instagram": body.get("instagram"),
        }

    def _post_add(self, body: dict[str, Any]) -> None:
        self.posts[str(body["id"])] = body["text"]

    def _cdn_add(self, body: dict[str, Any]) -> None:
        self.cdn[body["name"]] = (body["content_type"], base64.b64decode(body["body_base64"]))

    # --- answers ----------------------------------------------------------------------------

    def _page_of(self, token: str) -> dict[str, Any] | None:
        """The Page a token speaks for: a registered one, or the test Page while none is registered."""
        if not self.pages:
            return {"id": PAGE_ID, "name": PAGE_NAME, "instagram": None}
        return self.pages.get(token)

    def _page_by_id(self, page_id: str) -> dict[str, Any] | None:
        pages = list(self.pages.values()) or [self._page_of("")]
        return next((page for page in pages if page and page["id"] == page_id), None)

    def _subscribe_answer(self, request: Request, *, page: dict[str, Any]) -> Reply:
        page_id = _SUBSCRIBE_PATH.fullmatch(request.path)["page"]  # type: ignore[index]
        if self.pages and page_id != page["id"]:
            return _graph_error(status=403, code=210)
        fields = _param(request, "subscribed_fields")
        if not fields:
            return _graph_error(
                status=400, code=100, message="(#100) The parameter subscribed_fields is required"
            )
        return Reply(status=200, body={"success": True})

    def _instagram_account_answer(self, request: Request, *, page: dict[str, Any]) -> Reply:
        node = _NODE_PATH.fullmatch(request.path)["node"]  # type: ignore[index]
        node_page = self._page_by_id(node)
        linked = node_page and node_page.get("instagram")
        return Reply(
            status=200, body={"id": node, **({"instagram_business_account": linked} if linked else {})}
        )

    def _post_answer(self, request: Request, *, page: dict[str, Any]) -> Reply:
        node = _NODE_PATH.fullmatch(request.path)["node"]  # type: ignore[index]
        field = request.query.get("fields", "")
        text = self.posts.get(node)
        return Reply(status=200, body={"id": node, **({field: text} if text is not None else {})})

    def _comment_reply_answer(self, request: Request, *, page: dict[str, Any]) -> Reply:
        message = _param(request, "message")
        if not message:
            return _graph_error(status=400, code=100, message="(#100) The parameter message is required")
        return Reply(status=200, body={"id": str(uuid.uuid4().int)[:17]})

    def _profile_answer(self, request: Request, *, page: dict[str, Any]) -> Reply:
        psid = _psid(request)
        profile = {
            "first_name": "Test",
            "last_name": f"User {psid[-4:]}",
            "name": f"Test User {psid[-4:]}",
            "username": f"test.user{psid[-4:]}",
            "profile_pic": f"https://lookaside.example/{psid}.jpg",
        }
        fields = request.query.get("fields", "first_name,last_name,profile_pic").split(",")
        return Reply(
            status=200, body={"id": psid, **{name: profile[name] for name in fields if name in profile}}
        )

    def _private_reply_answer(self, request: Request, *, page: dict[str, Any]) -> Reply:
        comment_id = _comment_id(request)
        if not comment_id:
            return _graph_error(status=400, code=100, message="(#100) The parameter recipient is required")
        refusal = _text_refusal(request)
        if refusal is not None:
            return refusal
        with self._lock:
            if comment_id in self.private_replied:
                return _graph_error(status=400, code=10900)
            self.private_replied.add(comment_id)
        return Reply(
            status=200,
            body={"recipient_id": commenter_psid(comment_id), "message_id": f"m_{uuid.uuid4().hex}"},
        )

    def _message_answer(self, request: Request, *, page: dict[str, Any]) -> Reply:
        psid = _psid(request)
        if not psid:
            return _graph_error(status=400, code=100, message="(#100) The parameter recipient is required")
        if _message_kind(request.json) == "action":
            return Reply(status=200, body={"recipient_id": psid})
        return _text_refusal(request) or Reply(
            status=200, body={"recipient_id": psid, "message_id": f"m_{uuid.uuid4().hex}"}
        )

    def _cdn_answer(self, request: Request) -> Reply:
        name = _CDN_PATH.fullmatch(request.path)["name"]  # type: ignore[index]
        if name not in self.cdn:
            return Reply(status=404, body="Not Found")
        content_type, body = self.cdn[name]
        return Reply(status=200, body=body, headers={"Content-Type": content_type})

    def _messenger_profile_answer(self, request: Request, *, kind: str) -> Reply:
        if kind == "messenger_profile_get":
            fields = request.query.get("fields", "").split(",")
            shown = {name: value for name, value in self.messenger_profile.items() if name in fields}
            return Reply(status=200, body={"data": [shown] if shown else []})
        body = request.json
        if not isinstance(body, dict) or not body or not set(body) <= set(_MESSENGER_PROFILE_FIELDS):
            return _graph_error(
                status=400,
                code=100,
                message=f"(#100) Requires one of the params: {', '.join(_MESSENGER_PROFILE_FIELDS)}",
            )
        with self._lock:
            self.messenger_profile.update(body)
        return Reply(status=200, body={"result": "success"})


class GraphStandIn(StandIn, GraphStandInClient):
    server_class = GraphServer


def _message_kind(body: Any) -> str:
    if not isinstance(body, dict):
        return "message"
    if "sender_action" in body:
        return "action"
    recipient = body.get("recipient")
    return "private_reply" if isinstance(recipient, dict) and "comment_id" in recipient else "message"


def _node_kind(*, fields: str) -> str:
    if "instagram_business_account" in fields:
        return "instagram_account"
    return "post" if fields in _POST_FIELDS else "profile"


def _text_refusal(request: Request) -> Reply | None:
    body = request.json
    message = body.get("message") if isinstance(body, dict) else None
    text = message.get("text") if isinstance(message, dict) else None
    if isinstance(text, str) and 1 <= len(text) <= _TEXT_LIMIT:
        return None
    return _graph_error(
        status=400,
        code=100,
        message=f"(#100) Length of param message[text] must be between 1 and {_TEXT_LIMIT}",
    )


def _psid(request: Request) -> str:
    if request.method == "GET":
        match = _NODE_PATH.fullmatch(request.path)
        return match["node"] if match else ""
    recipient = _recipient(request)
    return str(recipient.get("id") or "")


def _comment_id(request: Request) -> str:
    match = _COMMENT_REPLY_PATH.fullmatch(request.path)
    if request.method == "POST" and match:
        return match["comment"]
    return str(_recipient(request).get("comment_id") or "")


def _recipient(request: Request) -> dict[str, Any]:
    body = request.json
    recipient = body.get("recipient") if isinstance(body, dict) else None
    return recipient if isinstance(recipient, dict) else {}


def _param(request: Request, name: str) -> str:
    """A parameter as Graph takes them: in a JSON body, or in the query string."""
    body = request.json
    value = body.get(name) if isinstance(body, dict) else None
    value = value if value is not None else request.query.get(name)
    return value if isinstance(value, str) else ""


def _token(request: Request) -> str:
    # Graph takes the token from the header or the query string.
    authorization = request.headers.get("authorization", "")
    return authorization.removeprefix("Bearer ").strip() or request.query.get("access_token", "")


if __name__ == "__main__":
    main(GraphServer, description="Stand-in for Meta's Graph API (Send API, profiles, Pages, comments, CDN).")
