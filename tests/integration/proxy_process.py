"""A real HAProxy or nginx in front of local servers for integration tests, from deploy/'s templates."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pytest

from devtools import processes, templates
from devtools.processes import HOST
from devtools.templates import PROXIES as PROXIES  # test modules name the proxies through here
from tests.timeouts import scaled

# Until the proxy answers GET /healthz with 200: it starts in well under a second.
START_TIMEOUT = 15.0


class ProxyUnavailable(Exception):
    """The proxy is not installed here (one that is installed but fails to start is a failure)."""


class ProxyProcess:
    """One `kind` proxy ("haproxy" or "nginx") owning the folder `directory`, balancing `server_ports`.

    The servers are named s1, s2, ... in the order of their ports (HAProxy shows the names in its
    log). The config, the pid file and every log of the proxy stay in the folder for a post-mortem.
    """

    def __init__(self, kind: str, directory: Path, server_ports: Sequence[int]) -> None:
        if kind not in PROXIES:
            raise ValueError(f"unknown proxy {kind!r}; expected one of {PROXIES}")
        self.kind = kind
        self.dir = directory
        self.server_ports = tuple(server_ports)
        # The public port, picked when the config is rendered.
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.dir / templates.config_name(self.kind)

    @property
    def output(self) -> Path:
        """What the process writes to stdout and stderr (HAProxy's log goes there too)."""
        return self.dir / f"{self.kind}.out"

    def url(self, path: str = "") -> str:
        return f"ws://{HOST}:{self.port}{path}"

    def http_url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def start(self) -> ProxyProcess:
        """Render the config, start the proxy, and wait until GET /healthz through it answers 200."""
        executable = find_executable(self.kind)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = processes.free_port()
        # Named s1, s2, ... in the order of their ports.
        servers = {f"s{n}": f"{HOST}:{port}" for n, port in enumerate(self.server_ports, 1)}
        self.config.write_text(templates.render(self.kind, self.dir, HOST, self.port, servers))
        command = templates.prepare(self.kind, executable, self.config, self.dir, self.dir / "nginx.err")
        self.process = processes.launch(command, self.output)
        try:
            self._wait_healthy(scaled(START_TIMEOUT))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM (a fast stop for both), then SIGKILL if it lingers; safe to call twice."""
        if self.process is None or self.process.poll() is not None:
            return
        processes.terminate([self.process.pid], scaled(10))
        self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the proxy's output and of nginx's error log, for failure messages."""
        paths = (self.output, self.dir / "nginx-error.log", self.dir / "nginx.err")
        return "\n".join(
            f"--- {path.name}\n{processes.last_lines(path, lines)}" for path in paths if path.exists()
        )

    def _wait_healthy(self, within: float) -> None:
        process = self.process
        assert process is not None
        url = self.http_url("/healthz")

        def settled() -> bool:
            return processes.http_status(url, scaled(2)) == 200 or process.poll() is not None

        if not processes.wait_until(settled, within, interval=0.05):
            status = processes.http_status(url, scaled(2)) or "no answer"
            raise RuntimeError(
                f"{self.kind} did not answer /healthz with 200 within {within} s ({status}):\n"
                + self.log_tail()
            )
        # Set only when it exited before answering: `or` polls only while /healthz is not 200.
        if process.returncode is not None:
            raise RuntimeError(f"{self.kind} exited with {process.returncode} at start:\n{self.log_tail()}")


def find_executable(kind: str) -> str:
    """The path of the `kind` proxy's program; ProxyUnavailable when it is not installed."""
    executable = processes.find_executable(kind)
    if executable is None:
        raise ProxyUnavailable(f"{kind} is not installed (looked in {processes.search_path()})")
    return executable


def proxies_required() -> bool:
    """Whether a proxy that cannot run fails the run (CI) instead of skipping the proxy tests."""
    return os.environ.get("MINIMESS_REQUIRE_PROXIES", "") == "1"


def proxy_unavailable(reason: str) -> NoReturn:
    """Fail (MINIMESS_REQUIRE_PROXIES=1) or skip the test that needs the proxy, with the reason."""
    if proxies_required():
        pytest.fail(f"the proxy is required (MINIMESS_REQUIRE_PROXIES=1) but cannot run: {reason}")
    pytest.skip(f"the proxy cannot run here (set MINIMESS_REQUIRE_PROXIES=1 to fail instead): {reason}")
