"""HTTP connections that reach public addresses only.

A feed address is typed by staff, but the server it names may redirect anywhere, and a name
may resolve to anything: this machine (127.0.0.1, where an admin interface or a database may
listen), the office network, or a cloud's metadata service (169.254.169.254) that hands out
credentials. So every connection is checked where it is made, after its name is resolved,
and is made to the address that was checked: a name that answers differently the next time
gains nothing. Networks of the organisation's own (a website on the intranet) can be allowed
by name.
"""

from __future__ import annotations

import functools
import http.client
import socket
import ssl
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

__all__ = [
    "PUBLIC_ONLY",
    "AddressPolicy",
    "ForbiddenAddress",
    "Network",
    "Resolver",
    "guarded_handlers",
    "system_resolver",
]

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address
# host, port -> the addresses to connect to, in order.
Resolver = Callable[[str, int], Sequence[str]]

# IPv6 addresses that carry an IPv4 one, which is what the connection reaches in the end.
NAT64 = ip_network("64:ff9b::/96")


class ForbiddenAddress(PermissionError):
    """A connection would reach an address that is not public (and not allowed)."""


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system's resolver gives for ``host``, without repeats."""
    answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(answer[4][0]) for answer in answers))


def _embedded_ipv4(address: Address) -> Address:
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in NAT64:
            return IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _kind(address: Address) -> str | None:
    """What kind of non-public address this is ("an unspecified"…), or None when public."""
    address = _embedded_ipv4(address)
    for kind, test in (
        ("a loopback", address.is_loopback),
        ("a link-local", address.is_link_local),
        ("an unspecified", address.is_unspecified),
        ("a multicast", address.is_multicast),
        ("a private", address.is_private),
    ):
        if test:
            return kind
    return None if address.is_global else "a reserved"


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses a download may connect to: public ones, and those in ``allowed``."""

    allowed: tuple[Network, ...] = ()
    resolve: Resolver = system_resolver

    def check(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host``; raises :class:`ForbiddenAddress` when
        any of them is not public and not allowed (a public name has no private address)."""
        addresses = list(self.resolve(host, port))
        for text in addresses:
            address = ip_address(text.split("%", 1)[0])
            kind = _kind(address)
            if kind is None or any(address in network for network in self.allowed):
                continue
            if host.strip("[]") == text:
                message = f"{text} is {kind} address"
            else:
                message = f"{host} is at {text}, {kind} address"
            raise ForbiddenAddress(message)
        return addresses

    def connect(
        self, address: tuple[str, int], timeout: Any, source_address: Any = None
    ) -> socket.socket:
        """Like ``socket.create_connection``, to checked addresses only."""
        host, port = address
        problem: OSError = OSError(f"{host} has no address")
        for checked in self.check(host, port):
            try:
                return socket.create_connection((checked, port), timeout, source_address)
            except OSError as error:
                problem = error
        raise problem


PUBLIC_ONLY = AddressPolicy()


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, *, policy: AddressPolicy, **options: Any) -> None:
        super().__init__(host, **options)
        # connect() makes its socket with this; everything else it does stays the same.
        self._create_connection = policy.connect


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, *, policy: AddressPolicy, **options: Any) -> None:
        super().__init__(host, **options)
        self._create_connection = policy.connect


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, policy: AddressPolicy) -> None:
        super().__init__()
        self.policy = policy

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_GuardedHTTPConnection, policy=self.policy)
        return self.do_open(connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, policy: AddressPolicy) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(context=self.tls)
        self.policy = policy

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_GuardedHTTPSConnection, policy=self.policy)
        return self.do_open(connection, req, context=self.tls)


def guarded_handlers(policy: AddressPolicy) -> list[urllib.request.BaseHandler]:
    """Handlers for ``urllib.request.build_opener`` whose connections follow ``policy``.

    Proxy settings from the environment are not used: through a proxy, the address reached
    would be the proxy's to choose, not ours to check.
    """
    return [urllib.request.ProxyHandler({}), _HTTPHandler(policy), _HTTPSHandler(policy)]
