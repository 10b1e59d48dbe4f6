"""Which web pages may open a WebSocket: the `--allowed-origin` ones, or by default the server's own."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

import attrs
from websockets.datastructures import MultipleValuesError
from websockets.http11 import Request

ANY: Final = "*"
# Browsers send "null" from sandboxed frames, file: pages and some redirects: no origin to trust.
NULL: Final = "null"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalise_origin(origin: str) -> str:
    """`HTTPS://Chat.Example.com:443` → `https://chat.example.com`; ValueError if it is not an origin.

    An origin is a scheme, a host and a port (RFC 6454): nothing else may follow the authority.
    """
    parts = urlsplit(origin.strip())
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"invalid origin {origin!r}: bad port") from None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"invalid origin {origin!r}: expected scheme://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"invalid origin {origin!r}: expected scheme://host[:port] and nothing more")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def parse_allowed_origins(specs: Iterable[str]) -> tuple[str, ...]:
    """The `--allowed-origin` values, normalised; `*` stays `*`; raises ValueError on anything else."""
    allowed = []
    for spec in specs:
        if spec.strip() == ANY:
            allowed.append(ANY)
            continue
        allowed.append(normalise_origin(spec))
    return tuple(dict.fromkeys(allowed))


@attrs.frozen
class OriginPolicy:
    """Refuses WebSocket requests from pages of other sites (cross-site WebSocket hijacking).

    A request without `Origin` does not come from a browser page (terminal clients, scripts) and
    is let through: the header is what browsers add, and only pages need guarding against.

    With `allowed` origins, they are the whole list. Without, the server's own origin is judged
    by the request's Host header, which a page can choose through DNS rebinding (its host name
    made to resolve to the server's address): so a server that browsers reach on a private
    network should list its origins.
    """

    allowed: tuple[str, ...] = ()

    def refusal(self, request: Request) -> str | None:
        """Why this request's Origin is refused (for a 403), or None when it may connect."""
        try:
            origin = request.headers.get("Origin")
        except MultipleValuesError:
            return "more than one Origin header"
        if origin is None or ANY in self.allowed:
            return None
        if origin.strip() == NULL:
            return "Origin null is not allowed"
        try:
            normalised = normalise_origin(origin)
        except ValueError:
            return "malformed Origin header"
        if self.allowed:
            return (
                None
                if normalised in self.allowed
                else "Origin not allowed (--allowed-origin lists the ones that are)"
            )
        if _is_same_origin(normalised, request):
            return None
        return "Origin not allowed (only the server's own origin is, without --allowed-origin)"


def _is_same_origin(origin: str, request: Request) -> bool:
    """Whether `origin` (normalised) names the host and port this request was sent to.

    The Host header is what the browser connected to; proxies in front pass it through. The
    scheme is not compared: behind a TLS-terminating proxy the server cannot see it.
    """
    try:
        host = request.headers.get("Host")
    except MultipleValuesError:
        return False
    if not host:
        return False
    parts = urlsplit(origin)
    try:
        target = urlsplit("//" + host.strip())
        target_port = target.port
    except ValueError:
        return False
    if target.hostname is None or target.hostname != parts.hostname:
        return False
    if target_port is None:
        # A Host without a port names the default one: so must the (normalised) origin.
        return parts.port is None
    return target_port == (parts.port or _DEFAULT_PORTS[parts.scheme])
