"""Which addresses remote inputs and outputs may reach: the egress policy.

A task names the hosts of its http(s):// and webdav(s):// URLs, and the server (or
a Slurm node's worker) connects there.  Unchecked, a task could make it fetch the
server's own loopback API, a cloud's metadata service (169.254.169.254) or anything
on the private network behind it (server-side request forgery).  So the address
classes of :data:`~toolship.storage.settings.EGRESS_CLASSES` are refused unless
``storage.egress.allow`` lists them, and the check runs twice:

* when the task is created, on what the URL's host resolves to then (a 400 that
  names the setting), and
* on the address actually connected to, for every connection (redirects included):
  a name that resolved to a public address at creation may resolve to 127.0.0.1
  later (DNS rebinding).  :func:`aiohttp_session` (fsspec's HTTP filesystem) and
  :func:`httpx_transport` (webdav4) resolve, check and connect to the checked
  address themselves.

s3:// URLs name buckets, not hosts: they go to the operator's endpoint
(``storage.s3.endpoint_url``), which is trusted.  The heavy HTTP libraries load
with the first connection, not with this module.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from toolship.storage.settings import EGRESS_CLASSES

if TYPE_CHECKING:
    import aiohttp
    import httpx

__all__ = [
    "EgressPolicy",
    "EgressRefused",
    "aiohttp_session",
    "httpx_transport",
    "is_loopback_host",
    "refusal_in",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CLASS_NETWORKS: tuple[tuple[str, IPNetwork], ...] = tuple(
    (name, ipaddress.ip_network(cidr)) for name, cidrs in EGRESS_CLASSES.items() for cidr in cidrs
)
_DESCRIBED = {
    "loopback": "a loopback address",
    "link-local": "a link-local address (where cloud metadata services answer)",
    "private": "a private-network address",
    "unspecified": "the unspecified address",
    "multicast": "a multicast address",
    "reserved": "a reserved address",
}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_RESOLVED_SECONDS = 30.0  # how long creation-time checks reuse a name's addresses


class EgressRefused(PermissionError):
    """A connection the egress policy forbids (never retried)."""


def refusal_in(exc: BaseException | None) -> EgressRefused | None:
    """The EgressRefused behind ``exc``, however deeply a library wrapped it."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, EgressRefused):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _effective(ip: IPAddress) -> IPAddress:
    """The IPv4 address behind an IPv4-mapped, NAT64 or 6to4 IPv6 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def address_class(address: str) -> str | None:
    """The refused class ``address`` belongs to (``"loopback"``, …), None when public."""
    ip = _effective(ipaddress.ip_address(address.split("%", 1)[0]))
    if ip == ipaddress.IPv4Address("255.255.255.255"):
        return "reserved"
    for name, network in _CLASS_NETWORKS:
        if ip.version == network.version and ip in network:
            return name
    return None


def is_loopback_host(host: str | None) -> bool:
    """Is ``host`` this machine for certain (``localhost`` or a loopback address)?

    A host name other than localhost may resolve to anything: it is not.
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class EgressPolicy:
    classes: frozenset[str]
    networks: tuple[IPNetwork, ...]
    hosts: frozenset[str]

    @classmethod
    def of(cls, allow: Sequence[str] | None) -> EgressPolicy:
        """The policy of ``storage.egress.allow`` (None: a shared server's, nothing allowed)."""
        classes, networks, hosts = set(), [], set()
        for entry in allow or ():
            if entry in EGRESS_CLASSES:
                classes.add(entry)
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(classes), tuple(networks), frozenset(hosts))

    def trusts(self, host: str) -> bool:
        """``host`` is allowed by name, whatever it resolves to."""
        return host.lower().rstrip(".") in self.hosts

    def refusal(self, host: str, address: str) -> str | None:
        """Why ``address`` (what ``host`` resolved to) may not be reached; None if it may."""
        if self.trusts(host):
            return None
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if any(ip.version == n.version and ip in n for n in self.networks):
            return None
        kind = address_class(address)
        if kind is None or kind in self.classes:
            return None
        what = address if host == address else f"{host} resolves to {address}"
        return (
            f"{what}, {_DESCRIBED[kind]}, which storage.egress.allow does not allow; the "
            f'operator may add "{kind}", the address or the host name to storage.egress.allow'
        )

    def check(self, host: str, addresses: Iterable[str]) -> None:
        """Raise EgressRefused unless every one of ``addresses`` may be reached."""
        for address in addresses:
            why = self.refusal(host, address)
            if why is not None:
                raise EgressRefused(why)

    def resolve(self, host: str, port: int) -> list[str]:
        """The checked addresses of ``host`` to connect to (for the connection itself)."""
        host = host.strip("[]")
        if _is_address(host):
            addresses = [host]
        else:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        self.check(host, addresses)
        return addresses

    def check_url(self, url: str, resolve: Callable[[str], list[str]] | None = None) -> None:
        """At task creation: raise EgressRefused when ``url``'s host may not be reached.

        A name that does not resolve here passes: the connection itself is checked too,
        and a Slurm node may resolve what the server cannot.
        """
        host = (urlsplit(url).hostname or "").rstrip(".")
        if not host or self.trusts(host):
            return
        if _is_address(host):
            self.check(host, [host])
            return
        self.check(host, (resolve or _resolved)(host))


_cache: dict[str, tuple[float, list[str]]] = {}
_cache_lock = threading.Lock()


def _resolved(host: str) -> list[str]:
    """``host``'s addresses, reused for a few seconds (a batch names the same hosts often)."""
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(host)
        if hit is not None and now - hit[0] < _RESOLVED_SECONDS:
            return hit[1]
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    with _cache_lock:
        if len(_cache) > 4096:
            _cache.clear()
        _cache[host] = (now, addresses)
    return addresses


# --- aiohttp (fsspec's HTTP filesystem) -----------------------------------------------


async def aiohttp_session(policy: EgressPolicy, **kwargs: Any) -> aiohttp.ClientSession:
    """fsspec's ``get_client``: a session whose every connection the policy checked.

    Names are resolved and checked by the resolver; an address written in the URL
    (which aiohttp connects to without resolving) is checked when its socket is made.
    """
    import aiohttp
    from aiohttp.resolver import ThreadedResolver

    class Resolver(ThreadedResolver):
        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[aiohttp.abc.ResolveResult]:
            found = await super().resolve(host, port, family)
            policy.check(host, [r["host"] for r in found])
            if not policy.trusts(host):
                return found
            for r in found:
                trusted.add(r["host"])
            return found

    trusted: set[str] = set()  # addresses of names the operator allowed by name

    def make_socket(addr_info: Any) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        address = str(sockaddr[0])
        if address not in trusted:
            policy.check(address, [address])
        return socket.socket(family, type_, proto)

    connector = aiohttp.TCPConnector(resolver=Resolver(), socket_factory=make_socket)
    return aiohttp.ClientSession(connector=connector, **kwargs)


# --- httpx (webdav4) ------------------------------------------------------------------


def httpx_transport(policy: EgressPolicy) -> httpx.HTTPTransport:
    """An httpx transport that resolves, checks and connects to the checked address.

    TLS still verifies the URL's host name: only the TCP connection is made to the
    address, the handshake names the host.
    """
    import httpcore
    import httpx

    class Backend(httpcore.SyncBackend):
        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore.NetworkStream:
            last: Exception | None = None
            for address in policy.resolve(host, port):
                try:
                    return super().connect_tcp(
                        address, port, timeout, local_address, socket_options
                    )
                except httpcore.ConnectError as exc:
                    last = exc
            raise last or httpcore.ConnectError(f"{host} has no address")

    transport = httpx.HTTPTransport()
    # httpx builds its pool without a way to name the network backend: rebuild it with one.
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's own
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=5.0,
        network_backend=Backend(),
    )
    return transport
