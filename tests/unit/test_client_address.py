"""The real client address: X-Forwarded-For is believed only when a trusted proxy sent it."""

from __future__ import annotations

import re

import pytest

from minimess.adapters.websocket_server.client_address import Network, parse_networks, real_client_address

PROXIES = parse_networks(["127.0.0.1", "10.0.0.0/8", "::1"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "client"),
    [
        ("127.0.0.1", None, PROXIES, "127.0.0.1"),
        ("127.0.0.1", "203.0.113.7", PROXIES, "203.0.113.7"),
        ("::1", "2001:db8::5", PROXIES, "2001:db8::5"),
        # A client talking directly cannot make the server log a forged address.
        ("198.51.100.9", "203.0.113.7", PROXIES, "198.51.100.9"),
        ("127.0.0.1", "203.0.113.7", (), "127.0.0.1"),
        # From the right, the first hop that is no trusted proxy; what the client wrote further
        # left proves nothing.
        ("127.0.0.1", "1.2.3.4, 203.0.113.7, 10.1.2.3", PROXIES, "203.0.113.7"),
        ("127.0.0.1", "10.9.9.9, 10.1.2.3", PROXIES, "10.9.9.9"),
    ],
    ids=[
        "no-header",
        "via-proxy",
        "via-ipv6-proxy",
        "untrusted-peer",
        "nothing-trusted",
        "hops",
        "all-trusted",
    ],
)
def test_the_client_is_the_peer_unless_a_trusted_proxy_names_it(
    peer: str, forwarded_for: str | None, trusted: tuple[Network, ...], client: str
) -> None:
    assert real_client_address(peer, forwarded_for, trusted) == client


@pytest.mark.parametrize("spec", ["nope", "10.0.0.0/33", "300.1.1.1"])
def test_a_trusted_proxy_that_is_no_address_or_network_is_refused(spec: str) -> None:
    with pytest.raises(
        ValueError, match=re.escape(f"invalid address '{spec}': expected an IP address or network")
    ):
        parse_networks([spec])
