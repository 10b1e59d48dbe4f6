"""scripts/cluster as a user runs it: up (its own Kafka, two servers, HAProxy, Prometheus), status, a client,
down; up again after a server died, restart, and a switch of proxy."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from devtools import kafka
from devtools.processes import HOST, free_ports, http_status, wait_for_exit
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


def require_proxy(proxy: str) -> None:
    try:
        find_executable(proxy)
    except ProxyUnavailable as error:
        proxy_unavailable(str(error))


def up(*args: str) -> subprocess.CompletedProcess[str]:
    """`scripts/cluster up` with every stage's timeout scaled; a Kafka that cannot start here is reported."""
    started = cluster(
        "up", *args, "--timeout", f"{scaled(STAGE_TIMEOUT):g}",
        within=4 * scaled(STAGE_TIMEOUT) + FETCH_ALLOWANCE,
    )  # fmt: skip
    if started.returncode != 0 and "Kafka did not start" in started.stderr:
        kafka_unavailable(started.stderr)
    return started


def pid_of(directory: Path, name: str) -> int:
    return int((directory / f"{name}.pid").read_text())


async def nodes_reached(url: str) -> set[str]:
    """The node ids of two connections held open at once through the proxy: with `balance leastconn`
    the second goes to another server than the first whenever another is in service."""
    async with (
        connect(url, open_timeout=scaled(10)) as first,
        connect(url, open_timeout=scaled(10)) as second,
    ):
        return {str((await next_frame(first))["node"]), str((await next_frame(second))["node"])}


def wait_for_nodes(url: str, expected: set[str]) -> None:
    deadline = time.monotonic() + scaled(30)
    reached: set[str] = set()
    # HAProxy takes a server back once two health checks a second apart pass.
    while (reached := asyncio.run(nodes_reached(url))) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert reached == expected


def test_up_on_a_cluster_with_a_dead_server_starts_only_that_server_on_its_old_port(tmp_path: Path) -> None:
    require_proxy("haproxy")
    port, kafka_port, controller_port = free_ports(3)
    directory = tmp_path / "cluster"
    where = ("--dir", str(directory))
    options = ("--proxy", "haproxy", "--port", str(port), "--servers", "2", "--prometheus-port", "0")
    url = f"ws://{HOST}:{port}{subscribe_path('alice', 'room')}"
    try:
        first = up(
            *options, "--kafka-port", str(kafka_port), "--kafka-controller-port", str(controller_port), *where
        )
        assert first.returncode == 0, first.stderr
        plan = json.loads((directory / "cluster.json").read_text())
        assert plan["kafka"] == f"{HOST}:{kafka_port}"
        assert kafka.Layout(directory / "kafka").configured_port("CONTROLLER") == controller_port
        wait_for_nodes(url, {"s1", "s2"})
        kafka_pid, s1_pid, s2_pid = (
            pid_of(directory / "kafka", "kafka"),
            pid_of(directory, "s1"),
            pid_of(directory, "s2"),
        )

        os.kill(s2_pid, signal.SIGKILL)
        assert wait_for_exit(s2_pid, scaled(10))
        assert cluster("status", *where, within=scaled(30)).returncode == 1

        again = up(*options, *where)

        assert again.returncode == 0, again.stderr
        assert "cluster: s2 not running; starting it again" in again.stderr
        assert "cluster: started s2 again in " in again.stderr
        assert json.loads((directory / "cluster.json").read_text()) == plan
        assert pid_of(directory, "s2") != s2_pid
        # Nothing else was touched: the same Kafka and s1 serve on.
        assert (pid_of(directory / "kafka", "kafka"), pid_of(directory, "s1")) == (kafka_pid, s1_pid)
        assert cluster("status", *where, within=scaled(30)).returncode == 0
        # The proxy's config still names s2's address, so it takes the new process into service.
        wait_for_nodes(url, {"s1", "s2"})

        # Another plan is refused, saying what differs and how to go on.
        other = up("--proxy", "nginx", *where)
        assert other.returncode == 1
        assert "not --proxy nginx (it has haproxy); run `scripts/cluster down` first" in other.stderr

        # `restart` stops and starts a running server.
        restarted = cluster(
            "restart", "s1", *where, "--timeout", f"{scaled(STAGE_TIMEOUT):g}", within=scaled(180)
        )
        assert restarted.returncode == 0, restarted.stderr
        assert pid_of(directory, "s1") != s1_pid
        wait_for_nodes(url, {"s1", "s2"})
    finally:
        cluster("down", *where, within=scaled(120))


def test_switching_proxies_leaves_only_the_current_proxys_files(tmp_path: Path) -> None:
    require_proxy("haproxy")
    require_proxy("nginx")
    directory = tmp_path / "cluster"
    where = ("--dir", str(directory))
    haproxy_files = {"haproxy.cfg", "haproxy.log", "haproxy.pid"}
    try:
        with_haproxy = up(
            "--proxy",
            "haproxy",
            "--port",
            str(free_ports(1)[0]),
            "--servers",
            "1",
            "--prometheus-port",
            "0",
            *where,
        )
        assert with_haproxy.returncode == 0, with_haproxy.stderr
        assert haproxy_files <= {path.name for path in directory.iterdir()}
        assert cluster("down", *where, within=scaled(120)).returncode == 0

        (port,) = free_ports(1)
        with_nginx = up(
            "--proxy", "nginx", "--port", str(port), "--servers", "1", "--prometheus-port", "0", *where
        )

        assert with_nginx.returncode == 0, with_nginx.stderr
        names = {path.name for path in directory.iterdir()}
        assert not names & haproxy_files, names
        assert {"nginx.conf", "nginx-error.log", "nginx.pid"} <= names
        assert (
            asyncio.run(greeting(f"ws://{HOST}:{port}{subscribe_path('alice', 'room')}"))["type"] == "success"
        )
    finally:
        cluster("down", *where, within=scaled(120))
