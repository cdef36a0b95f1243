"""Fetching what people send: only from the allowed hosts, over https, within the size and time
caps, with every redirect checked again; against the Graph stand-in serving as Meta's CDN."""

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conversations.media.fetching import (
    MediaFetchError,
    MediaRefusedError,
    MediaTooLargeError,
    host_listing,
    media_fetch,
)

VOICE = b"ID3 Hello, where is my parcel?"


@pytest.fixture
def cdn(graph, settings):
    """The Graph stand-in's CDN, at 127.0.0.1 over http, listed exactly."""
    settings.MEDIA_ALLOW_HTTP = True
    settings.MEDIA_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.MEDIA_FETCH_TIMEOUT_SECONDS = 5
    return graph


def cdn_calls(graph) -> list[str]:
    return [call["path"] for call in graph.calls(kind="cdn")]


def test_a_file_on_an_allowed_host_is_fetched_with_its_content_type(cdn):
    url = cdn.cdn_add(name="voice.mp4", body=VOICE, content_type="audio/mp4; codecs=mp4a")

    fetched = media_fetch(url=url)

    assert (fetched.body, fetched.content_type, fetched.url) == (VOICE, "audio/mp4", url)


@pytest.mark.parametrize(
    ("entries", "host", "listing"),
    [
        ([".fbcdn.net"], "scontent.xx.fbcdn.net", "domain"),
        ([".fbcdn.net"], "fbcdn.net", "domain"),
        ([".fbcdn.net"], "SCONTENT.FBCDN.NET.", "domain"),
        ([".fbcdn.net"], "evilfbcdn.net", None),
        ([".fbcdn.net"], "fbcdn.net.evil.com", None),
        (["cdn.example.com"], "cdn.example.com", "exact"),
        (["cdn.example.com"], "a.cdn.example.com", None),
        ([], "fbcdn.net", None),
    ],
)
def test_allowed_hosts_name_a_host_exactly_or_a_domain_with_a_leading_dot(settings, entries, host, listing):
    settings.MEDIA_ALLOWED_HOSTS = entries
    assert host_listing(host) == listing


def test_a_host_not_allowed_is_refused_and_never_asked(cdn, settings):
    url = cdn.cdn_add(name="a.jpg", body=b"jpeg", content_type="image/jpeg")
    settings.MEDIA_ALLOWED_HOSTS = [".fbcdn.net"]

    with pytest.raises(MediaRefusedError, match="127.0.0.1 is not in MEDIA_ALLOWED_HOSTS"):
        media_fetch(url=url)

    assert cdn_calls(cdn) == []


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/a.jpg", "file:///etc/passwd", "gopher://127.0.0.1/"])
def test_a_scheme_other_than_http_is_refused(cdn, url):
    with pytest.raises(MediaRefusedError, match="Only https or http"):
        media_fetch(url=url)


def test_http_is_refused_unless_allowed(cdn, settings):
    url = cdn.cdn_add(name="a.jpg", body=b"jpeg", content_type="image/jpeg")
    settings.MEDIA_ALLOW_HTTP = False

    with pytest.raises(MediaRefusedError, match="Only https addresses are fetched, not http"):
        media_fetch(url=url)

    assert cdn_calls(cdn) == []


@pytest.mark.parametrize(
    "url", ["http://user:secret@127.0.0.1/a.jpg", "http://127.0.0.1:notaport/a.jpg", "http:///a"]
)
def test_a_url_with_credentials_a_bad_port_or_no_host_is_refused(cdn, url):
    with pytest.raises(MediaRefusedError):
        media_fetch(url=url)


def test_a_private_address_is_refused_for_a_host_allowed_only_through_its_domain(cdn, settings):
    url = cdn.cdn_add(name="a.jpg", body=b"jpeg", content_type="image/jpeg").replace("127.0.0.1", "localhost")
    settings.MEDIA_ALLOWED_HOSTS = [".localhost"]

    with pytest.raises(MediaRefusedError, match="private or reserved address"):
        media_fetch(url=url)

    assert cdn_calls(cdn) == []
    settings.MEDIA_ALLOWED_HOSTS = ["localhost"]  # listed exactly, it may
    assert media_fetch(url=url).body == b"jpeg"


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "10.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "224.0.0.1"]
)
def test_reserved_addresses_written_as_the_host_are_refused_through_a_domain_entry(settings, address):
    # A leading dot matching the bare name is the only way such a host passes the list at all.
    settings.MEDIA_ALLOW_HTTP = True
    settings.MEDIA_ALLOWED_HOSTS = ["." + address.strip("[]")]

    with pytest.raises(MediaRefusedError, match="private or reserved address"):
        media_fetch(url=f"http://{address}/latest/meta-data/")


def test_a_redirect_to_a_host_not_allowed_is_refused_before_it_is_asked(cdn):
    url = cdn.cdn_add(name="a.jpg", body=b"jpeg", content_type="image/jpeg")
    cdn.script(
        [{"on": "cdn", "status": 302, "body": "", "headers": {"Location": "http://169.254.169.254/x"}}]
    )

    with pytest.raises(MediaRefusedError, match="169.254.169.254 is not in MEDIA_ALLOWED_HOSTS"):
        media_fetch(url=url)

    assert cdn_calls(cdn) == ["/cdn/a.jpg"]


def test_a_redirect_to_an_allowed_host_is_followed_and_checked_again(cdn, settings):
    url = cdn.cdn_add(name="b.jpg", body=b"the real one", content_type="image/jpeg")
    elsewhere = url.replace("127.0.0.1", "localhost")
    cdn.script([{"on": "cdn", "status": 301, "body": "", "headers": {"Location": elsewhere}}])
    settings.MEDIA_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

    fetched = media_fetch(url=url)

    assert (fetched.body, fetched.url) == (b"the real one", elsewhere)
    assert [call["headers"]["host"] for call in cdn.calls(kind="cdn")] == [
        url.split("/")[2],
        elsewhere.split("/")[2],
    ]


def test_endless_redirects_give_up(cdn):
    url = cdn.cdn_add(name="loop.jpg", body=b"x", content_type="image/jpeg")
    cdn.script(default={"status": 302, "body": "", "headers": {"Location": url}})

    with pytest.raises(MediaFetchError, match="More than 5 redirects"):
        media_fetch(url=url)

    assert len(cdn_calls(cdn)) == 6


def test_a_file_declared_larger_than_the_cap_is_not_read(cdn, settings):
    url = cdn.cdn_add(name="big.mp4", body=b"x" * 11, content_type="audio/mp4")
    settings.MEDIA_MAX_BYTES = 10

    with pytest.raises(MediaTooLargeError, match="11 bytes, more than MEDIA_MAX_BYTES"):
        media_fetch(url=url)

    settings.MEDIA_MAX_BYTES = 11
    assert media_fetch(url=url).body == b"x" * 11


class _Endless(BaseHTTPRequestHandler):
    """A body with no length that never ends: only a cap stops reading it."""

    sent = 0

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.end_headers()
        with contextlib.suppress(OSError):
            while _Endless.sent < 50_000_000:  # bounded, whatever the client does
                self.wfile.write(b"x" * 65536)
                _Endless.sent += 65536

    def log_message(self, *args: object) -> None:
        pass


def test_a_body_without_a_length_is_cut_at_the_cap(settings):
    settings.MEDIA_ALLOW_HTTP, settings.MEDIA_ALLOWED_HOSTS = True, ["127.0.0.1"]
    settings.MEDIA_MAX_BYTES = 1_000_000
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(MediaTooLargeError, match="more than MEDIA_MAX_BYTES"):
            media_fetch(url=f"http://127.0.0.1:{server.server_address[1]}/endless.jpg")
    finally:
        server.shutdown()
        server.server_close()
    assert _Endless.sent < 10_000_000


def test_a_cdn_slower_than_the_timeout_is_a_transient_failure(cdn, settings):
    url = cdn.cdn_add(name="slow.jpg", body=b"x", content_type="image/jpeg")
    cdn.script([{"on": "cdn", "delay": 3}])
    settings.MEDIA_FETCH_TIMEOUT_SECONDS = 0.5

    with pytest.raises(MediaFetchError, match="ReadTimeoutError") as raised:
        media_fetch(url=url)

    assert raised.value.transient


@pytest.mark.parametrize(("status", "transient"), [(404, False), (403, False), (429, True), (503, True)])
def test_an_error_status_says_whether_trying_again_may_help(cdn, status, transient):
    url = cdn.cdn_add(name="gone.jpg", body=b"x", content_type="image/jpeg")
    cdn.script([{"on": "cdn", "status": status, "body": "no"}])

    with pytest.raises(MediaFetchError, match=f"HTTP {status}") as raised:
        media_fetch(url=url)

    assert raised.value.transient is transient
