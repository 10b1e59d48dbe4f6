"""A server process's run: on the event loop its settings pick, start-up frozen out of the collector's way."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only named: a supervisor of workers imports this module and serves no connection itself.
    from minimess.adapters.websocket_server.server import WebSocketServer


class LoopUnavailable(Exception):
    """--loop uvloop on a Python where uvloop is not installed."""


def loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes the event loop `loop` names (settings.LOOPS); None for asyncio's own.

    `auto` is uvloop where it is installed (the `uvloop` extra, and the development environment),
    else asyncio's.
    """
    if loop == "asyncio" or (loop == "auto" and importlib.util.find_spec("uvloop") is None):
        return None
    try:
        import uvloop
    except ImportError:
        raise LoopUnavailable("uvloop is not installed") from None
    return uvloop.new_event_loop


def run_server(server: WebSocketServer, loop: str = "auto", freeze: bool = True) -> None:
    """Serve until SIGINT or SIGTERM on the event loop `loop` names; `freeze`: see freeze_start_up."""
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        runner.run(_serve(server, freeze))


async def _serve(server: WebSocketServer, freeze: bool) -> None:
    freezing = asyncio.create_task(freeze_start_up(server.listening)) if freeze else None
    try:
        await server.run()
    finally:
        if freezing is not None:
            freezing.cancel()


async def freeze_start_up(listening: asyncio.Event) -> None:
    """Once the server listens, move every object alive into the collector's permanent generation.

    What start-up made (modules, the object graph, the listeners) lives as long as the process;
    a full collection would walk all of it again each time, a pause that sets the p99 of
    deliveries at low rates. Garbage is collected first so that none of it is kept for good.
    """
    await listening.wait()
    gc.collect()
    gc.freeze()
