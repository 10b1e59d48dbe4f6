"""A real Prometheus (Debian's package) scraping local servers for integration tests, and its query API."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from devtools import processes, prometheus
from devtools.processes import HOST
from tests.timeouts import scaled

# Until /-/ready answers 200: well under a second here.
START_TIMEOUT = 15.0
# Prometheus closes its storage on SIGTERM.
STOP_TIMEOUT = 15.0
# New targets reach the scrape loops at most every 5 s (its discovery manager's update interval),
# then the first scrapes follow within one interval.
FIRST_SCRAPE_TIMEOUT = 20.0


def executable() -> str:
    """Prometheus's path; a failure, never a skip, when it is missing (scripts/test installs it)."""
    path = processes.find_executable(prometheus.EXECUTABLE)
    if path is None:
        pytest.fail(f"prometheus not found: install it ({prometheus.INSTALL_HINT}); scripts/test does")
    return path


class PrometheusApi:
    """The HTTP API of a Prometheus on `address` (host:port)."""

    def __init__(self, address: str) -> None:
        self.address = address

    def api(self, path: str, **parameters: str) -> dict[str, Any]:
        """GET /api/v1/<path> with these query parameters: the JSON answer, an error one (400, 422) too."""
        url = f"http://{self.address}/api/v1/{path}?{urllib.parse.urlencode(parameters)}"
        try:
            with urllib.request.urlopen(url, timeout=scaled(10)) as response:
                document = json.load(response)
        except urllib.error.HTTPError as error:
            document = json.load(error)
        assert isinstance(document, dict), document
        return document

    def query(self, expression: str) -> dict[str, Any]:
        """The answer of an instant query: {"status": "success", "data": {...}} or an error."""
        return self.api("query", query=expression)

    def wait_for(
        self, expression: str, holds: Callable[[list[dict[str, Any]]], bool], within: float, what: str
    ) -> list[dict[str, Any]]:
        """The result of the instant query `expression`, once `holds` is true of it; asked every 0.1 s,
        as Prometheus tells no one when a scrape lands. Fails after `within` seconds (scaled)."""
        answers: list[dict[str, Any]] = []

        def answered() -> bool:
            answer = self.query(expression)
            answers.append(answer)
            assert answer["status"] == "success", f"{expression}: {answer}"
            return holds(answer["data"]["result"])

        if not processes.wait_until(answered, scaled(within), interval=0.1):
            targets = self.api("targets")["data"]["activeTargets"]
            scraped = [(t["labels"], t["health"], t["lastError"]) for t in targets]
            raise AssertionError(
                f"{what}: not within {scaled(within)} s; last answer to {expression}: {answers[-1]}; "
                f"targets: {scraped}"
            )
        return list(answers[-1]["data"]["result"])


class PrometheusProcess(PrometheusApi):
    """Prometheus owning the folder `directory`, scraping `servers` (node id -> host:port) every
    `scrape_interval`, with `token` when given (the servers' --admin-token), its config rendered from
    deploy/prometheus-local.yml.in as scripts/cluster renders it. It writes only into the folder, and
    listens on a free port of HOST only.
    """

    def __init__(
        self,
        directory: Path,
        servers: Mapping[str, str],
        scrape_interval: str = "1s",
        token: str | None = None,
    ) -> None:
        self.dir = directory
        self.servers = dict(servers)
        self.scrape_interval = scrape_interval
        self.token = token
        super().__init__("")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.dir / "prometheus.yml"

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def output(self) -> Path:
        return self.dir / "prometheus.log"

    def start(self) -> PrometheusProcess:
        """Render the config, start Prometheus, and wait until it answers /-/ready with 200."""
        binary = executable()
        self.dir.mkdir(parents=True, exist_ok=True)
        token_file = None
        if self.token is not None:
            token_file = self.dir / "token"
            token_file.write_text(self.token)
        config = prometheus.render(self.servers, scrape_interval=self.scrape_interval, token_file=token_file)
        self.config.write_text(config)
        self.address = f"{HOST}:{processes.free_port()}"
        command = prometheus.command(binary, self.config, self.data, self.address)
        # Its working directory is the folder too: nothing it might write relative to it lands elsewhere.
        self.process = processes.launch(command, self.output, cwd=self.dir)
        ready = f"http://{self.address}{prometheus.READY_PATH}"

        def started() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"prometheus exited with {self.process.returncode} while starting:\n"
                    f"{processes.last_lines(self.output)}"
                )
            return processes.http_status(ready) == 200

        if not processes.wait_until(started, scaled(START_TIMEOUT), interval=0.05):
            raise AssertionError(
                f"prometheus did not answer {ready} with 200 within {scaled(START_TIMEOUT)} s:\n"
                f"{processes.last_lines(self.output)}"
            )
        return self

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; its exit status. Safe to call twice."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            processes.terminate([self.process.pid], scaled(STOP_TIMEOUT))
        return self.process.wait()
