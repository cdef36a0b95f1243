"""Stand-in for a chat's incoming webhook (Slack, Mattermost): the staff alerts' other channel.

    POST /hooks/<anything>   kind "alert" → 200 "ok" (Slack's answer); recorded with its "text"

Scripted errors answer with the status and a plain-text body, as those services do.

Run alone: python -m devtools.standins.chat_webhook --port 8103
"""

from typing import Any

from devtools.standins.server import Reply, Request, StandIn, StandInServer, main


class WebhookServer(StandInServer):
    def kind_of(self, request: Request) -> str:
        return "alert" if request.method == "POST" and request.path.startswith("/hooks/") else "unknown"

    def record_fields(self, request: Request) -> dict[str, Any]:
        body = request.json if isinstance(request.json, dict) else {}
        return {"text": body.get("text")}

    def error_reply(self, *, script: dict[str, Any]) -> Reply:
        return Reply(status=script["status"], body="no_service")

    def answer(self, request: Request, *, kind: str, script: dict[str, Any]) -> Reply:
        if kind == "unknown":
            return Reply(status=404, body="not found")
        if not isinstance(request.json, dict) or not isinstance(request.json.get("text"), str):
            return Reply(status=400, body="invalid_payload")
        return Reply(status=200, body="ok")


class WebhookStandIn(StandIn):
    server_class = WebhookServer


if __name__ == "__main__":
    main(WebhookServer, description="Stand-in for a chat's incoming webhook.")
