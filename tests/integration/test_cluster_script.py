"""scripts/cluster as a user runs it: up (its own Kafka, two servers, HAProxy, Prometheus), status, a client,
down."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from devtools.processes import HOST, free_ports, http_status
from tests.integration.kafka_process import FETCH_ALLOWANCE, START_TIMEOUT, kafka_unavailable
from tests.integration.prometheus_process import FIRST_SCRAPE_TIMEOUT, PrometheusApi, executable
from tests.integration.proxy_process import ProxyUnavailable, find_executable, proxy_unavailable
from tests.integration.wire import next_frame, subscribe_path
from tests.timeouts import scaled

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cluster"
# Each stage of `up` (Kafka, the servers, the proxy) may take this long.
STAGE_TIMEOUT = START_TIMEOUT


def cluster(*args: str, within: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=within,
        check=False,
    )


async def greeting(url: str) -> dict[str, object]:
    async with connect(url, open_timeout=scaled(10)) as connection:
        return await next_frame(connection)


def test_a_cluster_serves_clients_through_its_proxy_from_up_until_down(tmp_path: Path) -> None:
    try:
        find_executable("haproxy")
    except ProxyUnavailable as error:
        proxy_unavailable(str(error))
    executable()  # the cluster goes on without Prometheus, but this test needs it
    port, prometheus_port = free_ports(2)
    where = ("--dir", str(tmp_path / "cluster"))
    try:
        up = cluster(
            "up", "--proxy", "haproxy", "--port", str(port), "--servers", "2", *where,
            "--prometheus-port", str(prometheus_port),
            "--timeout", f"{scaled(STAGE_TIMEOUT):g}",
            within=3 * scaled(STAGE_TIMEOUT) + FETCH_ALLOWANCE,
        )  # fmt: skip
        if up.returncode != 0 and "Kafka did not start" in up.stderr:
            kafka_unavailable(up.stderr)
        assert up.returncode == 0, up.stderr
        assert cluster("status", *where, within=scaled(30)).returncode == 0

        frame = asyncio.run(greeting(f"ws://{HOST}:{port}{subscribe_path('alice', 'room')}"))
        assert frame["type"] == "success", frame
        assert f"http://{HOST}:{prometheus_port}/" in up.stdout
        # Its Prometheus scrapes both servers, each one instance named by its node id.
        PrometheusApi(f"{HOST}:{prometheus_port}").wait_for(
            'up{job="minimess"} == 1',
            lambda result: sorted(series["metric"]["instance"] for series in result) == ["s1", "s2"],
            FIRST_SCRAPE_TIMEOUT,
            "s1 and s2 scraped and up",
        )

        down = cluster("down", *where, within=scaled(120))
        assert down.returncode == 0, down.stderr
        status = cluster("status", *where, within=scaled(30))
        assert status.returncode == 1, status.stdout
        assert http_status(f"http://{HOST}:{prometheus_port}/-/ready") is None
    finally:
        # Safe to repeat, and a failed assertion above must not leave the cluster running.
        cluster("down", *where, within=scaled(120))
