"""Stand-in for Groq's OpenAI-compatible chat completions API.

    POST /openai/v1/chat/completions   kind "chat" → an OpenAI-style chat.completion

The answer is deterministic: "Echo: " + the last 40 characters of the person's words (the
<CURRENT_USER_QUERY> section of the service's prompt, else the last user message),
unless a script gives "text" (null gives a null content) or "tool_calls" (a list of {"name",
"arguments"}: the model calls those tools, with no text unless "text" gives one). Recorded
calls also carry "tools", the names of the tools the request offered. Like gpt-oss models it also
returns `reasoning`, which clients must not show. Token counts are word counts. Scripted
errors answer with Groq's error JSON; a 429 carries `retry-after: 1` unless the script's
headers say otherwise. Recorded calls carry "prompt" and "model"; `started` / `ended` and
`/_stats` max_in_flight show whether calls overlapped.

Run alone: python -m devtools.standins.groq --port 8102 (then GROQ_BASE_URL=http://127.0.0.1:8102)
"""

import json
import re
import time
import uuid
from typing import Any

from devtools.standins.server import Reply, Request, StandIn, StandInServer, main

CHAT_PATH = "/openai/v1/chat/completions"
REASONING = "The user wrote something; I will answer it."

_ERRORS = {
    400: ("invalid_request_error", "invalid_request", "Invalid request"),
    401: ("invalid_request_error", "invalid_api_key", "Invalid API Key"),
    403: ("permission_error", "permission_denied", "Permission denied"),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    429: ("tokens", "rate_limit_exceeded", "Rate limit reached. Please try again in 1s."),
    500: ("internal_server_error", "internal_server_error", "Internal Server Error"),
    503: ("internal_server_error", "service_unavailable", "Service Unavailable"),
}


_CURRENT_USER_QUERY = re.compile(r"<CURRENT_USER_QUERY>\n?(.*?)\n?</CURRENT_USER_QUERY>\s*\Z", re.DOTALL)


def echo_answer(prompt: str) -> str:
    """The stand-in's default answer to `prompt`, for tests that check what was sent."""
    query = _CURRENT_USER_QUERY.search(prompt)
    return "Echo: " + (query.group(1) if query else prompt)[-40:]


def _groq_error(*, status: int, message: str | None = None) -> Reply:
    error_type, code, default_message = _ERRORS.get(status, ("api_error", "error", f"HTTP {status}"))
    headers = {"retry-after": "1"} if status == 429 else {}
    return Reply(
        status=status,
        body={"error": {"message": message or default_message, "type": error_type, "code": code}},
        headers=headers,
    )


class GroqServer(StandInServer):
    def kind_of(self, request: Request) -> str:
        return "chat" if (request.method, request.path) == ("POST", CHAT_PATH) else "unknown"

    def record_fields(self, request: Request) -> dict[str, Any]:
        body = request.json if isinstance(request.json, dict) else {}
        tools = body.get("tools") if isinstance(body.get("tools"), list) else []
        names = [tool.get("function", {}).get("name") for tool in tools if isinstance(tool, dict)]
        return {"prompt": _last_user_message(body), "model": body.get("model"), "tools": names}

    def error_reply(self, *, script: dict[str, Any]) -> Reply:
        return _groq_error(status=script["status"], message=script.get("message"))

    def answer(self, request: Request, *, kind: str, script: dict[str, Any]) -> Reply:
        if kind == "unknown":
            return _groq_error(status=404, message=f"Unknown request URL: {request.method} {request.path}")
        if not request.headers.get("authorization", "").removeprefix("Bearer ").strip():
            return _groq_error(status=401)
        body = request.json if isinstance(request.json, dict) else {}
        prompt = _last_user_message(body)
        if not body.get("model") or prompt is None:
            return _groq_error(status=400, message="'model' and a user message are required")
        tool_calls = [_tool_call(call) for call in script.get("tool_calls", [])]
        text = script.get("text", None if tool_calls else echo_answer(prompt))
        prompt_tokens, completion_tokens = len(prompt.split()), len(text.split()) if text else 0
        message = {"role": "assistant", "content": text, "reasoning": REASONING}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return Reply(
            status=200,
            body={
                "id": f"chatcmpl-{uuid.uuid4()}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls" if tool_calls else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
                "system_fingerprint": "fp_standin",
                "x_groq": {"id": f"req_{uuid.uuid4().hex}"},
            },
        )


class GroqStandIn(StandIn):
    server_class = GroqServer


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    """A scripted {"name", "arguments"} as Groq returns a tool call; arguments a string of JSON
    (as the model writes it, possibly malformed) or anything JSON-encodable."""
    arguments = call.get("arguments", {})
    return {
        "id": f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {
            "name": call["name"],
            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
        },
    }


def _last_user_message(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    contents = [
        message.get("content")
        for message in messages
        if isinstance(message, dict)
        and message.get("role") == "user"
        and isinstance(message.get("content"), str)
    ]
    return contents[-1] if contents else None


if __name__ == "__main__":
    main(GroqServer, description="Stand-in for Groq's chat completions API.")
