"""What an operator can tune on the WebSocket server, with each option's default, range and help."""

from __future__ import annotations

import socket

import attrs
from attrs import validators as v

from minimess.adapters.websocket_server.client_address import Network, parse_networks


@attrs.frozen(kw_only=True)
class WebSocketSettings:
    """The listening socket, keepalive, per-connection bounds and shutdown of one server."""

    host: str = attrs.field(default="127.0.0.1", metadata={"help": "Address to listen on."})
    port: int = attrs.field(
        default=8080,
        validator=[v.ge(0), v.le(65535)],
        metadata={"help": "Port to listen on (0: any free port)."},
    )
    ping_interval: float = attrs.field(
        default=20.0,
        validator=v.ge(0),
        metadata={"help": "Seconds between keepalive pings; 0 turns them off."},
    )
    ping_timeout: float = attrs.field(
        default=20.0, validator=v.gt(0), metadata={"help": "Seconds to wait for a pong before closing."}
    )
    close_timeout: float = attrs.field(
        default=5.0, validator=v.gt(0), metadata={"help": "Seconds a closing handshake may take."}
    )
    max_message_bytes: int = attrs.field(
        default=65536,
        validator=v.ge(128),
        metadata={"help": "Largest client frame; larger ones close with 1009."},
    )
    queue_size: int = attrs.field(
        default=1024,
        validator=v.ge(1),
        metadata={"help": "Frames a connection may have waiting before it counts as slow."},
    )
    rate_limit: float = attrs.field(
        default=100.0,
        validator=v.ge(0),
        metadata={"help": "Frames per second one client may send; 0: no limit."},
    )
    shutdown_timeout: float = attrs.field(
        default=10.0, validator=v.gt(0), metadata={"help": "Seconds to drain clients on SIGINT/SIGTERM."}
    )
    node_id: str | None = attrs.field(
        default=None, metadata={"help": "This server's name; default host:port."}
    )
    trusted_proxies: tuple[Network, ...] = attrs.field(
        default=(),
        converter=parse_networks,
        metadata={
            "flag": "trusted_proxy",
            "help": "A proxy address or network whose X-Forwarded-For names the client (repeatable).",
        },
    )
    queue_bytes: int = attrs.field(
        default=1048576,
        # Below the socket's own high-water mark (32 KiB) a direct write alone could pass the bound.
        validator=v.ge(65536),
        metadata={
            "help": "Bytes a connection may have waiting, its socket's write buffer included,"
            " before it counts as slow."
        },
    )

    @property
    def node_name(self) -> str:
        """This server's name: --node-id, or hostname:port."""
        return self.node_id or f"{socket.gethostname()}:{self.port}"
