"""Local HTTP stand-ins for the outside services (Meta's Graph API, Groq).

They speak the real wire formats, so the real clients run against them: requests and the
groq SDK, timeouts and connection handling included. Each one runs either in a thread of
the test process (`with GraphStandIn() as graph:`) or as a process of its own for
end-to-end tests (`python -m devtools.standins.graph --port 8101`; it prints its URL on the
first line of stdout). Both are driven through the same HTTP control API:

    GET  /_calls   every API request so far, oldest first: method, path, query, headers
                   (names lower-cased), json (or body when not JSON), kind, status,
                   started / ended (Unix time, comparable across processes), plus the
                   stand-in's own fields (psid, prompt, ...)
    GET  /_stats   {"calls": n, "kinds": {kind: n}, "in_flight": n, "max_in_flight": n}
    POST /_script  a list of scripted responses, or {"responses": [...], "default": {...}}
    POST /_reset   forget calls, stats and script

Each API request takes the first queued response whose "on" matches its kind (or that has
no "on"), else the default, and merges it over the default. Keys of a scripted response:

    status   HTTP status; >= 400 answers with the service's error JSON
    delay    seconds to wait before answering (longer than the client's timeout = timeout)
    body     the raw body to answer with instead (str, or anything JSON-encodable)
    headers  extra response headers
    on       the request kind it applies to (see each stand-in)
    ...      stand-in specific keys (Graph: code, subcode, message, type; Groq: text)
"""

import argparse
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from devtools.standins.client import StandInClient


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @cached_property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        if self.body is None:
            return b"", "text/plain"
        return json.dumps(self.body).encode(), "application/json"


class StandInServer(ThreadingHTTPServer):
    """A stand-in's state and control API; subclasses answer the service's own requests."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        super().__init__(address, _Handler)
        self._lock = threading.Lock()
        # Set on stop, so answers held back by a scripted delay end at once.
        self.stopping = threading.Event()
        self.reset()

    # --- the service: subclasses implement these -------------------------------------------

    def kind_of(self, request: Request) -> str:
        raise NotImplementedError

    def record_fields(self, request: Request) -> dict[str, Any]:
        """Facts about the request worth recording besides the HTTP ones."""
        return {}

    def answer(self, request: Request, *, kind: str, script: dict[str, Any]) -> Reply:
        """The service's normal answer; `script` may adjust it."""
        raise NotImplementedError

    def error_reply(self, *, script: dict[str, Any]) -> Reply:
        """The service's error answer for a scripted status >= 400."""
        raise NotImplementedError

    # --- state ------------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self._calls: list[dict[str, Any]] = []
            self._queue: list[dict[str, Any]] = []
            self._default: dict[str, Any] = {}
            self._in_flight = 0
            self._max_in_flight = 0
            # The calls begun since the reset and not ended: one still answering from before it
            # (a client that gave up on a delayed answer) must not count in the new counts.
            self._open: set[int] = set()

    def begin(self, request: Request) -> dict[str, Any]:
        record = {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": request.headers,
            "json": request.json,
            "body": None if request.json is not None else request.body.decode(errors="replace"),
            "kind": self.kind_of(request),
            "status": None,
            "started": time.time(),
            "ended": None,
            **self.record_fields(request),
        }
        with self._lock:
            self._calls.append(record)
            self._open.add(id(record))
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        return record

    def end(self, record: dict[str, Any], *, status: int | None) -> None:
        with self._lock:
            record["status"] = status
            record["ended"] = time.time()
            if id(record) in self._open:
                self._open.remove(id(record))
                self._in_flight -= 1

    def reply_for(self, request: Request, *, kind: str) -> Reply:
        script = self._next_script(kind)
        if script.get("delay"):
            self.stopping.wait(float(script["delay"]))
        if "body" in script:
            reply = Reply(status=script.get("status", 200), body=script["body"])
        elif script.get("status", 200) >= 400:
            reply = self.error_reply(script=script)
        else:
            reply = self.answer(request, kind=kind, script=script)
        return replace(reply, headers={**reply.headers, **script.get("headers", {})})

    def _next_script(self, kind: str) -> dict[str, Any]:
        with self._lock:
            for index, item in enumerate(self._queue):
                if item.get("on") in (None, kind):
                    return {**self._default, **self._queue.pop(index)}
            return dict(self._default)

    # --- control API ------------------------------------------------------------------------

    def control(self, request: Request) -> Reply:
        route = (request.method, request.path)
        if route == ("GET", "/_calls"):
            with self._lock:
                return Reply(status=200, body=[dict(call) for call in self._calls])
        if route == ("GET", "/_stats"):
            with self._lock:
                kinds: dict[str, int] = {}
                for call in self._calls:
                    kinds[call["kind"]] = kinds.get(call["kind"], 0) + 1
                stats = {"calls": len(self._calls), "kinds": kinds, "in_flight": self._in_flight}
                return Reply(status=200, body={**stats, "max_in_flight": self._max_in_flight})
        if route == ("POST", "/_script"):
            return self._set_script(request.json)
        if route == ("POST", "/_reset"):
            self.reset()
            return Reply(status=200, body={"ok": True})
        return Reply(status=404, body={"error": f"no control route {request.method} {request.path}"})

    def _set_script(self, payload: Any) -> Reply:
        if isinstance(payload, list):
            payload = {"responses": payload}
        if not isinstance(payload, dict):
            return Reply(status=400, body={"error": "expected a list or {responses, default}"})
        with self._lock:
            if "responses" in payload:
                self._queue = list(payload["responses"])
            if "default" in payload:
                self._default = dict(payload["default"])
        return Reply(status=200, body={"ok": True})

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (its timeout) closes the socket under a delayed answer:
        # expected in timeout tests, not worth a traceback. Anything else is a bug here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real services
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (40 ms on Linux) on every keep-alive request, which no real service adds.
    disable_nagle_algorithm = True
    # Idle keep-alive connections are closed, as real servers do; clients reconnect.
    timeout = 10
    server: StandInServer

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the recorded calls are the log

    def _dispatch(self) -> None:
        request = self._read_request()
        if request.path.startswith("/_"):
            self._write(self.server.control(request))
            return
        record = self.server.begin(request)
        reply = None
        try:
            reply = self.server.reply_for(request, kind=record["kind"])
        finally:
            # Ended before the answer goes out: a client that has its answer finds the call
            # ended in /_calls and /_stats, however late this thread gets a CPU again.
            self.server.end(record, status=reply.status if reply else None)
        self._write(reply)

    def _read_request(self) -> Request:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        return Request(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )

    def _write(self, reply: Reply) -> None:
        body, content_type = reply.encoded()
        self.send_response(reply.status)
        headers = {"Content-Type": content_type, **reply.headers, "Content-Length": str(len(body))}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class StandIn(StandInClient):
    """Control client for a stand-in.

    `StandIn(url=...)` drives one running elsewhere; without a url, `start()` (or `with`)
    runs one in a background thread of this process, on a free port of 127.0.0.1.
    """

    server_class: type[StandInServer]

    def __init__(self, *, url: str | None = None) -> None:
        super().__init__(url=url)
        self._server: StandInServer | None = None

    def start(self) -> Self:
        self._server = self.server_class()
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        host, port = self._server.server_address[:2]
        self._url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def __enter__(self) -> Self:
        return self if self._url else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def closed_port_url() -> str:
    """A URL nothing listens on: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def main(server_class: type[StandInServer], *, description: str) -> None:
    """Run a stand-in as a process of its own until interrupted."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args()
    server = server_class((args.host, args.port))
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
