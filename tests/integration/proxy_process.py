"""A real HAProxy or nginx in front of local servers for integration tests, from deploy/'s templates."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pytest

from tests.timeouts import scaled

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROXIES = ("haproxy", "nginx")
# Debian installs both in sbin, which is not on an ordinary user's PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
HOST = "127.0.0.1"
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
        return self.dir / ("haproxy.cfg" if self.kind == "haproxy" else "nginx.conf")

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
        self.port = free_port()
        self.config.write_text(self._render())
        if self.kind == "haproxy":
            # -db: stay in the foreground, so that this Popen is the proxy and its log comes here.
            command = [executable, "-f", str(self.config), "-db"]
        else:
            # The template says `daemon off;`; -e keeps nginx from opening /var/log before the config.
            (self.dir / "nginx-tmp").mkdir(exist_ok=True)
            command = [
                executable,
                "-c",
                str(self.config),
                "-p",
                str(self.dir),
                "-e",
                str(self.dir / "nginx.err"),
            ]
        with self.output.open("wb") as output:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
            )
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
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=scaled(10))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the proxy's output and of nginx's error log, for failure messages."""
        tails = []
        for path in (self.output, self.dir / "nginx-error.log", self.dir / "nginx.err"):
            if path.exists():
                tails.append(
                    f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                )
        return "\n".join(tails)

    def _render(self) -> str:
        if self.kind == "haproxy":
            template = DEPLOY / "haproxy-local.cfg.in"
            servers = [f"    server s{n} {HOST}:{port}" for n, port in enumerate(self.server_ports, 1)]
        else:
            template = DEPLOY / "nginx-local.conf.in"
            servers = [
                f"        server {HOST}:{port} max_fails=1 fail_timeout=2s;" for port in self.server_ports
            ]
        text = (
            template.read_text()
            .replace("@DIR@", str(self.dir))
            .replace("@HOST@", HOST)
            .replace("@PORT@", str(self.port))
            .replace("@SERVERS@", "\n".join(servers))
        )
        # A placeholder added to the template but not here would reach the proxy as a puzzling error.
        settings = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
        if left := sorted({found for line in settings for found in re.findall(r"@[A-Z_]+@", line)}):
            raise RuntimeError(f"{template} has placeholders this harness does not fill: {left}")
        return text

    def _wait_healthy(self, within: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + within
        last = "no answer yet"
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} exited with {self.process.returncode} at start:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.http_url("/healthz"), timeout=scaled(2)) as response:
                    if response.status == 200:
                        return
                    last = f"HTTP {response.status}"
            except urllib.error.HTTPError as error:
                last = f"HTTP {error.code}"
            except OSError as error:
                last = str(error)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.kind} did not answer /healthz with 200 within {within} s ({last}):\n"
                    + self.log_tail()
                )
            time.sleep(0.05)  # a poll interval, not a synchronisation


def find_executable(kind: str) -> str:
    """The path of the `kind` proxy's program; ProxyUnavailable when it is not installed."""
    executable = shutil.which(kind, path=SEARCH_PATH)
    if executable is None:
        raise ProxyUnavailable(f"{kind} is not installed (looked in {SEARCH_PATH})")
    return executable


def free_port() -> int:
    """A TCP port free on HOST right now (the proxy binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def proxies_required() -> bool:
    """Whether a proxy that cannot run fails the run (CI) instead of skipping the proxy tests."""
    return os.environ.get("MINIMESS_REQUIRE_PROXIES", "") == "1"


def proxy_unavailable(reason: str) -> NoReturn:
    """Fail (MINIMESS_REQUIRE_PROXIES=1) or skip the test that needs the proxy, with the reason."""
    if proxies_required():
        pytest.fail(f"the proxy is required (MINIMESS_REQUIRE_PROXIES=1) but cannot run: {reason}")
    pytest.skip(f"the proxy cannot run here (set MINIMESS_REQUIRE_PROXIES=1 to fail instead): {reason}")
