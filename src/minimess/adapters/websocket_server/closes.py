"""How a connection ended, as its close line tells it: the close code and reason in force, and who closed.

websockets' `close_code` is that of the close frame received, so a connection the server closed
itself (1009 for a frame too large, 4000 for a slow consumer) reads as 1006 with no reason when
the client never answered. The frames each side sent, and which came first, say what happened.
"""

from __future__ import annotations

from typing import Literal

import attrs
from websockets.frames import CloseCode
from websockets.protocol import Protocol

ClosedBy = Literal["client", "server", "network"]


@attrs.frozen
class HowClosed:
    """The close code (a number), its reason, and which side started the closing handshake."""

    code: int
    reason: str
    closed_by: ClosedBy


def how_closed(protocol: Protocol, aborted: bool = False) -> HowClosed:
    """How the connection of `protocol` ended, once it has; `aborted`: the server cut it without a close.

    The side whose close frame came first closed it: the client's when it sent one and the server
    only answered (or never did); the server's when it sent one first, whatever the client did
    then. Neither: the TCP connection was lost (1006), or cut by the server (`aborted`).
    """
    sent, received = protocol.close_sent, protocol.close_rcvd
    if received is not None and (sent is None or protocol.close_rcvd_then_sent):
        return HowClosed(int(received.code), received.reason, "client")
    if sent is not None:
        return HowClosed(int(sent.code), sent.reason, "server")
    return HowClosed(int(CloseCode.ABNORMAL_CLOSURE), "", "server" if aborted else "network")
