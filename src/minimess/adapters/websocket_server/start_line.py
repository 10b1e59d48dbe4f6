"""The server's start line: the URL to connect to, the bus, and where the metrics are; logged at any level.

It is how an operator learns what to hand to clients, so it is written under -q too: the logger
here lets every level through, with the processors and output configured for the rest.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Mapping

import structlog

# Never filtered by level; not cached, so that it always uses the configuration in force.
start_log = structlog.wrap_logger(
    None,
    wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
    cache_logger_on_first_use=False,
    logger_factory_args=(__name__,),
)

# A path a client connects with, its uid and topics to be filled in (docs/protocol.md).
SUBSCRIBE_PATTERN = "/subscribe/id:<uid>/topic:<topic>"


def where(
    host: str, port: int, admin_port: int | None, bus: Mapping[str, object], chat_page: bool = False
) -> dict[str, object]:
    """The start line's fields on how to reach this server: `url`, the chat `page`'s, the bus's, and
    `metrics`.

    /metrics is on the admin port when there is one, else on the public port.
    """
    page = {"page": f"http://{authority(host, port)}/"} if chat_page else {}
    return {
        "url": f"ws://{authority(host, port)}{SUBSCRIBE_PATTERN}",
        **page,
        **bus,
        "metrics": f"http://{authority(host, port if admin_port is None else admin_port)}/metrics",
    }


def authority(host: str, port: int) -> str:
    """`host:port` as a client would write it: this machine's name for an address that means any,
    brackets around an IPv6 address."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"{host or socket.gethostname()}:{port}"
    if address.is_unspecified:
        return f"{socket.gethostname()}:{port}"
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def event_loop() -> str:
    """`uvloop` or `asyncio`: the package of the event loop this server runs on, as it runs."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]
