"""Fetching a file a person sent from Meta's CDN, and nothing else.

An attachment's URL comes in a webhook, so it is treated as hostile: fetching it must not let
anyone make this service read its own network (a cloud's metadata address, an admin port on
localhost) or fill its memory. So, for the URL and for every redirect, which is followed by
hand:

- the scheme is https (http too with MEDIA_ALLOW_HTTP, for development);
- the host is in MEDIA_ALLOWED_HOSTS: an entry names a host exactly, or with a leading dot a
  domain and every subdomain of it (".fbcdn.net" is fbcdn.net and scontent.xx.fbcdn.net);
- the host's name is resolved, and every address it has is checked: a private, loopback,
  link-local, reserved or multicast one is refused unless the host is listed exactly (as a
  test's 127.0.0.1 is). The connection then goes to an address that was checked, with TLS
  verified against the host's name, so a second DNS answer cannot slip another one in;
- the body is read as it comes, never decompressed, and given up past MEDIA_MAX_BYTES, or once
  MEDIA_FETCH_TIMEOUT_SECONDS have passed since the first hop began (a server dripping bytes
  can hold one read for at most that long again).

urllib3 (requests' own transport) is used directly because requests cannot connect to a given
address while verifying TLS for a host name.
"""

import contextlib
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, urljoin, urlsplit

import requests.certs
import urllib3
from django.conf import settings
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError

# Meta's CDN answers directly, or through one or two redirects (lookaside → scontent).
MAX_REDIRECTS = 5
_CHUNK_BYTES = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TRANSIENT_STATUSES = frozenset({408, 425, 429})
_USER_AGENT = "messenger-assistant-media/1.0"


class MediaFetchError(Exception):
    """The file was not fetched. `code` names why for metrics, `reason` says it for staff;
    `transient` when trying again later may succeed."""

    code = "fetch_failed"

    def __init__(self, reason: str, *, transient: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


class MediaRefusedError(MediaFetchError):
    """The URL, or a redirect, points where the service may not go."""

    code = "refused"

    def __init__(self, reason: str) -> None:
        super().__init__(reason, transient=False)


class MediaTooLargeError(MediaFetchError):
    code = "too_large"

    def __init__(self, reason: str) -> None:
        super().__init__(reason, transient=False)


@dataclass(frozen=True)
class FetchedFile:
    body: bytes
    # As the server said (without parameters), lower-cased; empty when it said nothing.
    content_type: str
    # Where it was fetched from in the end, after redirects.
    url: str


def media_fetch(*, url: str) -> FetchedFile:
    """The file at `url`, fetched under the rules of the module's docstring; MediaFetchError when not."""
    deadline = time.monotonic() + settings.MEDIA_FETCH_TIMEOUT_SECONDS
    for _ in range(MAX_REDIRECTS + 1):
        response = _get(url=url, deadline=deadline)
        try:
            if response.status in _REDIRECTS:
                location = response.headers.get("Location")
                if not location:
                    raise MediaFetchError(f"The file's server redirected nowhere (HTTP {response.status})")
                url = urljoin(url, location)
                continue
            if response.status != 200:
                # Meta's CDN answers 403 or 404 once a URL has expired: asking again will not help.
                raise MediaFetchError(
                    f"The file's server answered HTTP {response.status}",
                    transient=response.status >= 500 or response.status in _TRANSIENT_STATUSES,
                )
            body = _body(response, deadline=deadline)
        finally:
            response.close()  # and its connection: each fetch has a pool of its own
        content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        return FetchedFile(body=body, content_type=content_type, url=url)
    raise MediaFetchError(f"More than {MAX_REDIRECTS} redirects")


def host_listing(host: str) -> str | None:
    """How MEDIA_ALLOWED_HOSTS lists `host`: "exact", "domain" (through a leading-dot entry), or None."""
    host = host.lower().rstrip(".")
    entries = [entry.strip().lower().rstrip(".") for entry in settings.MEDIA_ALLOWED_HOSTS if entry.strip()]
    if host in entries:
        return "exact"
    for entry in entries:
        if entry.startswith(".") and (host == entry[1:] or host.endswith(entry)):
            return "domain"
    return None


def _get(*, url: str, deadline: float) -> urllib3.BaseHTTPResponse:
    """One GET of `url` after checking it, to an address that was checked (the first of them
    that takes the connection); the response unread."""
    parts = _checked_parts(url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _checked_addresses(host=host, port=port, exactly_listed=host_listing(host) == "exact")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = port == (443 if parts.scheme == "https" else 80)
    headers = {
        "Host": _host_header(host) if default_port else f"{_host_header(host)}:{port}",
        "User-Agent": _USER_AGENT,
        "Accept": "*/*",
        # Media gain nothing from compression, and a compressed bomb cannot pass the size cap.
        "Accept-Encoding": "identity",
    }
    # The addresses in turn, as a browser does, while the connection itself is refused.
    for address in addresses[:-1]:
        with contextlib.suppress(NewConnectionError):
            return _open(
                parts.scheme, address, port, host=host, path=path, headers=headers, deadline=deadline
            )
    try:
        return _open(
            parts.scheme, addresses[-1], port, host=host, path=path, headers=headers, deadline=deadline
        )
    except Urllib3Error as error:
        raise MediaFetchError(f"Could not fetch the file ({type(error).__name__})") from error


def _open(
    scheme: str, address: str, port: int, *, host: str, path: str, headers: dict[str, str], deadline: float
) -> urllib3.BaseHTTPResponse:
    pool = _pool(scheme=scheme, address=address, port=port, host=host, deadline=deadline)
    return pool.urlopen("GET", path, headers=headers, redirect=False, preload_content=False)


def _pool(*, scheme: str, address: str, port: int, host: str, deadline: float) -> urllib3.HTTPConnectionPool:
    timeout = urllib3.Timeout(connect=_left(deadline), read=_left(deadline))
    if scheme == "http":
        return urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False)
    return urllib3.HTTPSConnectionPool(
        address,
        port,
        timeout=timeout,
        retries=False,
        server_hostname=host,
        assert_hostname=host,
        cert_reqs="CERT_REQUIRED",
        ca_certs=requests.certs.where(),
    )


def _checked_parts(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError as error:
        raise MediaRefusedError("The file's address is not a valid URL") from error
    allowed = ("https", "http") if settings.MEDIA_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed:
        raise MediaRefusedError(
            f"Only {' or '.join(allowed)} addresses are fetched, not {parts.scheme or 'this'}"
        )
    if not parts.hostname:
        raise MediaRefusedError("The file's address has no host")
    if parts.username is not None or parts.password is not None:
        raise MediaRefusedError("The file's address carries credentials")
    if host_listing(parts.hostname) is None:
        raise MediaRefusedError(f"The host {parts.hostname} is not in MEDIA_ALLOWED_HOSTS")
    return parts


def _checked_addresses(*, host: str, port: int, exactly_listed: bool) -> list[str]:
    """The addresses of `host` to connect to, every one of them checked."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise MediaFetchError(f"The host {host} could not be resolved") from error
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise MediaFetchError(f"The host {host} has no address")
    if not exactly_listed:
        for address in addresses:
            if not _public(address):
                raise MediaRefusedError(
                    f"The host {host} has a private or reserved address; only a host listed exactly "
                    "in MEDIA_ALLOWED_HOSTS may"
                )
    return addresses


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # without an IPv6 scope
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _body(response: urllib3.BaseHTTPResponse, *, deadline: float) -> bytes:
    """The response's body, given up past MEDIA_MAX_BYTES or the deadline."""
    limit = settings.MEDIA_MAX_BYTES
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise MediaTooLargeError(
            f"The file has {int(declared):,} bytes, more than MEDIA_MAX_BYTES ({limit:,})"
        )
    chunks, size = [], 0
    try:
        # read1 returns what one read of the socket gave, so the deadline is checked that often.
        while chunk := response.read1(_CHUNK_BYTES, decode_content=False):
            size += len(chunk)
            if size > limit:
                raise MediaTooLargeError(f"The file has more than MEDIA_MAX_BYTES ({limit:,} bytes)")
            if time.monotonic() > deadline:
                raise MediaFetchError("The file took longer than MEDIA_FETCH_TIMEOUT_SECONDS to fetch")
            chunks.append(chunk)
    except Urllib3Error as error:
        raise MediaFetchError(f"Could not fetch the file ({type(error).__name__})") from error
    return b"".join(chunks)


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise MediaFetchError("The file took longer than MEDIA_FETCH_TIMEOUT_SECONDS to fetch")
    return left


def _host_header(host: str) -> str:
    return f"[{host}]" if ":" in host else host
