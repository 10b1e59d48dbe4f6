"""The settings of one `minimess serve` process, with their defaults and valid ranges."""

from __future__ import annotations

import attrs
from attrs import validators as v

BROKER_KINDS = ("memory",)


@attrs.frozen(kw_only=True)
class ServerSettings:
    """Everything an operator can tune on a server; the CLI fills it from flags and MINIMESS_*."""

    host: str = "127.0.0.1"
    port: int = attrs.field(default=8080, validator=[v.ge(0), v.le(65535)])
    broker: str = attrs.field(default="memory", validator=v.in_(BROKER_KINDS))
    # Seconds between `time` frames to every client; 0 turns them off.
    tick: float = attrs.field(default=5.0, validator=v.ge(0))
    # Keepalive: ping every interval, close a client that has not answered within the timeout.
    ping_interval: float = attrs.field(default=20.0, validator=v.ge(0))
    ping_timeout: float = attrs.field(default=20.0, validator=v.gt(0))
    # How long a closing handshake may take before the TCP connection is dropped.
    close_timeout: float = attrs.field(default=5.0, validator=v.gt(0))
    max_message_bytes: int = attrs.field(default=65536, validator=v.ge(128))
    # Frames one connection may have waiting for its socket before it counts as slow.
    queue_size: int = attrs.field(default=1024, validator=v.ge(1))
    max_topics: int = attrs.field(default=100, validator=v.ge(1))
    # Frames per second one client may send (with a burst of as many); 0 means no limit.
    rate_limit: float = attrs.field(default=100.0, validator=v.ge(0))
    shutdown_timeout: float = attrs.field(default=10.0, validator=v.gt(0))
    # Name of this server in `success` frames and logs; default host:port.
    node_id: str | None = None
