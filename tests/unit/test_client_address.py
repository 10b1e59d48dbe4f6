"""The real client address: X-Forwarded-For is believed only when a trusted proxy sent it."""

from __future__ import annotations

import pytest

from minimess.adapters.websocket.client_address import parse_networks, real_client_address
from minimess.app.settings import ServerSettings

PROXIES = parse_networks(["127.0.0.1", "10.0.0.0/8", "::1"])


def test_without_a_header_the_peer_is_the_client() -> None:
    """No X-Forwarded-For: the TCP peer is who connected."""
    assert real_client_address("127.0.0.1", None, PROXIES) == "127.0.0.1"


def test_a_trusted_proxy_names_the_client() -> None:
    """From a trusted proxy, the nearest untrusted hop in X-Forwarded-For is the client."""
    assert real_client_address("127.0.0.1", "203.0.113.7", PROXIES) == "203.0.113.7"


def test_an_untrusted_peer_cannot_claim_another_address() -> None:
    """A client talking directly cannot make the server log a forged address."""
    assert real_client_address("198.51.100.9", "203.0.113.7", PROXIES) == "198.51.100.9"


def test_hops_written_by_the_client_are_skipped_from_the_right() -> None:
    """Only the hops after the last trusted one count; what the client wrote on the left proves nothing."""
    forwarded = "1.2.3.4, 203.0.113.7, 10.1.2.3"
    assert real_client_address("127.0.0.1", forwarded, PROXIES) == "203.0.113.7"


def test_with_no_trusted_proxy_the_header_is_ignored() -> None:
    """By default nothing is trusted, and the peer is always the client."""
    assert real_client_address("127.0.0.1", "203.0.113.7", ()) == "127.0.0.1"


def test_ipv6_peers_are_matched_too() -> None:
    """A trusted IPv6 proxy is recognised."""
    assert real_client_address("::1", "2001:db8::5", PROXIES) == "2001:db8::5"


@pytest.mark.parametrize("spec", ["nope", "10.0.0.0/33", "300.1.1.1"])
def test_a_bad_trusted_proxy_is_refused(spec: str) -> None:
    """The settings refuse what is not an address or a network."""
    with pytest.raises(ValueError, match="trusted-proxy"):
        ServerSettings(trusted_proxies=(spec,))
