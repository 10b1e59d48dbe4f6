"""A real Prometheus scraping a real server: the published count over its query API, and every dashboard
panel's expression evaluated by it."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools import prometheus
from devtools.processes import http_status
from tests.integration.prometheus_process import FIRST_SCRAPE_TIMEOUT, PrometheusProcess, executable
from tests.integration.server_process import ServerProcess
from tests.integration.wire import http_get, next_frame, open_client, publish, send_frame, unique
from tests.timeouts import scaled

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "minimess.json"
# What Grafana puts in place of each template variable when "All" is chosen.
ALL = {"$job": ".+", "$instance": ".+"}
# Series the memory broker never has: Kafka's lag. Their panels' expressions must still evaluate.
KAFKA_ONLY = ("minimess_kafka_consumer_lag",)


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, PrometheusProcess]]:
    """One server on the memory broker, node s1, and a Prometheus scraping it every second."""
    server = ServerProcess("--tick", "0", "--node-id", "s1").start()
    scraper = PrometheusProcess(tmp_path_factory.mktemp("prometheus"), {"s1": f"127.0.0.1:{server.port}"})
    try:
        scraper.start()
        yield server, scraper
    finally:
        scraper.stop()
        server.stop()


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, expression) of every query of every panel, with the template variables as "All"."""
    document = json.loads(DASHBOARD.read_text())
    found = []
    for panel in document["panels"]:
        for target in panel["targets"]:
            expression = str(target["expr"])
            for variable, value in ALL.items():
                expression = expression.replace(variable, value)
            # A variable added to the dashboard but not here would reach Prometheus as a syntax error.
            assert "$" not in expression, (panel["title"], expression)
            found.append((str(panel["title"]), expression))
    return found


async def test_a_query_over_the_api_returns_the_number_of_acked_publishes(
    scraped: tuple[ServerProcess, PrometheusProcess],
) -> None:
    server, scraper = scraped
    # Scraped before any publish: the count below comes from a later scrape, not the first one.
    up = await asyncio.to_thread(
        scraper.wait_for, 'up{job="minimess"}', _one_value(1), FIRST_SCRAPE_TIMEOUT, "s1 scraped and up"
    )
    assert up[0]["metric"]["instance"] == "s1", up
    topic = unique("counted")
    connection = await open_client(server, unique("publisher"))
    published = 7
    try:
        for n in range(published):
            await publish(connection, topic, f"message {n}", ref=f"r{n}")
    finally:
        await connection.close()

    result = await asyncio.to_thread(
        scraper.wait_for,
        'sum(minimess_messages_published_total{result="ack"})',
        _one_value(published),
        FIRST_SCRAPE_TIMEOUT,
        f"{published} acked publishes",
    )

    assert float(result[0]["value"][1]) == published
    by_instance = scraper.query('minimess_messages_published_total{result="ack"}')["data"]["result"]
    assert [series["metric"]["instance"] for series in by_instance] == ["s1"]


async def test_every_dashboard_panel_query_evaluates_to_series_after_traffic(
    scraped: tuple[ServerProcess, PrometheusProcess],
) -> None:
    server, scraper = scraped
    topic = unique("watched")
    subscriber = await open_client(server, unique("subscriber"), topic)
    publisher = await open_client(server, unique("publisher"))
    try:
        await publish(publisher, topic, "seen on the dashboard", ref="r1")
        assert (await next_frame(subscriber, "message"))["body"] == "seen on the dashboard"
        # An error frame, for the panel of error frames by code.
        await send_frame(publisher, type="nonsense")
        assert (await next_frame(publisher, "error"))["code"] == "unknown_type"
    finally:
        await publisher.close()
        await subscriber.close()

    for title, expression in dashboard_expressions():
        if any(name in expression for name in KAFKA_ONLY):
            answer = scraper.query(expression)
            assert answer["status"] == "success", (title, expression, answer)
            continue
        await asyncio.to_thread(scraper.wait_for, expression, bool, FIRST_SCRAPE_TIMEOUT, f"panel {title!r}")


async def test_every_metric_the_dashboard_names_is_one_the_server_serves(
    scraped: tuple[ServerProcess, PrometheusProcess],
) -> None:
    server, _ = scraped
    status, text = await http_get(server, "/metrics")
    assert status == 200, text
    # Every family, those without a sample yet (Kafka's lag on the memory broker) too.
    families = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    served = {
        name + suffix
        for name, kind in families.items()
        for suffix in (("_bucket", "_sum", "_count") if kind == "histogram" else ("",))
    }
    named = {
        name
        for _, expression in dashboard_expressions()
        for name in re.findall(r"\b((?:minimess|process)_[a-z_]+)\b", expression)
    }

    assert named - served == set()
    assert "minimess_kafka_consumer_lag" in served


def test_prometheus_scrapes_a_server_that_guards_metrics_with_the_admin_token(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    server = start_server("--tick", "0", "--admin-token", "admin-secret-1234")
    # Not readable without the token, so a scrape that is up shows the token was sent.
    assert http_status(server.http_url("/metrics")) == 401
    scraper = PrometheusProcess(tmp_path, {"s1": f"127.0.0.1:{server.port}"}, token="admin-secret-1234")
    try:
        scraper.start()

        scraper.wait_for('up{job="minimess"}', _one_value(1), FIRST_SCRAPE_TIMEOUT, "s1 scraped and up")
    finally:
        scraper.stop()


def test_the_configs_prometheus_is_given_are_valid(tmp_path: Path) -> None:
    local = tmp_path / "prometheus.yml"
    local.write_text(prometheus.render({"s1": "127.0.0.1:9001", "s2": "127.0.0.1:9002"}))
    # Debian's package installs promtool beside prometheus.
    promtool = str(Path(executable()).with_name("promtool"))

    for config in (local, REPO / "deploy" / "prometheus.yml"):
        check = subprocess.run(
            [promtool, "check", "config", str(config)],
            capture_output=True,
            text=True,
            timeout=scaled(30),
            check=False,
        )
        assert check.returncode == 0, (config, check.stdout, check.stderr)


def test_prometheus_stops_cleanly_and_wrote_only_into_its_folder(tmp_path: Path) -> None:
    scraper = PrometheusProcess(tmp_path / "prometheus", {"s1": "127.0.0.1:9"}).start()

    assert scraper.stop() == 0
    assert sorted(path.name for path in scraper.dir.iterdir()) == ["data", "prometheus.log", "prometheus.yml"]
    # Its storage went where the command line said, not to the package's /var/lib/prometheus.
    assert (scraper.data / "wal").is_dir()


def _one_value(expected: float) -> Any:
    return lambda result: len(result) == 1 and float(result[0]["value"][1]) == expected
