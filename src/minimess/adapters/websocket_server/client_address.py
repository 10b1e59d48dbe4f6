"""Who a client really is behind proxies: X-Forwarded-For, believed only from trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # For annotations only: the server's settings parse --trusted-proxy here, and every command
    # line, `minimess --version` included, imports the settings.
    from websockets.asyncio.server import ServerConnection
    from websockets.datastructures import Headers

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(specs: Iterable[str | Network]) -> tuple[Network, ...]:
    """`10.0.0.5`, `10.0.0.0/8` or `::1` → networks; raises ValueError on anything else."""
    networks = []
    for spec in specs:
        try:
            networks.append(ipaddress.ip_network(spec, strict=False))
        except ValueError:
            raise ValueError(f"invalid address {spec!r}: expected an IP address or network") from None
    return tuple(networks)


def peer_address(connection: ServerConnection) -> str:
    """The raw peer's IP address, as the TCP connection shows it."""
    address = connection.remote_address
    return str(address[0]) if address else "unknown"


def forwarded_for(headers: Headers) -> str | None:
    """The X-Forwarded-For hops; several header lines are one list (RFC 9110 §5.3)."""
    return ", ".join(headers.get_all("X-Forwarded-For")) or None


def real_client_address(peer: str, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The address of the client: the peer, unless the peer is a trusted proxy.

    Walks X-Forwarded-For from the right (the nearest hop) and returns the first address that is
    not a trusted proxy: anything further left was written by the client and proves nothing.
    """
    if not forwarded_for or not is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
