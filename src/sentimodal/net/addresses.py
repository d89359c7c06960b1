"""Which addresses a fetch may reach, and URL checks done before any connection.

A URL taken from a dataset decides where this tool connects. Without these rules a crafted
row could make it read the cloud metadata service (169.254.169.254), a router's admin page or
a service on localhost (server-side request forgery). So every host name is resolved here,
every address it resolves to is checked, and the connection then goes to an address that was
checked (never to a second lookup that could answer differently).
"""

from __future__ import annotations

import concurrent.futures
import functools
import ipaddress
import os
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit

from sentimodal.net.errors import FetchError

SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Cloud metadata services, named as such in the refusal (most are link-local anyway).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)


@dataclass(frozen=True)
class Target:
    """A checked URL: scheme, host (IDNA-encoded), port, and the path to request."""

    url: str
    scheme: str
    host: str
    port: int
    path: str


def parse_url(url: str) -> Target:
    """Split and check ``url``: http(s) only, a host, no spaces or control characters."""
    if not isinstance(url, str) or not url:
        raise FetchError("invalid URL (empty)", "invalid URL")
    if " " in url:
        raise FetchError("invalid URL (contains a space)", "invalid URL")
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise FetchError("invalid URL (contains a control character)", "invalid URL")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchError(f"invalid URL ({exc})", "invalid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        shown = scheme or "none"
        raise FetchError(
            f"refused: scheme {shown!r} (only http and https are fetched)", "refused scheme"
        )
    host = parts.hostname
    if not host:
        raise FetchError("invalid URL (no host)", "invalid URL")
    try:
        host = host.encode("idna").decode("ascii") if not _is_literal(host) else host
    except UnicodeError:
        raise FetchError(f"invalid URL (bad host name {host!r})", "invalid URL") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if any(ord(c) > 127 for c in path):
        path = quote(path, safe="/?&=%:@!$'()*+,;~-._")
    return Target(url, scheme, host, port or _DEFAULT_PORTS[scheme], path)


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


#: NAT64 prefixes (RFC 6052 well-known, RFC 8215 local use): the last 32 bits are an IPv4
#: address the translator connects to
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to: IPv4-mapped, 6to4 (2002::/16), Teredo
    (2001::/32, server and client) and NAT64 (64:ff9b::/96) all carry one that a tunnel or
    translator connects to, so each must pass the rules of IPv4 itself."""
    found = [address.ipv4_mapped, address.sixtofour]
    if address.teredo is not None:
        found.extend(address.teredo)
    if any(address in network for network in _NAT64):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [ip for ip in found if ip is not None]


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be reached by default, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        else:
            for inner in embedded_ipv4(address):
                reason = refusal(inner)
                if reason is not None:
                    return f"{reason} (embedded in {address})"
            if address.is_site_local:
                return f"refused: site-local address {address}"
    if address in METADATA_ADDRESSES:
        kind = "cloud metadata"
    elif address.is_unspecified:
        kind = "unspecified"
    elif address.is_loopback:
        kind = "loopback"
    elif address.is_link_local:
        kind = "link-local"
    elif address.is_multicast:
        kind = "multicast"
    elif address.is_reserved:
        kind = "reserved"
    elif address.is_private:
        kind = "private"
    elif not address.is_global:
        kind = "non-public"
    else:
        return None
    return f"refused: {kind} address {address}"


def check_address(address: str | IPAddress, allow_private: bool = False) -> IPAddress:
    """``address`` as an ip_address, or FetchError when it is refused."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if not allow_private:
        reason = refusal(ip)
        if reason is not None:
            raise FetchError(reason, "refused address")
    return ip


def _resolver() -> concurrent.futures.ThreadPoolExecutor:
    """This process's resolver threads (per pid: a forked worker has none of its parent's)."""
    return _resolver_of(os.getpid())


@functools.cache
def _resolver_of(pid: int) -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix=f"resolve-{pid}")


def getaddrinfo(host: str, port: int) -> list[tuple]:
    """The system resolver (a seam: tests replace it to make names resolve anywhere)."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)


def resolve(
    host: str, port: int, allow_private: bool = False, timeout: float | None = None
) -> list[IPAddress]:
    """Every address ``host`` resolves to, all checked: one refused address refuses the host,
    so that a name cannot hide a private answer among public ones. The system resolver
    cannot be interrupted, so with ``timeout`` it runs in a helper thread that is waited for
    at most that long."""
    if _is_literal(host):
        return [check_address(host, allow_private)]
    try:
        if timeout is None:
            infos = getaddrinfo(host, port)
        else:
            infos = _resolver().submit(getaddrinfo, host, port).result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise FetchError(
            f"timed out after {timeout:g} s resolving {host!r}", "timeout", retryable=True
        ) from None
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise FetchError(f"cannot resolve host {host!r} ({exc})", "DNS failure") from None
    addresses: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise FetchError(f"cannot resolve host {host!r} (no address)", "DNS failure")
    for ip in addresses:
        check_address(ip, allow_private)
    return addresses
