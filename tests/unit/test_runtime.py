"""The server process's runtime: the event loop --loop picks, and start-up frozen once it listens."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import sys
from collections.abc import Iterator

import pytest
import uvloop

from minimess.adapters.websocket_server.settings import WebSocketSettings
from minimess.bootstrap.runtime import LoopUnavailable, freeze_start_up, loop_factory, run_server
from minimess.bootstrap.server import build_container
from minimess.bootstrap.settings import ServeSettings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Leave the test process's collector as it was: nothing frozen."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_auto_and_uvloop_pick_uvloop_where_it_is_installed() -> None:
    assert loop_factory("auto") is uvloop.new_event_loop
    assert loop_factory("uvloop") is uvloop.new_event_loop


def test_asyncio_picks_asyncios_own_loop() -> None:
    assert loop_factory("asyncio") is None


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    # A None in sys.modules makes `import uvloop` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "uvloop", None)
    assert loop_factory("auto") is None
    with pytest.raises(LoopUnavailable):
        loop_factory("uvloop")


def test_a_loop_that_is_not_one_of_the_choices_is_refused() -> None:
    with pytest.raises(ValueError, match="loop"):
        ServeSettings(loop="trio")


@pytest.mark.usefixtures("unfrozen")
async def test_start_up_is_frozen_once_the_server_listens_and_not_before() -> None:
    listening = asyncio.Event()
    freezing = asyncio.create_task(freeze_start_up(listening))
    await asyncio.sleep(0)
    assert gc.get_freeze_count() == 0
    listening.set()
    await freezing
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("unfrozen")
@pytest.mark.parametrize(("loop", "freeze"), [("uvloop", True), ("asyncio", False)])
def test_a_server_runs_on_the_loop_it_is_given(loop: str, freeze: bool) -> None:
    """Stopped from its own loop once it listens; the start-up freeze only where asked for."""
    server = build_container(ServeSettings(server=WebSocketSettings(port=0))).server()
    seen: list[type[asyncio.AbstractEventLoop]] = []
    original_run = server.run

    async def run_until_listening(stop: asyncio.Event | None = None) -> None:
        stop = asyncio.Event()
        serving = asyncio.create_task(original_run(stop))
        await server.listening.wait()
        seen.append(type(asyncio.get_running_loop()))
        await asyncio.sleep(0)  # the freeze waits on the same event: let it run first
        stop.set()
        await serving

    server.run = run_until_listening  # type: ignore[method-assign]
    run_server(server, loop, freeze=freeze)
    assert [cls.__module__.partition(".")[0] for cls in seen] == [loop]
    assert (gc.get_freeze_count() > 0) is freeze
