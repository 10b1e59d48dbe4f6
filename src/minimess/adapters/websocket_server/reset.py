"""Dropping a client's TCP connection at once: a reset, and the kernel's send buffer freed with it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

# SO_LINGER on with a zero timeout: close() discards what is unsent and answers with RST.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)


def reset(transport: asyncio.WriteTransport) -> None:
    """Abort `transport` so that nothing of it outlives the call.

    A plain abort closes the socket with a FIN queued behind its unsent data: for a client that
    never reads, the kernel keeps that data (megabytes, with send-buffer autotuning) and probes
    the closed window for minutes, and the client never learns it was dropped. A reset frees the
    buffer now and tells the client at once; what the client had not read yet is lost with it,
    so it is only for clients whose frames are dropped anyway.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
    transport.abort()
