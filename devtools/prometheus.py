"""A local Prometheus: its config rendered from deploy/prometheus-local.yml.in, and how to run it on it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from devtools import templates

# Short, for a development cluster: what a client does shows on a graph within seconds.
SCRAPE_INTERVAL = "5s"
# Debian's package, found as HAProxy and nginx are (devtools.processes.find_executable).
EXECUTABLE = "prometheus"
INSTALL_HINT = "Debian, Ubuntu: sudo apt-get install prometheus"
# Answers 200 once the config is loaded and the storage is open, 503 before.
READY_PATH = "/-/ready"


def template() -> Path:
    return templates.DEPLOY / "prometheus-local.yml.in"


def render(
    servers: Mapping[str, str], scrape_interval: str = SCRAPE_INTERVAL, token_file: Path | None = None
) -> str:
    """The config scraping servers (node id -> host:port) every scrape_interval, each one instance named
    by its node id; with token_file, a Bearer token read from it on every scrape (the servers' admin
    token)."""
    targets = [
        f'      - targets: ["{address}"]\n        labels: {{__node_id__: "{name}"}}'
        for name, address in servers.items()
    ]
    authorization = (
        "" if token_file is None else f'    authorization:\n      credentials_file: "{token_file}"'
    )
    values = {
        "SCRAPE_INTERVAL": scrape_interval,
        "AUTHORIZATION": authorization,
        "SERVERS": "\n".join(targets),
    }
    return templates.fill(template(), values)


def command(executable: str, config: Path, data: Path, listen: str) -> list[str]:
    """The command line that runs Prometheus in the foreground on config, storing into data only, its
    web UI and API on listen (host:port) rather than on its default *:9090."""
    return [
        executable,
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address={listen}",
    ]
