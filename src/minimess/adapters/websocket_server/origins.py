"""Which web pages may open a WebSocket: the `--allowed-origin` ones, or by default the server's own."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

import attrs
from websockets.datastructures import MultipleValuesError
from websockets.http11 import Request

from minimess.adapters.websocket_server.origin_names import ANY, DEFAULT_PORTS, normalise_origin

# Browsers send "null" from sandboxed frames, file: pages and some redirects: no origin to trust.
NULL: Final = "null"


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
    return target_port == (parts.port or DEFAULT_PORTS[parts.scheme])
