"""A real `minimess serve` process for integration tests, the events it logs, and waiting for them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any, Generic, TypeVar

from devtools import processes
from tests.timeouts import scaled

T = TypeVar("T")
LogEvent = dict[str, Any]

# Guards the logs of every server and is notified whenever one grows or ends, so that a test can
# wait for an event on any of several servers.
_logs_changed = threading.Condition()


# Seconds a process may take to start (to listen, or to exit on bad arguments) before a test fails.
PROCESS_START = 60.0


class FollowedStream(Generic[T]):
    """What a process writes to one of its streams, an item per line, read by a thread of its own.

    `changed` guards `items` and `running` and is notified whenever they change; streams waited
    on together share it.
    """

    def __init__(
        self, stream: IO[str] | None, parse: Callable[[str], T], changed: threading.Condition
    ) -> None:
        self.items: list[T] = []
        self.running = stream is not None
        self.changed = changed
        if stream is not None:
            threading.Thread(target=self._follow, args=(stream, parse), daemon=True).start()

    def _follow(self, stream: IO[str], parse: Callable[[str], T]) -> None:
        for line in stream:
            item = parse(line.rstrip("\n"))
            with self.changed:
                self.items.append(item)
                self.changed.notify_all()
        with self.changed:
            self.running = False
            self.changed.notify_all()

    def wait_for(
        self,
        matching: Callable[[T], bool],
        count: int = 1,
        within: float = 10.0,
        what: str = "matching lines",
    ) -> list[T]:
        return wait_for_items((self,), matching, count, within, what)


def wait_for_items(
    streams: Sequence[FollowedStream[T]], matching: Callable[[T], bool], count: int, within: float, what: str
) -> list[T]:
    """The items of the streams that match, once there are `count` (of `what`, for the failure).

    Fails after `within` seconds (scaled), or as soon as every stream has ended, with the last items.
    """
    changed = streams[0].changed
    assert all(stream.changed is changed for stream in streams)
    deadline = time.monotonic() + scaled(within)
    with changed:
        while True:
            found = [item for stream in streams for item in stream.items if matching(item)]
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            running = any(stream.running for stream in streams)
            if remaining <= 0 or not running:
                last = [item for stream in streams for item in stream.items[-10:]]
                raise AssertionError(
                    f"{len(found)} of {count} {what} {'within' if running else 'before the end, in'} "
                    f"{scaled(within)} s; last: {last}"
                )
            changed.wait(remaining)


def _event(line: str) -> LogEvent:
    try:
        event = json.loads(line)
    except ValueError:
        event = None
    return event if isinstance(event, dict) else {"event": "unstructured", "line": line}


def _named(name: str, fields: dict[str, Any]) -> Callable[[LogEvent], bool]:
    return lambda event: event.get("event") == name and all(event.get(k) == v for k, v in fields.items())


def wait_logged(
    servers: Iterable[ServerProcess], name: str, /, count: int = 1, within: float = 10.0, **fields: Any
) -> list[LogEvent]:
    """The events called `name` with these field values that the servers logged, once there are `count`."""
    streams = [server.log for server in servers]
    return wait_for_items(streams, _named(name, fields), count, within, f"{name!r} events with {fields}")


class ServerProcess:
    """Runs `python -m minimess serve --port 0 --log-format json ...` and follows its log.

    With `file_limit`, the process may open that many files at most (soft and hard limit), so
    that it cannot raise it: `prlimit` from util-linux starts it.
    """

    def __init__(self, *args: str, file_limit: int | None = None) -> None:
        self.args = ["--port", "0", "--log-format", "json", *args]
        self.file_limit = file_limit
        self.port = 0
        self.process: subprocess.Popen[str] | None = None
        self.log = FollowedStream(None, _event, _logs_changed)

    def start(self, port: int | None = None) -> ServerProcess:
        """Start the process (on `port`, or any free one) and wait until it listens."""
        args = list(self.args)
        if port is not None:
            args[1] = str(port)
        limit = [] if self.file_limit is None else [_prlimit(), f"--nofile={self.file_limit}", "--"]
        self.process = subprocess.Popen(
            [*limit, sys.executable, "-m", "minimess", "serve", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        # A log of this run's own: a restart waits for its own events, not the previous run's.
        self.log = FollowedStream(self.process.stderr, _event, _logs_changed)
        # A bound for a process start, not a measure of it: importing the server takes some 2 s of
        # CPU, several times that on a loaded 2-core machine.
        # The first: with --workers each worker logs its own, on the same port.
        listening = self.wait_logged("server_listening", within=scaled(PROCESS_START))[0]
        self.port = int(listening["port"])
        return self

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
            return list(filter(_named(name, fields), self.log.items))

    @property
    def events(self) -> list[LogEvent]:
        """Every event of this run so far, for failure messages."""
        with _logs_changed:
            return list(self.log.items)

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


def _prlimit() -> str:
    path = shutil.which("prlimit")
    if path is None:
        raise RuntimeError("prlimit (util-linux) is needed to start a server with a lower file limit")
    return path


def wait_status(server: ServerProcess, path: str, status: int, within: float) -> None:
    """Wait until GET `path` answers `status`; fail after `within` seconds (scaled).

    A poll: nothing tells when an answer changes (/readyz is 503 until Kafka is there, for one).
    """
    url = server.http_url(path)
    if not processes.wait_until(lambda: processes.http_status(url, scaled(5)) == status, scaled(within)):
        raise AssertionError(
            f"{url} did not answer {status} within {scaled(within)} s; last events: {server.events[-10:]}"
        )
