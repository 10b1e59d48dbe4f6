"""How an origin is written: `--allowed-origin` values and Origin headers, normalised (RFC 6454).

Apart from the policy that judges requests by them (origins.py), which needs websockets: the server's
settings parse --allowed-origin here, and every command line imports the settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

ANY: Final = "*"
DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalise_origin(origin: str) -> str:
    """`HTTPS://Chat.Example.com:443` → `https://chat.example.com`; ValueError if it is not an origin.

    An origin is a scheme, a host and a port (RFC 6454): nothing else may follow the authority.
    """
    parts = urlsplit(origin.strip())
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"invalid origin {origin!r}: bad port") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"invalid origin {origin!r}: expected scheme://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"invalid origin {origin!r}: expected scheme://host[:port] and nothing more")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is None or port == DEFAULT_PORTS[parts.scheme]:
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
