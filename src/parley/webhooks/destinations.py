"""Where a completion webhook may go: ``PARLEY_WEBHOOK_ALLOWED_HOSTS``, checked twice.

When a message is posted (``check_url``): the URL's form, and its host against the list — a name must be
listed by name (``hooks.example.com``, or ``*.example.com`` for its subdomains, or ``*`` for any), an
address literal must lie in a listed network (``203.0.113.0/24``, ``127.0.0.1``) or, with ``*``, be public.
When it is sent (``resolve``): every address the name resolves to must be public or lie in a listed
network, and the request goes to the address that was checked — so a name cannot be pointed at the
inside of the network after it was accepted, nor between the check and the connection. Loopback,
link-local, private and other special ranges are never "public": they pass only when listed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from yarl import URL

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_CHARS = 2048
_NAME = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


class RefusedDestination(ValueError):
    """A callback URL or address the policy does not allow; the text says why, for the caller."""


@dataclass(frozen=True, slots=True)
class Destination:
    """A callback URL that passed ``check_url``."""

    url: URL
    """Parsed by yarl, as aiohttp, which sends it, parses it: no second parser to disagree with the check."""
    host: str
    """Lower-case host name (IDNA-encoded), or the address literal (IPv6 without brackets)."""
    port: int
    literal: IpAddress | None
    """The address, when the URL names one rather than a host name."""


def _address(text: str) -> IpAddress | None:
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        return None
    # ::ffff:10.0.0.1 reaches 10.0.0.1: judge the IPv4 address it carries.
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def is_public(address: IpAddress) -> bool:
    """Whether ``address`` is reachable on the public internet: not loopback, link-local, private,
    shared, reserved, documentation or multicast (``ipaddress``'s registry of special ranges)."""
    return address.is_global and not address.is_multicast


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """``PARLEY_WEBHOOK_ALLOWED_HOSTS``, parsed (see the module docstring)."""

    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    """From ``*.example.com``: ``.example.com`` (subdomains, not the domain itself)."""
    networks: tuple[IpNetwork, ...] = ()
    any_host: bool = False
    """``*``: any host name, and any public address."""

    @classmethod
    def parse(cls, entries: Sequence[str]) -> DestinationPolicy:
        """The policy of a list of entries; ``ValueError`` naming the first one that is none of ``*``, a
        host name, ``*.`` + a host name, an address or a network."""
        names: set[str] = set()
        suffixes: list[str] = []
        networks: list[IpNetwork] = []
        any_host = False
        for raw in entries:
            entry = raw.strip().lower()
            if entry == "*":
                any_host = True
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if not _NAME.match(entry):
                raise ValueError(f"{raw!r} is neither a host name, '*.' and a host name, '*', nor a CIDR")
            if entry.startswith("*."):
                suffixes.append(entry[1:])
            else:
                names.add(entry)
        return cls(frozenset(names), tuple(suffixes), tuple(networks), any_host)

    @property
    def enabled(self) -> bool:
        """Whether any destination at all is allowed (an empty list turns webhooks off)."""
        return bool(self.names or self.suffixes or self.networks or self.any_host)

    def _listed_network(self, address: IpAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)

    def check_address(self, address: IpAddress) -> None:
        """``RefusedDestination`` unless a request may be sent to ``address``."""
        mapped = _address(str(address)) or address
        if self._listed_network(mapped) or is_public(mapped):
            return
        raise RefusedDestination(
            f"{mapped} is a loopback, private, link-local or otherwise internal address, and no network in "
            "PARLEY_WEBHOOK_ALLOWED_HOSTS holds it"
        )

    def check_url(self, text: str) -> Destination:
        """The destination ``text`` names, if a webhook may be posted there; else ``RefusedDestination``.
        Nothing is resolved or contacted here."""
        if not self.enabled:
            raise RefusedDestination(
                "webhooks are off on this service (PARLEY_WEBHOOK_ALLOWED_HOSTS is empty)"
            )
        if len(text) > MAX_URL_CHARS:
            raise RefusedDestination(f"must be at most {MAX_URL_CHARS} characters")
        try:
            url = URL(text)
        except ValueError as exc:
            if "port" in str(exc).lower():
                raise RefusedDestination("must have a port from 1 to 65535") from exc
            raise RefusedDestination("must be an absolute http or https URL") from exc
        if url.scheme not in ("http", "https") or not url.raw_host or not url.is_absolute():
            raise RefusedDestination("must be an absolute http or https URL")
        if url.raw_user is not None or url.raw_password is not None:
            raise RefusedDestination("must not carry a user name or password")
        if url.raw_fragment:
            raise RefusedDestination("must not have a fragment (#…)")
        host = url.raw_host.lower().rstrip(".")
        port = url.port
        if port is None or not 0 < port <= 65535:
            raise RefusedDestination("must have a port from 1 to 65535")
        literal = _address(host)
        if literal is not None:
            if self._listed_network(literal) or (self.any_host and is_public(literal)):
                return Destination(url=url, host=host, port=port, literal=literal)
            raise RefusedDestination(
                f"the address {literal} is not in PARLEY_WEBHOOK_ALLOWED_HOSTS"
                + ("" if is_public(literal) else " (an internal address must be listed as a network)")
            )
        if self.any_host or host in self.names or host.endswith(self.suffixes):
            return Destination(url=url, host=host, port=port, literal=None)
        raise RefusedDestination(f"the host {host} is not in PARLEY_WEBHOOK_ALLOWED_HOSTS")

    async def resolve(self, host: str, port: int) -> list[IpAddress]:
        """The addresses ``host`` resolves to, once every one of them passed ``check_address``;
        ``RefusedDestination`` otherwise, ``OSError`` if the name does not resolve."""
        host = host.rstrip(".")
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        addresses: list[IpAddress] = []
        for info in infos:
            found = _address(str(info[4][0]).split("%", 1)[0])
            if found is not None and found not in addresses:
                addresses.append(found)
        if not addresses:
            raise OSError(f"{host} resolved to no address")
        for address in addresses:
            try:
                self.check_address(address)
            except RefusedDestination as exc:
                raise RefusedDestination(f"{host} resolves to {exc}") from exc
        return addresses
