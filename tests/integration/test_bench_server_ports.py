"""`minimess bench --server-port`: the servers it starts listen where it is told."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.integration.minimess_command import minimess

pytestmark = pytest.mark.integration


def test_the_started_server_listens_on_the_port_given(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    logs = tmp_path / "logs"
    run = ("--subscribers", "2", "--messages", "2", "--rounds", "1", "--workers", "1", "--baseline", "none")
    bench = minimess("bench", *run, "--server-port", str(port), "--log-dir", str(logs))
    assert bench.returncode == 0, bench.stderr
    events = [json.loads(line) for line in (logs / "minimess-1.log").read_text().splitlines()]
    listening = [event for event in events if event["event"] == "server_listening"]
    assert [event["port"] for event in listening] == [port]
