"""The start line tells how to connect, under -q too; GET / tells it to a browser."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devtools import processes
from tests.integration.server_process import ServerProcess
from tests.integration.wire import http_get

pytestmark = pytest.mark.integration

StartServer = Callable[..., ServerProcess]
PATTERN = "/subscribe/id:<uid>/topic:<topic>"


async def test_the_start_line_is_written_under_quiet_with_the_url_the_bus_and_the_metrics(
    start_server: StartServer,
) -> None:
    """-q: warnings and errors only, and the start line, whose port is the one bound."""
    server = start_server("-q", "--tick", "0")
    (listening,) = server.logged_so_far("server_listening")
    assert listening["url"] == f"ws://127.0.0.1:{server.port}{PATTERN}"
    assert listening["page"] == f"http://127.0.0.1:{server.port}/"
    assert (listening["broker"], listening["auth"]) == ("memory", "off")
    # The development environment has uvloop, so --loop auto picks it.
    assert listening["loop"] == "uvloop"
    assert listening["metrics"] == f"http://127.0.0.1:{server.port}/metrics"
    others = [event for event in server.events if event is not listening]
    assert {event["level"] for event in others} <= {"warning", "error"}, others


async def test_a_kafka_server_names_kafka_and_the_admin_port_serves_the_metrics(
    start_server: StartServer,
) -> None:
    """No Kafka is needed to start: the line says where it is looked for."""
    bootstrap = f"127.0.0.1:{processes.free_port()}"
    server = start_server(
        "--broker", "kafka", "--kafka-bootstrap", bootstrap, "--kafka-topic", "chat", "--admin-port", "0"
    )
    (listening,) = server.logged_so_far("server_listening")
    assert (listening["broker"], listening["kafka_bootstrap"], listening["kafka_topic"]) == (
        "kafka", bootstrap, "chat",
    )  # fmt: skip
    assert listening["admin_port"] not in (None, server.port)
    assert listening["metrics"] == f"http://127.0.0.1:{listening['admin_port']}/metrics"


async def test_the_start_line_names_the_event_loop_the_server_runs_on(start_server: StartServer) -> None:
    server = start_server("--loop", "asyncio")
    (listening,) = server.logged_so_far("server_listening")
    assert listening["loop"] == "asyncio"


async def test_get_slash_says_what_this_is_and_how_to_connect_and_other_paths_stay_404(
    start_server: StartServer,
) -> None:
    server = start_server("--tick", "0")
    status, page = await http_get(server, "/")
    assert status == 200
    assert f"ws://127.0.0.1:{server.port}{PATTERN}" in page
    assert all(path in page for path in ("/healthz", "/readyz", "/metrics", "/stats"))
    assert (await http_get(server, "/index.html"))[0] == 404
