"""The web process's gunicorn settings, seen on the running process."""

import http.client
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from devtools.processes import start_web, wait_for
from devtools.webhook import WEBHOOK_PATH, signature
from tests.processes import process_environment


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker, tmp_path_factory):
    """The web process as the Procfile starts it on the test database, with two workers
    (tests/processes.py); its tests ask for `transactional_db`, so that database is set up."""
    with django_db_blocker.unblock():
        process, base_url = start_web(process_environment(), tmp_path_factory.mktemp("web"))
    yield process, base_url
    process.stop()


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm on this system")
def test_web_workers_keep_their_heartbeat_files_in_memory(tmp_path):
    web, _ = start_web(process_environment(WEB_CONCURRENCY="1"), tmp_path)
    try:
        [worker] = Path(f"/proc/{web.popen.pid}/task/{web.popen.pid}/children").read_text().split()
        open_files = [_link(fd) for fd in Path(f"/proc/{worker}/fd").iterdir()]
    finally:
        web.stop()
    assert any(path.startswith("/dev/shm/") for path in open_files), open_files


def _link(fd: Path) -> str:
    """Where an open file descriptor points; empty if the worker closed it meanwhile (a request's socket)."""
    try:
        return os.readlink(fd)
    except FileNotFoundError:
        return ""


def test_slow_uploads_do_not_stop_the_webhook(web, transactional_db):
    # Two clients, as many as the web process has workers, each trickling a body byte by byte.
    _, base_url = web
    port = int(base_url.rsplit(":", 1)[1])
    stop = threading.Event()
    trickles = [threading.Thread(target=_trickle, args=(port, stop)) for _ in range(2)]
    for trickle in trickles:
        trickle.start()
    try:
        time.sleep(1)  # both are being read by now
        body = json.dumps({"object": "page", "entry": []}).encode()
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request(
            "POST",
            WEBHOOK_PATH,
            body=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature(body)},
        )
        response = connection.getresponse()
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        for trickle in trickles:
            trickle.join()
    assert (response.status, response.read()) == (200, b"EVENT_RECEIVED")
    assert elapsed < 2, f"a webhook POST waited {elapsed:.1f}s behind two slow uploads"


def _trickle(port: int, stop: threading.Event) -> None:
    """A webhook POST whose 1,000-byte body comes one byte every 0.2 s, until `stop` (at most 10 s)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n{".encode()
        )
        deadline = time.monotonic() + 10
        while not stop.wait(0.2) and time.monotonic() < deadline:
            sock.sendall(b" ")


def test_the_access_log_never_shows_the_verify_token(web, transactional_db):
    process, base_url = web
    # tests/settings.py's verify token: Meta's subscription handshake carries it in the query string.
    query = "hub.mode=subscribe&hub.verify_token=test-verify-token&hub.challenge=1158201444"
    connection = http.client.HTTPConnection(base_url.removeprefix("http://"), timeout=10)
    connection.request("GET", f"{WEBHOOK_PATH}?{query}")
    response = connection.getresponse()
    assert (response.status, response.read()) == (200, b"1158201444")

    [logged] = wait_for(
        lambda: [line for line in process.output().splitlines() if f"GET {WEBHOOK_PATH}" in line],
        message="the handshake's access log line",
    )
    assert "test-verify-token" not in process.output()
    assert f'"GET {WEBHOOK_PATH} HTTP/1.1" 200' in logged


def test_x_forwarded_proto_is_believed_only_from_forwarded_allow_ips(tmp_path):
    # HSTS is sent on HTTPS requests only: whether Django took the request for HTTPS shows in it.
    env = process_environment(FORWARDED_ALLOW_IPS="127.0.0.2", SECURE_HSTS_SECONDS="3600")
    process, base_url = start_web(env, tmp_path)
    port = int(base_url.rsplit(":", 1)[1])
    try:
        from_client, from_proxy = (
            _hsts(port, source=source, headers={"X-Forwarded-Proto": "https"})
            for source in ("127.0.0.1", "127.0.0.2")
        )
    finally:
        process.stop()
    assert from_client is None
    assert from_proxy == "max-age=3600"


def _hsts(port: int, *, source: str, headers: dict[str, str]) -> str | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    connection.request("GET", "/privacy", headers=headers)
    response = connection.getresponse()
    assert response.status == 200
    return response.getheader("Strict-Transport-Security")
