"""A real `minimess serve` process for integration tests, and the events it logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from typing import IO, Any

from devtools import processes

from tests.timeouts import scaled

LogEvent = dict[str, Any]

# Guards the logs of every server and is notified whenever one grows or ends, so that a test can
# wait for an event on any of several servers.
_logs_changed = threading.Condition()


class RunLog:
    """The events one run of a server logged; running until its stderr ends."""

    def __init__(self, *, running: bool) -> None:
        self.events: list[LogEvent] = []
        self.running = running


def _matching(log: RunLog, name: str, fields: dict[str, Any]) -> list[LogEvent]:
    return [
        event
        for event in log.events
        if event.get("event") == name and all(event.get(key) == value for key, value in fields.items())
    ]


def wait_logged(
    servers: Iterable[ServerProcess], name: str, /, count: int = 1, within: float = 10.0, **fields: Any
) -> list[LogEvent]:
    """The events called `name` with these field values that the servers logged, once there are `count`.

    Fails after `within` seconds (scaled), or as soon as every server has exited, with the last events.
    """
    servers = list(servers)
    deadline = time.monotonic() + scaled(within)
    with _logs_changed:
        while True:
            logs = [server.log for server in servers]
            found = [event for log in logs for event in _matching(log, name, fields)]
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not any(log.running for log in logs):
                state = "within" if any(log.running for log in logs) else "before exiting, in"
                last = [event for log in logs for event in log.events[-10:]]
                raise AssertionError(
                    f"{len(found)} of {count} {name!r} events with {fields} logged {state} "
                    f"{scaled(within)} s; last events: {last}"
                )
            _logs_changed.wait(remaining)


class ServerProcess:
    """Runs `python -m minimess serve --port 0 --log-format json ...` and follows its log."""

    def __init__(self, *args: str) -> None:
        self.args = ["--port", "0", "--log-format", "json", *args]
        self.port = 0
        self.process: subprocess.Popen[str] | None = None
        self.log = RunLog(running=False)

    def start(self, port: int | None = None) -> ServerProcess:
        """Start the process (on `port`, or any free one) and wait until it listens."""
        args = list(self.args)
        if port is not None:
            args[1] = str(port)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "minimess", "serve", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        # A log of this run's own: a restart waits for its own events, not the previous run's.
        with _logs_changed:
            self.log = RunLog(running=True)
        threading.Thread(target=self._follow, args=(self.process.stderr, self.log), daemon=True).start()
        (listening,) = self.wait_logged("server_listening", within=15)
        self.port = int(listening["port"])
        return self

    @staticmethod
    def _follow(stderr: IO[str], log: RunLog) -> None:
        for line in stderr:
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                event = {"event": "unstructured", "line": line.rstrip("\n")}
            with _logs_changed:
                log.events.append(event)
                _logs_changed.notify_all()
        with _logs_changed:
            log.running = False
            _logs_changed.notify_all()

    def wait_logged(
        self, name: str, /, count: int = 1, within: float = 10.0, **fields: Any
    ) -> list[LogEvent]:
        """This server's events called `name` with these field values, once there are `count`."""
        return wait_logged((self,), name, count, within, **fields)

    def logged_so_far(self, name: str, **fields: Any) -> list[LogEvent]:
        """The events called `name` with these field values logged until now, without waiting.

        Only for asserting that something was not logged, once a later event shows it had its chance.
        """
        with _logs_changed:
            return _matching(self.log, name, fields)

    @property
    def events(self) -> list[LogEvent]:
        """Every event of this run so far, for failure messages."""
        with _logs_changed:
            return list(self.log.events)

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


def wait_status(server: ServerProcess, path: str, status: int, within: float) -> None:
    """Wait until GET `path` answers `status`; fail after `within` seconds (scaled).

    A poll: nothing tells when an answer changes (/readyz is 503 until Kafka is there, for one).
    """
    url = server.http_url(path)
    if not processes.wait_until(lambda: processes.http_status(url, scaled(5)) == status, scaled(within)):
        raise AssertionError(
            f"{url} did not answer {status} within {scaled(within)} s; last events: {server.events[-10:]}"
        )
