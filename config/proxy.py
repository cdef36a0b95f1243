"""Who sent a request when a proxy stands in between: the rule gunicorn applies to
X-Forwarded-Proto, applied to X-Forwarded-For for the admin's login lockout (django-axes).

Only a proxy listed in FORWARDED_ALLOW_IPS is believed; anyone else could write any address
into the header and so spread their failed logins over addresses that are not theirs.
"""

import ipaddress

from django.conf import settings
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or the address a trusted proxy says it came from.

    X-Forwarded-For is read from the right: each proxy appends the address it was reached from,
    so the first address not a trusted proxy's is the client's, and whatever stands left of it
    the client may have written itself.
    """
    address = request.META.get("REMOTE_ADDR", "")
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    while forwarded and _is_trusted_proxy(address):
        candidate = forwarded.pop()
        if _parsed(candidate) is None:  # not an address: a proxy's mistake, not the client's word
            break
        address = candidate
    return address


def _is_trusted_proxy(address: str) -> bool:
    if "*" in settings.FORWARDED_ALLOW_IPS:
        return True
    parsed = _parsed(address)
    return parsed is not None and any(
        parsed in network
        for network in map(proxy_network, settings.FORWARDED_ALLOW_IPS)
        if network is not None
    )


def proxy_network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The network a FORWARDED_ALLOW_IPS entry names (an address is a network of one), or None
    when it names none (config.checks reports it)."""
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


def _parsed(address: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None
