"""A real `minimess serve` process for integration tests, and the events it logs."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from devtools import processes

from tests.timeouts import scaled


class ServerProcess:
    """Runs `python -m minimess serve --port 0 --log-format json ...` and follows its log."""

    def __init__(self, *args: str) -> None:
        self.args = ["--port", "0", "--log-format", "json", *args]
        self.events: list[dict[str, Any]] = []
        self._new_events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.port = 0
        self.process: subprocess.Popen[str] | None = None

    def start(self, port: int | None = None) -> ServerProcess:
        """Start the process (on `port`, or any free one) and wait until it listens."""
        # A restart must wait for this run's events, not find the previous run's.
        self.events = []
        self._new_events = queue.Queue()
        args = list(self.args)
        if port is not None:
            args[1] = str(port)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "minimess", "serve", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        threading.Thread(target=self._follow_log, args=(self.process,), daemon=True).start()
        listening = self.wait_for_event("server_listening", timeout=scaled(15))
        self.port = int(listening["port"])
        return self

    def _follow_log(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "unstructured", "line": line.rstrip("\n")}
            if not isinstance(event, dict):
                event = {"event": "unstructured", "line": line.rstrip("\n")}
            self.events.append(event)
            self._new_events.put(event)

    def wait_for_event(self, name: str, timeout: float) -> dict[str, Any]:
        """The first logged event called `name` (already logged or arriving within `timeout`)."""
        for event in list(self.events):
            if event.get("event") == name:
                return event
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"server did not log {name!r} within {timeout} s: {self.events[-10:]}")
            try:
                event = self._new_events.get(timeout=remaining)
            except queue.Empty:
                continue
            if event.get("event") == name:
                return event

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def http_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit; its return code."""
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time; safe to call twice."""
        if self.process is None or self.process.poll() is not None:
            return
        processes.terminate([self.process.pid], scaled(15))
        self.process.wait()


def wait_ready(server: ServerProcess, within: float) -> None:
    """Wait until the server answers GET /readyz with 200; fail after `within` seconds (scaled)."""
    url = server.http_url("/readyz")
    # 503 until Kafka is there.
    if not processes.wait_until(lambda: processes.http_status(url, scaled(5)) == 200, scaled(within)):
        pytest.fail(f"{url} not 200 within {scaled(within)} s: {server.events[-10:]}")
