"""The Graph and Groq stand-ins (devtools/standins) as processes of their own, and their control API.

A stand-in process prints its URL on its first line; `StandInClient` drives any running
stand-in through the HTTP control routes its server answers (see devtools/standins/server.py).
"""

import base64
import contextlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devtools.processes import BASE_DIR

_CONTROL_TIMEOUT_SECONDS = 5


class StandInClient:
    def __init__(self, *, url: str | None = None) -> None:
        self._url = url
        # Control calls go straight to the stand-in, whatever proxy the environment names.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the stand-in is not started")
        return self._url

    def calls(self, *, kind: str | None = None) -> list[dict[str, Any]]:
        calls = self._control("GET", "/_calls")
        return [call for call in calls if kind in (None, call["kind"])]

    def stats(self) -> dict[str, Any]:
        return self._control("GET", "/_stats")

    def script(
        self, responses: list[dict[str, Any]] | None = None, *, default: dict[str, Any] | None = None
    ) -> None:
        payload: dict[str, Any] = {}
        if responses is not None:
            payload["responses"] = responses
        if default is not None:
            payload["default"] = default
        self._control("POST", "/_script", payload)

    def reset(self) -> None:
        self._control("POST", "/_reset", {})

    def wait_until_up(self, *, timeout: float = 10) -> None:
        """Block until the stand-in answers (one started as a separate process takes a moment)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.stats()
                return
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _control(self, method: str, path: str, payload: Any = None) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=None if payload is None else json.dumps(payload).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with self._opener.open(request, timeout=_CONTROL_TIMEOUT_SECONDS) as response:
            return json.load(response)


class GraphStandInClient(StandInClient):
    """Drives the Graph stand-in, its own control routes included (devtools/standins/graph.py)."""

    def page_add(
        self, *, token: str, page_id: str, name: str, instagram: tuple[str, str] | None = None
    ) -> None:
        """Make `token` the access token of Page `page_id`, linked to the Instagram account
        `instagram` (id, username) if given. From the first one on, unknown tokens are refused."""
        account = {"id": instagram[0], "username": instagram[1]} if instagram else None
        self._control("POST", "/_pages", {"token": token, "id": page_id, "name": name, "instagram": account})

    def post_add(self, *, post_id: str, text: str) -> None:
        """The text Graph gives for a Facebook post (its message) or an Instagram media (its caption)."""
        self._control("POST", "/_posts", {"id": post_id, "text": text})

    def cdn_add(self, *, name: str, body: bytes, content_type: str) -> str:
        """Serve `body` as Meta's CDN would; returns its URL."""
        payload = {"name": name, "content_type": content_type, "body_base64": base64.b64encode(body).decode()}
        self._control("POST", "/_cdn", payload)
        return f"{self.url}/cdn/{name}"


class GroqStandInClient(StandInClient):
    """Drives the Groq stand-in, its quota included (devtools/standins/groq.py)."""

    def quota(self, *, requests: int, window_seconds: float, model: str | None = None) -> None:
        """Allow `requests` chat calls per model (or to `model` only) in each window of `window_seconds`."""
        self._control(
            "POST", "/_quota", {"requests": requests, "window_seconds": window_seconds, "model": model}
        )


# The client of each stand-in that has control routes of its own.
_CLIENTS: dict[str, type[StandInClient]] = {"graph": GraphStandInClient, "groq": GroqStandInClient}


@contextlib.contextmanager
def standin_process(name: str, *, log: Path | None = None) -> Iterator[StandInClient]:
    """`python -m devtools.standins.<name>` as a process of its own, up until the block ends.

    The client's `pid` is the process's; its request log goes to `log` if given.
    """
    with contextlib.ExitStack() as files:
        process = subprocess.Popen(
            [sys.executable, "-m", f"devtools.standins.{name}", "--port", "0"],
            cwd=BASE_DIR,
            stdout=subprocess.PIPE,
            stderr=files.enter_context(log.open("wb")) if log else None,
            text=True,
        )
        try:
            first_line = process.stdout.readline()
            if not first_line.startswith("listening on "):
                raise RuntimeError(f"stand-in {name} did not start: {first_line!r}")
            standin = _CLIENTS.get(name, StandInClient)(url=first_line.split()[-1])
            standin.pid = process.pid
            standin.wait_until_up()
            yield standin
        finally:
            process.terminate()
            process.wait(timeout=5)
