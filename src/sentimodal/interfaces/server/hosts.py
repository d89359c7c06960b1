"""Which ``Host`` headers the server answers: a defence against DNS rebinding.

A web page on ``attacker.example`` can make its own name resolve to 127.0.0.1 and then call a
server on the user's machine as if same-origin; its requests still carry ``Host:
attacker.example``. Answering only localhost names, the loopback addresses, the address the
server is bound to (any IP literal when it is bound to all interfaces) and the names the
operator allows keeps such pages out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

_LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without the port and IPv6 brackets, lower case."""
    header = header.strip().lower()
    if header.startswith("["):  # [::1]:8000
        return header[1:].split("]", 1)[0]
    if header.count(":") == 1:
        return header.split(":", 1)[0]
    return header


class HostCheck:
    """``allows(header)``: the ``Host`` header names this server (see the module docstring)."""

    def __init__(self, bound: str, extra: Iterable[str] = ()) -> None:
        extra = [host_name(name) for name in extra]
        self.any_host = "*" in extra
        bound_name = host_name(bound)
        self.any_address = bound_name in _WILDCARDS
        self.names = _LOCAL_NAMES | {bound_name} | set(extra)

    def allows(self, header: str | None) -> bool:
        if self.any_host:
            return True
        if not header:
            return False
        name = host_name(header)
        if name in self.names or name.endswith(".localhost"):
            return True
        if self.any_address:
            try:
                ipaddress.ip_address(name)
            except ValueError:
                return False
            return True
        return False
