"""What names a connection in the log: its short id, on the server's own lines and on websockets' records."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from structlog.typing import EventDict, WrappedLogger

if TYPE_CHECKING:
    # For annotations only: the client's logging setup uses this module too, and needs no server.
    from websockets.asyncio.server import ServerConnection


def connection_id(connection: ServerConnection) -> str:
    """A short id for log lines about one connection."""
    return connection.id.hex[:12]


def websocket_connection_id(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """A websockets record about a connection gets that connection's `connection_id`.

    websockets logs through a LoggerAdapter that puts the connection on the record as
    `websocket` (a weak proxy); the record may outlive it, and then it names nothing. For a
    structlog.stdlib.ProcessorFormatter's `foreign_pre_chain`, which passes the record as `_record`.
    """
    record = event_dict.get("_record")
    websocket = getattr(record, "websocket", None) if isinstance(record, logging.LogRecord) else None
    if websocket is not None:
        with contextlib.suppress(ReferenceError, AttributeError):
            event_dict["connection_id"] = connection_id(websocket)
    return event_dict
