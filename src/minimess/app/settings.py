"""The settings of one `minimess serve` process, with their defaults and valid ranges."""

from __future__ import annotations

import ipaddress
import math
import socket
from urllib.parse import urlsplit

import attrs
from attrs import validators as v

from minimess.domain.model import Topic, Uid

BROKER_KINDS = ("memory", "kafka")


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
    # Name of this server in `success` frames, logs and Kafka envelopes; default hostname:port.
    node_id: str | None = None
    # --broker kafka: where Kafka is, the one topic all servers share, and its partition count
    # (only used when the topic is created).
    kafka_bootstrap: str = "localhost:9092"
    kafka_topic: str = attrs.field(
        default="minimess.messages", validator=v.matches_re(r"[A-Za-z0-9._-]{1,249}")
    )
    kafka_partitions: int = attrs.field(default=12, validator=v.ge(1))
    # Proxies (addresses or networks) whose X-Forwarded-For header names the real client.
    trusted_proxies: tuple[str, ...] = attrs.field(default=())
    # A publish ends in an ack or in `broker_unavailable` within this many seconds.
    publish_timeout: float = attrs.field(default=5.0, validator=[v.gt(0), v.lt(math.inf)])
    # Stamp messages with stage times for a latency breakdown; costs CPU, so for measuring only.
    trace: bool = False

    @trusted_proxies.validator
    def _proxies_are_addresses(
        self, _attribute: attrs.Attribute[tuple[str, ...]], specs: tuple[str, ...]
    ) -> None:
        for spec in specs:
            try:
                ipaddress.ip_network(spec, strict=False)
            except ValueError:
                raise ValueError(
                    f"invalid --trusted-proxy {spec!r}: expected an IP address or network"
                ) from None

    @property
    def node_name(self) -> str:
        """This server's name: --node-id, or hostname:port."""
        return self.node_id or f"{socket.gethostname()}:{self.port}"


@attrs.frozen(kw_only=True)
class ClientSettings:
    """Everything `minimess client` is told by its flags and MINIMESS_* variables."""

    server: str = attrs.field(default="ws://127.0.0.1:8080")
    uid: str = attrs.field()
    topics: tuple[str, ...] = attrs.field(default=())
    # Transcript file; default `<uid>.mess` in the current directory.
    log_file: str | None = None
    print_only: bool = False
    # Reconnect backoff: the first delay is at most retry_first, no delay more than retry_cap.
    retry_first: float = attrs.field(default=0.5, validator=v.gt(0))
    retry_cap: float = attrs.field(default=30.0, validator=v.gt(0))
    ack_timeout: float = attrs.field(default=10.0, validator=v.gt(0))
    # Lines kept while disconnected.
    queue_size: int = attrs.field(default=100, validator=v.ge(1))

    @property
    def transcript_path(self) -> str:
        return self.log_file or f"{self.uid}.mess"

    @server.validator
    def _server_is_a_websocket_url(self, _attribute: attrs.Attribute[str], url: str) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise ValueError(f"invalid server URL {url!r}: {error}") from None
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"invalid server URL {url!r}: expected ws://host[:port] or wss://host[:port]")
        if port == 0 or "?" in url or "#" in url:
            raise ValueError(f"invalid server URL {url!r}: expected ws://host[:port] or wss://host[:port]")

    @uid.validator
    def _uid_is_valid(self, _attribute: attrs.Attribute[str], uid: str) -> None:
        Uid(uid)

    @topics.validator
    def _topics_are_valid(
        self, _attribute: attrs.Attribute[tuple[str, ...]], topics: tuple[str, ...]
    ) -> None:
        for name in topics:
            Topic(name)
