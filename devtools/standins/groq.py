"""Stand-in for Groq's OpenAI-compatible API: chat completions (vision included) and speech to text.

    POST /openai/v1/chat/completions      kind "chat" → an OpenAI-style chat.completion; kind
                                          "vision" when the last user message has image_url parts
    POST /openai/v1/audio/transcriptions  kind "transcription" (multipart: model, file or url)
                                          → {"text": ..., "x_groq": {"id"}}

The answer is deterministic. A chat: "Echo: " + the last 40 characters of the person's words (the
<CURRENT_USER_QUERY> section of the service's prompt, else the last user message),
unless a script gives "text" (null gives a null content) or "tool_calls" (a list of {"name",
"arguments"}: the model calls those tools, with no text unless "text" gives one). A vision
request: image_description() of its last image (a data URL's bytes, or a URL's last path
segment). A transcription: transcript_of() the file's bytes (or the url's last path segment),
unless a script gives "text". So a test tells files apart by the words it puts in them.
Recorded calls also carry "tools", the names of the tools the request offered, and "images", a
vision request's images ({"data_url": true, "bytes": n} or {"url": ...}). Like gpt-oss models a
chat also returns `reasoning`, which clients must not show. Token counts are word counts. Every
answer carries Groq's x-ratelimit-* headers (the request budget counts down with the calls).
A quota (`POST /_quota {"requests": n, "window_seconds": s}`, optionally `"model"`: that
model only) allows n chat calls per model in each window of s seconds; past it a call gets
Groq's 429 with `retry-after` (whole seconds to the window's end), and the headers count that
window down. `/_stats` counts the refused calls. Scripted errors answer with Groq's error
JSON; a 429 carries `retry-after: 1` unless the script's headers say otherwise. Recorded calls carry "prompt" (a chat's last user text, or a
transcription's file name), "model" and, for a transcription, "file_bytes"; `started` / `ended`
and `/_stats` max_in_flight show whether calls overlapped.

Run alone: python -m devtools.standins.groq --port 8102 (then GROQ_BASE_URL=http://127.0.0.1:8102)
"""

import base64
import binascii
import email.parser
import email.policy
import hashlib
import json
import math
import re
import threading
import time
import uuid
from dataclasses import replace
from typing import Any
from urllib.parse import unquote, urlsplit

from devtools.standins.client import GroqStandInClient
from devtools.standins.server import Reply, Request, StandIn, StandInServer, main

CHAT_PATH = "/openai/v1/chat/completions"
TRANSCRIPTION_PATH = "/openai/v1/audio/transcriptions"
REASONING = "The user wrote something; I will answer it."
# Groq's free tier for a model, as its x-ratelimit-limit-* headers say.
_REQUESTS_PER_DAY, _TOKENS_PER_MINUTE = 14400, 6000

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


def transcript_of(body: bytes) -> str:
    """What the stand-in "hears" in an audio file: its printable text, else its size and digest."""
    words = " ".join(body.decode("utf-8", errors="ignore").translate(_UNPRINTABLE).split())
    return words or f"a sound of {len(body)} bytes ({hashlib.sha256(body).hexdigest()[:12]})"


def image_description(body: bytes) -> str:
    """What the stand-in "sees" in an image sent as a data URL."""
    return "A picture showing: " + transcript_of(body)


# Control characters, turned into spaces: they are no word of a transcript.
_UNPRINTABLE = {code: " " for code in [*range(32), 127]}


def _groq_error(*, status: int, message: str | None = None) -> Reply:
    error_type, code, default_message = _ERRORS.get(status, ("api_error", "error", f"HTTP {status}"))
    headers = {"retry-after": "1"} if status == 429 else {}
    return Reply(
        status=status,
        body={"error": {"message": message or default_message, "type": error_type, "code": code}},
        headers=headers,
    )


class _Quota:
    """A fixed window of `requests` calls every `window_seconds`, as Groq's 429s and headers show it."""

    def __init__(self, *, requests: int, window_seconds: float) -> None:
        self.requests, self.window_seconds = requests, window_seconds
        self._window_start, self._used = time.monotonic(), 0
        self._lock = threading.Lock()

    def take(self) -> tuple[bool, dict[str, str]]:
        """Whether one more call fits, and the headers its answer carries."""
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= self.window_seconds:
                self._window_start, self._used = now, 0
            allowed = self._used < self.requests
            self._used += allowed
            reset = self._window_start + self.window_seconds - now
            headers = {
                "x-ratelimit-limit-requests": str(self.requests),
                "x-ratelimit-remaining-requests": str(self.requests - self._used),
                "x-ratelimit-reset-requests": f"{reset:.2f}s",
            }
            if not allowed:
                headers["retry-after"] = str(max(math.ceil(reset), 1))
            return allowed, headers


class GroqServer(StandInServer):
    def reset(self) -> None:
        super().reset()
        self._answered = 0
        self._refused = 0
        self._quota: dict[str, Any] | None = None  # {"requests", "window_seconds", "model"}
        self._quotas: dict[str, _Quota] = {}

    def control(self, request: Request) -> Reply:
        if (request.method, request.path) == ("POST", "/_quota"):
            quota = request.json if isinstance(request.json, dict) else {}
            with self._lock:
                self._quota, self._quotas = quota or None, {}
            return Reply(status=200, body={"ok": True})
        reply = super().control(request)
        if request.path == "/_stats" and reply.status == 200:
            with self._lock:
                return Reply(status=200, body={**reply.body, "refused": self._refused})
        return reply

    def _quota_take(self, model: str) -> tuple[bool, dict[str, str]]:
        with self._lock:
            quota = self._quota
            if not quota or quota.get("model") not in (None, model):
                return True, {}
            if model not in self._quotas:
                self._quotas[model] = _Quota(
                    requests=int(quota["requests"]), window_seconds=float(quota["window_seconds"])
                )
            counter = self._quotas[model]
        allowed, headers = counter.take()
        if not allowed:
            with self._lock:
                self._refused += 1
        return allowed, headers

    def kind_of(self, request: Request) -> str:
        if (request.method, request.path) == ("POST", TRANSCRIPTION_PATH):
            return "transcription"
        if (request.method, request.path) != ("POST", CHAT_PATH):
            return "unknown"
        body = request.json if isinstance(request.json, dict) else {}
        return "vision" if _last_user_images(body) else "chat"

    def record_fields(self, request: Request) -> dict[str, Any]:
        if self.kind_of(request) == "transcription":
            form = _form(request)
            upload = form.get("file")
            return {
                "prompt": upload[0] if upload else form.get("url"),
                "model": form.get("model"),
                "file_bytes": len(upload[1]) if upload else None,
            }
        body = request.json if isinstance(request.json, dict) else {}
        tools = body.get("tools") if isinstance(body.get("tools"), list) else []
        names = [tool.get("function", {}).get("name") for tool in tools if isinstance(tool, dict)]
        images = [_image_record(url) for url in _last_user_images(body)]
        return {
            "prompt": _last_user_message(body),
            "model": body.get("model"),
            "tools": names,
            "images": images,
        }

    def error_reply(self, *, script: dict[str, Any]) -> Reply:
        return _groq_error(status=script["status"], message=script.get("message"))

    def answer(self, request: Request, *, kind: str, script: dict[str, Any]) -> Reply:
        if kind == "unknown":
            return _groq_error(status=404, message=f"Unknown request URL: {request.method} {request.path}")
        if not request.headers.get("authorization", "").removeprefix("Bearer ").strip():
            return _groq_error(status=401)
        quota_headers: dict[str, str] = {}
        if kind != "transcription":
            body = request.json if isinstance(request.json, dict) else {}
            allowed, quota_headers = self._quota_take(str(body.get("model")))
            if not allowed:
                refused = _groq_error(status=429)
                return replace(refused, headers={**refused.headers, **quota_headers})
        reply = self._transcription_answer(request, script=script) if kind == "transcription" else None
        reply = reply or self._chat_answer(request, kind=kind, script=script)
        with self._lock:
            self._answered += 1
            answered = self._answered
        headers = {**_rate_limit_headers(answered), **quota_headers, **reply.headers}
        return Reply(status=reply.status, body=reply.body, headers=headers)

    def _transcription_answer(self, request: Request, *, script: dict[str, Any]) -> Reply:
        form = _form(request)
        upload, url = form.get("file"), form.get("url")
        if not form.get("model") or not (upload or url):
            return _groq_error(status=400, message="'model' and one of 'file' or 'url' are required")
        heard = transcript_of(upload[1]) if upload else f"a recording at {_url_name(url)}"
        return Reply(
            status=200, body={"text": script.get("text", heard), "x_groq": {"id": f"req_{uuid.uuid4().hex}"}}
        )

    def _chat_answer(self, request: Request, *, kind: str, script: dict[str, Any]) -> Reply:
        body = request.json if isinstance(request.json, dict) else {}
        prompt = _last_user_message(body)
        if not body.get("model") or prompt is None:
            return _groq_error(status=400, message="'model' and a user message are required")
        tool_calls = [_tool_call(call) for call in script.get("tool_calls", [])]
        default = _describe(_last_user_images(body)[-1]) if kind == "vision" else echo_answer(prompt)
        text = script.get("text", None if tool_calls else default)
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


class GroqStandIn(StandIn, GroqStandInClient):
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


def _last_user_content(body: dict[str, Any]) -> str | list[Any] | None:
    """The content of the request's last user message: a string, or a list of content parts."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    contents = [
        message.get("content")
        for message in messages
        if isinstance(message, dict)
        and message.get("role") == "user"
        and isinstance(message.get("content"), str | list)
    ]
    return contents[-1] if contents else None


def _last_user_message(body: dict[str, Any]) -> str | None:
    """The last user message's text (its text parts joined, when it has parts)."""
    content = _last_user_content(body)
    if not isinstance(content, list):
        return content
    texts = [part.get("text") for part in content if isinstance(part, dict) and part.get("type") == "text"]
    return "\n".join(text for text in texts if isinstance(text, str))


def _last_user_images(body: dict[str, Any]) -> list[str]:
    """The URLs (or data URLs) of the image_url parts of the last user message."""
    content = _last_user_content(body)
    parts = content if isinstance(content, list) else []
    images = [
        part.get("image_url") for part in parts if isinstance(part, dict) and part.get("type") == "image_url"
    ]
    return [image["url"] for image in images if isinstance(image, dict) and isinstance(image.get("url"), str)]


def _data_url_bytes(url: str) -> bytes | None:
    """The bytes of a base64 data URL, or None when `url` is not one."""
    head, _, data = url.partition(",")
    if not (head.startswith("data:") and head.endswith(";base64")):
        return None
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def _describe(url: str) -> str:
    body = _data_url_bytes(url)
    return image_description(body) if body is not None else f"A picture at {_url_name(url)}"


def _image_record(url: str) -> dict[str, Any]:
    body = _data_url_bytes(url)
    return {"data_url": True, "bytes": len(body)} if body is not None else {"url": url}


def _url_name(url: str) -> str:
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or url


def _form(request: Request) -> dict[str, Any]:
    """A multipart/form-data body as the groq SDK sends it: each field's text, and a file as
    (its name, its bytes)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return {}
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + request.body
    )
    form: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            form[name] = (part.get_filename(), payload)
        else:
            form[name] = payload.decode(errors="replace")
    return form


def _rate_limit_headers(answered: int) -> dict[str, str]:
    """Groq's x-ratelimit-* headers, the day's request budget counting down with the answers."""
    return {
        "x-ratelimit-limit-requests": str(_REQUESTS_PER_DAY),
        "x-ratelimit-limit-tokens": str(_TOKENS_PER_MINUTE),
        "x-ratelimit-remaining-requests": str(max(_REQUESTS_PER_DAY - answered, 0)),
        "x-ratelimit-remaining-tokens": str(_TOKENS_PER_MINUTE),
        "x-ratelimit-reset-requests": "6s",
        "x-ratelimit-reset-tokens": "0s",
    }


if __name__ == "__main__":
    main(GroqServer, description="Stand-in for Groq's chat completions and speech-to-text API.")
