"""The events a workload records, one per thing a client did or saw, and their JSON-lines form."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

import attrs

# Failed.code when the connection dropped before the server answered a publish: outcome unknown.
CONNECTION_LOST: Final = "connection_lost"
# Failed.code when the client stopped waiting for an answer (and dropped the connection).
NO_ANSWER: Final = "no_answer"


@attrs.frozen
class Sent:
    """A `pub` frame left the client; `attempt` counts from 1 for each id."""

    client: str
    at: float
    topic: str
    id: str
    attempt: int


@attrs.frozen
class Acked:
    """An `ack` for the id, with the position it carried (None when it carried none)."""

    client: str
    at: float
    topic: str
    id: str
    epoch: str | None
    offset: int | None


@attrs.frozen
class Failed:
    """An attempt to publish the id ended without an ack: an `error` code, or CONNECTION_LOST or NO_ANSWER."""

    client: str
    at: float
    topic: str
    id: str
    code: str
    # The error's reason, as the server gave it.
    reason: str = ""


@attrs.frozen
class Subscribed:
    """A `subscribed` frame: the position the subscription starts from, and `recovered` as sent."""

    client: str
    at: float
    topic: str
    epoch: str | None
    offset: int | None
    recovered: bool | None


@attrs.frozen
class Delivered:
    """A `message` frame, by id and position."""

    client: str
    at: float
    topic: str
    id: str
    epoch: str | None
    offset: int | None


@attrs.frozen
class Connected:
    """The `success` frame of a new connection, with the server it came from."""

    client: str
    at: float
    node: str


@attrs.frozen
class Disconnected:
    """A connection ended, or an attempt to open one failed."""

    client: str
    at: float
    reason: str


@attrs.frozen
class Fault:
    """A fault the scenario injected (client is empty): what, and on what."""

    client: str
    at: float
    name: str
    target: str


Record = Sent | Acked | Failed | Subscribed | Delivered | Connected | Disconnected | Fault

KINDS: Final[dict[str, type[Record]]] = {
    "sent": Sent,
    "acked": Acked,
    "failed": Failed,
    "subscribed": Subscribed,
    "delivered": Delivered,
    "connected": Connected,
    "disconnected": Disconnected,
    "fault": Fault,
}
_KIND_OF: Final = {cls: kind for kind, cls in KINDS.items()}


def to_json(record: Record) -> str:
    """One line of JSON: the record's fields and its `kind`."""
    return json.dumps({"kind": _KIND_OF[type(record)], **attrs.asdict(record)}, separators=(",", ":"))


def from_json(line: str) -> Record:
    """The inverse of to_json."""
    document: dict[str, Any] = json.loads(line)
    return KINDS[document.pop("kind")](**document)


def write(records: Iterable[Record], path: Path) -> None:
    with path.open("w") as file:
        for record in records:
            file.write(to_json(record) + "\n")


def read(path: Path) -> Iterator[Record]:
    with path.open() as file:
        for line in file:
            if line.strip():
                yield from_json(line)
