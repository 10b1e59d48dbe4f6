"""What an operator can tune on the WebSocket server, with each option's default, range and help."""

from __future__ import annotations

import socket

import attrs
from attrs import validators as v

from minimess.adapters.websocket_server.client_address import Network, parse_networks
from minimess.adapters.websocket_server.origin_names import parse_allowed_origins


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
    chat_page: bool = attrs.field(
        default=True,
        metadata={
            "help": "Serve the browser chat page at / (off: / is the plain-text page for every client)."
        },
    )
    node_id: str | None = attrs.field(
        default=None, metadata={"help": "This server's name; default host:port."}
    )
    trusted_proxies: tuple[Network, ...] = attrs.field(
        default=(),
        converter=parse_networks,
        metadata={
            "flag": "trusted_proxy",
            "metavar": "address",
            "help": "A proxy address or network whose X-Forwarded-For names the client (repeatable).",
        },
    )
    allowed_origins: tuple[str, ...] = attrs.field(
        default=(),
        converter=parse_allowed_origins,
        metadata={
            "flag": "allowed_origin",
            "metavar": "origin",
            "help": "A web origin (https://chat.example.com) whose pages may connect, or * for any"
            " (repeatable); the whole list. Without it, the server's own origin (by Host, which DNS"
            " rebinding fakes): list yours if browsers reach the server on a private network.",
        },
    )
    max_connections: int = attrs.field(
        default=0,
        validator=v.ge(0),
        metadata={
            "help": "Connections open at most; 0: the file limit less a reserve of 80 and --max-handshakes."
        },
    )
    max_connections_per_ip: int = attrs.field(
        default=0,
        validator=v.ge(0),
        metadata={"help": "Connections open at most per client address (after --trusted-proxy); 0: no cap."},
    )
    open_timeout: float = attrs.field(
        default=10.0,
        validator=v.gt(0),
        metadata={"help": "Seconds a client has from connecting to the end of its handshake."},
    )
    admin_port: int | None = attrs.field(
        default=None,
        # A port (0: any free one), or None for no admin listener.
        validator=v.optional([v.ge(0), v.le(65535)]),
        metadata={
            "help": "Serve /metrics, /stats, /healthz and /readyz on this port too, and /metrics and /stats"
            " only there."
        },
    )
    admin_token: str | None = attrs.field(
        default=None,
        repr=False,
        metadata={
            "help": "/metrics and /stats require Authorization: Bearer with this token (better set in the"
            " environment)."
        },
    )
    auth_secret_file: str | None = attrs.field(
        default=None,
        metadata={
            "help": "A file holding the HS256 secret (32 bytes or more) that client tokens are signed"
            " with; without it, anyone may connect as anyone."
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
    max_handshakes: int = attrs.field(
        default=0,
        validator=v.ge(0),
        metadata={
            "help": "Connections accepted whose request is not admitted yet, at most; past it the oldest"
            " is dropped. 0: an eighth of what the file limit leaves (64 to 1024)."
        },
    )
    max_handshakes_per_ip: int = attrs.field(
        default=256,
        validator=v.ge(0),
        metadata={
            "help": "The same per peer address (--trusted-proxy peers excepted); past it the address's"
            " oldest is dropped. 0: no bound per address."
        },
    )
    metrics_max_age: float = attrs.field(
        default=1.0,
        validator=v.ge(0),
        metadata={
            "help": "Seconds /metrics and /stats answer with what they last rendered before rendering"
            " again: a rendering takes the event loop time in proportion to the connections, so however"
            " often they are asked, it runs at most once per this. 0: at every request."
        },
    )
    publish_window: int = attrs.field(
        default=100,
        validator=v.ge(1),
        metadata={
            "help": "Publishes one connection may have waiting for the bus; while it has that many, its"
            " frames wait unread. 1: one at a time."
        },
    )
    publish_window_bytes: int = attrs.field(
        default=1048576,
        validator=v.ge(1),
        metadata={
            "help": "Bytes of frames one connection may have waiting for the bus (or behind a publish)."
        },
    )

    @property
    def node_name(self) -> str:
        """This server's name: --node-id, or hostname:port."""
        return self.node_id or f"{socket.gethostname()}:{self.port}"
