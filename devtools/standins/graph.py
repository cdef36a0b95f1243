"""Stand-in for Meta's Graph API: the Send API, user profiles and the Page's Messenger profile.

    POST /{version}/me/messages   kind "message" → {"recipient_id", "message_id": "m_..."}
                                  kind "action" (sender_action) → {"recipient_id"}
    GET  /{version}/me            kind "page" → {"id": PAGE_ID, "name": "Test Page"}
    GET  /{version}/{psid}        kind "profile" → first_name, last_name, profile_pic, id
    GET  /{version}/me/messenger_profile   kind "messenger_profile_get" → {"data": [the fields
                                  asked for that are set]}, {"data": []} when none is
    POST /{version}/me/messenger_profile   kind "messenger_profile_set" → {"result": "success"};
                                  the fields posted replace those kept, as on Meta's side

Like Graph it refuses a request without an access token (190) and a text over 2000
characters (100). Scripted errors answer with Meta's error JSON; keys: status, code,
subcode, message, type (defaults per code below). Recorded calls carry "psid".

Run alone: python -m devtools.standins.graph --port 8101
"""

import re
import uuid
from typing import Any

from devtools.standins.server import Reply, Request, StandIn, StandInServer, main

_MESSAGES_PATH = re.compile(r"/v\d+\.\d+/me/messages")
_PAGE_PATH = re.compile(r"/v\d+\.\d+/me")
_MESSENGER_PROFILE_PATH = re.compile(r"/v\d+\.\d+/me/messenger_profile")
_MESSENGER_PROFILE_FIELDS = ("get_started", "greeting", "ice_breakers", "persistent_menu")
_PROFILE_PATH = re.compile(r"/v\d+\.\d+/(?P<psid>[^/]+)")
PAGE_ID = "104728561934527"
_TEXT_LIMIT = 2000

# Meta's own wording for the codes the tests script.
_ERROR_MESSAGES = {
    1: "An unknown error occurred",
    2: "An unexpected error has occurred. Please retry your request later.",
    4: "(#4) Application request limit reached",
    10: "(#10) This message is sent outside of allowed window.",
    100: "(#100) No matching user found",
    190: "Invalid OAuth access token - Cannot parse access token",
    551: "(#551) This person isn't available right now.",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    2500: "Unknown path components",
}


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

    def kind_of(self, request: Request) -> str:
        if _MESSENGER_PROFILE_PATH.fullmatch(request.path) and request.method in ("GET", "POST"):
            return f"messenger_profile_{'get' if request.method == 'GET' else 'set'}"
        if request.method == "POST" and _MESSAGES_PATH.fullmatch(request.path):
            body = request.json
            return "action" if isinstance(body, dict) and "sender_action" in body else "message"
        if request.method == "GET" and _PAGE_PATH.fullmatch(request.path):
            return "page"
        if request.method == "GET" and _PROFILE_PATH.fullmatch(request.path):
            return "profile"
        return "unknown"

    def record_fields(self, request: Request) -> dict[str, Any]:
        return {"psid": _psid(request)}

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
        if not _has_token(request):
            return _graph_error(status=400, code=190, message="An active access token must be used.")
        if kind == "page":
            return Reply(status=200, body={"id": PAGE_ID, "name": "Test Page"})
        if kind.startswith("messenger_profile_"):
            return self._messenger_profile_answer(request, kind=kind)
        psid = _psid(request)
        if kind == "profile":
            profile = {
                "first_name": "Test",
                "last_name": f"User {psid[-4:]}",
                "profile_pic": f"https://lookaside.example/{psid}.jpg",
            }
            fields = request.query.get("fields", "first_name,last_name,profile_pic").split(",")
            return Reply(
                status=200, body={"id": psid, **{name: profile[name] for name in fields if name in profile}}
            )
        if not psid:
            return _graph_error(status=400, code=100, message="(#100) The parameter recipient is required")
        if kind == "action":
            return Reply(status=200, body={"recipient_id": psid})
        message = request.json.get("message")
        text = message.get("text") if isinstance(message, dict) else None
        if not isinstance(text, str) or not 1 <= len(text) <= _TEXT_LIMIT:
            return _graph_error(
                status=400,
                code=100,
                message=f"(#100) Length of param message[text] must be between 1 and {_TEXT_LIMIT}",
            )
        return Reply(status=200, body={"recipient_id": psid, "message_id": f"m_{uuid.uuid4().hex}"})

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


class GraphStandIn(StandIn):
    server_class = GraphServer


def _psid(request: Request) -> str:
    if request.method == "GET":
        match = _PROFILE_PATH.fullmatch(request.path)
        return match["psid"] if match else ""
    body = request.json
    recipient = body.get("recipient") if isinstance(body, dict) else None
    return str(recipient.get("id") or "") if isinstance(recipient, dict) else ""


def _has_token(request: Request) -> bool:
    # Graph takes the token from the header or the query string.
    authorization = request.headers.get("authorization", "")
    return bool(authorization.removeprefix("Bearer ").strip()) or "access_token" in request.query


if __name__ == "__main__":
    main(GraphServer, description="Stand-in for Meta's Graph API (Send API, profiles).")
