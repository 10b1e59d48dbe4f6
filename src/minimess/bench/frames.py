"""What a bench client reads in one frame from a server: one document, or several packed a line each."""

from __future__ import annotations

import json
from typing import Any, Final

from websockets.typing import Subprotocol

BATCH: Final = Subprotocol("minimess.batch")
"""The subprotocol in which a server may write several documents in one frame, a line each."""


def offered(batch: bool) -> list[Subprotocol] | None:
    """The subprotocols a bench client offers: minimess.batch with --batch, else none."""
    return [BATCH] if batch else None


def documents(data: str | bytes) -> list[dict[str, Any]]:
    """The JSON documents in one frame: its text, or each line of it.

    A minimess server packs several frames' texts into one, a line each, for a client of
    minimess.batch; its JSON holds no raw newline.
    """
    texts = data.split("\n") if isinstance(data, str) and "\n" in data else (data,)
    return [json.loads(text) for text in texts]
