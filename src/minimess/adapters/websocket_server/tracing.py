"""--trace: stage times from a client's send to the socket write, for `minimess bench --trace`.

Chosen at start-up: a server without --trace runs none of this. A publish gets its `sent` and
`received` times as message headers, which every broker carries; the message frame is rendered
with them and the time it was rendered (`delivered`), and each subscriber's copy gets `queued`
and `written` written in at fixed width, which keeps the payload length, and so the WebSocket
header, valid.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Final

from minimess.adapters.wire.client_frames import Pub
from minimess.adapters.wire.server_frames import (
    ack_document,
    message_document,
    payload,
    text_frame,
    time_frame,
)
from minimess.domain.model import NO_HEADERS, Message
from minimess.domain.ports import Frame

SENT_HEADER: Final = "trace-sent-us"
RECEIVED_HEADER: Final = "trace-received-us"

NO_STAMPS: Final = NO_HEADERS
"""The headers of a publish on a server that does not trace."""

STAMP_DIGITS: Final = 16
"""Width of a per-subscriber stamp: epoch microseconds have 16 digits until the year 2286."""
_UNSTAMPED: Final = b"0" * STAMP_DIGITS
_QUEUED_KEY: Final = b',"queued":'
_WRITTEN_KEY: Final = b',"written":'
_TRACE_END: Final = b"}}"
TRACE_TAIL: Final = _QUEUED_KEY + _UNSTAMPED + _WRITTEN_KEY + _UNSTAMPED + _TRACE_END
"""How every traced message frame ends before its subscriber's stamps are written in."""
# Offsets from the end of a traced frame: [-55:-45] queued key, [-45:-29] queued digits,
# [-29:-18] written key, [-18:-2] written digits, [-2:] the end of the trace and the message.
_TRACE_END_AT: Final = -len(_TRACE_END)
_WRITTEN_AT: Final = _TRACE_END_AT - STAMP_DIGITS
_WRITTEN_KEY_AT: Final = _WRITTEN_AT - len(_WRITTEN_KEY)
_QUEUED_AT: Final = _WRITTEN_KEY_AT - STAMP_DIGITS
_QUEUED_KEY_AT: Final = _QUEUED_AT - len(_QUEUED_KEY)


def now_us() -> int:
    """The time of a stage: microseconds since the Unix epoch, by the wall clock.

    Wall clock, not monotonic, because stages are compared between processes on one machine.
    """
    return time.time_ns() // 1000


def publish_headers(pub: Pub, received_us: int) -> Mapping[str, str]:
    """The stage times a publish carries over the bus; a client that does not say when it sent
    counts as sending when the server read its frame."""
    sent = received_us if pub.sent is None else pub.sent
    return {SENT_HEADER: str(sent), RECEIVED_HEADER: str(received_us)}


def traced_ack_frame(ref: str | None, message: Message, received_us: int) -> Frame:
    """An ack with when the server read the pub and when the bus accepted it (now)."""
    document = ack_document(ref, message)
    document["trace"] = {"received": received_us, "accepted": now_us()}
    return text_frame(payload(document))


class TracedRenderer:
    """The Renderer port with stage times in message frames; ticks as usual."""

    time = staticmethod(time_frame)

    @staticmethod
    def message(message: Message) -> Frame:
        """A message frame with its stage times, `delivered` read now, and room for the stamps.

        Rendering happens once per message, when the bus hands it to this server. Headers that
        are missing or not numbers (another server, or a record written by hand) read as null.
        """
        document = message_document(message)
        document["trace"] = {
            "sent": _header_us(message, SENT_HEADER),
            "received": _header_us(message, RECEIVED_HEADER),
            "delivered": now_us(),
        }
        return text_frame(payload(document).removesuffix(_TRACE_END) + TRACE_TAIL)


def _header_us(message: Message, name: str) -> int | None:
    value = message.headers.get(name)
    # ASCII digits only: str.isdigit also takes "²" and other digits int() reads differently or not at all.
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > STAMP_DIGITS:
        return None
    return int(value)


class OutboundStamps:
    """The Stamps an Outbound applies: `queued` when a frame is pushed, `written` when it goes out."""

    @staticmethod
    def queued(frame: Frame) -> Frame:
        return stamp_queued(frame, now_us())

    @staticmethod
    def written(frames: list[Frame]) -> list[Frame]:
        now = now_us()
        return [stamp_written(frame, now) for frame in frames]


def stamp_queued(frame: Frame, now_us: int) -> Frame:
    """`frame` with its `queued` placeholder set to `now_us`; any other frame unchanged."""
    if (
        frame.endswith(_TRACE_END)
        and frame[_QUEUED_KEY_AT:_QUEUED_AT] == _QUEUED_KEY
        and frame[_QUEUED_AT:_WRITTEN_KEY_AT] == _UNSTAMPED
        and frame[_WRITTEN_KEY_AT:_WRITTEN_AT] == _WRITTEN_KEY
    ):
        return frame[:_QUEUED_AT] + _stamp(now_us) + frame[_WRITTEN_KEY_AT:]
    return frame


def stamp_written(frame: Frame, now_us: int) -> Frame:
    """`frame` with its `written` placeholder set to `now_us`; any other frame unchanged."""
    if (
        frame.endswith(_TRACE_END)
        and frame[_WRITTEN_AT:_TRACE_END_AT] == _UNSTAMPED
        and frame[_WRITTEN_KEY_AT:_WRITTEN_AT] == _WRITTEN_KEY
        and frame[_QUEUED_KEY_AT:_QUEUED_AT] == _QUEUED_KEY
    ):
        return frame[:_WRITTEN_AT] + _stamp(now_us) + _TRACE_END
    return frame


def _stamp(now_us: int) -> bytes:
    stamp = b"%016d" % now_us
    if len(stamp) != STAMP_DIGITS or now_us < 0:
        raise ValueError(f"a stamp must be 0 <= t < 10**{STAMP_DIGITS}, got {now_us}")
    return stamp
