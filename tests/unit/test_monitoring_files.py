"""compose.yaml's Prometheus and Grafana and the dashboard, checked by reading them (no Docker engine here):
every file mounted exists, and the names one file gives another agree."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "minimess.json"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def compose() -> dict[str, Any]:
    document = yaml.safe_load((REPO / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def mounts(service: str) -> dict[str, Path]:
    """The service's bind mounts: where in the container -> the file or folder of the repository."""
    found = {}
    for volume in compose()["services"][service].get("volumes", []):
        source, target, *_ = volume.split(":")
        found[target] = REPO / source
    return found


def mounted(service: str, path: str) -> Path:
    """The repository file that the service sees at `path`, through a mount of it or of a folder above."""
    for target, source in mounts(service).items():
        if PurePosixPath(path).is_relative_to(target):
            return source / PurePosixPath(path).relative_to(target)
    raise AssertionError(f"{service} mounts nothing at {path}: {mounts(service)}")


def dashboard() -> dict[str, Any]:
    document = json.loads(DASHBOARD.read_text())
    assert isinstance(document, dict)
    return document


def expressions() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


def test_every_file_compose_mounts_exists() -> None:
    services = compose()["services"]
    for name in services:
        for target, source in mounts(name).items():
            assert source.exists(), f"{name} mounts {source} at {target}, which does not exist"


def test_prometheus_in_compose_scrapes_every_minimess_server_as_an_instance_named_by_its_node_id() -> None:
    services = compose()["services"]
    servers = {}
    for name, service in services.items():
        command = service.get("command", [])
        if command[:1] == ["serve"]:
            servers[name] = (command[command.index("--node-id") + 1], command[command.index("--port") + 1])
    assert servers, "no minimess server in compose.yaml"
    config = yaml.safe_load(mounted("prometheus", "/etc/prometheus/prometheus.yml").read_text())
    (job,) = config["scrape_configs"]

    scraped = {group["targets"][0]: group["labels"]["__node_id__"] for group in job["static_configs"]}
    assert scraped == {f"{name}:{port}": node for name, (node, port) in servers.items()}
    assert job["metrics_path"] == "/metrics"
    assert {"source_labels": ["__node_id__"], "regex": "(.+)", "target_label": "instance"} in job[
        "relabel_configs"
    ]


def test_grafana_in_compose_is_provisioned_with_the_prometheus_service_and_the_dashboard() -> None:
    services = compose()["services"]
    provisioning = "/etc/grafana/provisioning"
    datasources = yaml.safe_load(mounted("grafana", f"{provisioning}/datasources/prometheus.yml").read_text())
    providers = yaml.safe_load(mounted("grafana", f"{provisioning}/dashboards/minimess.yml").read_text())

    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    assert "9090:9090" in services["prometheus"]["ports"]
    (provider,) = providers["providers"]
    assert mounted("grafana", f"{provider['options']['path']}/minimess.json") == DASHBOARD
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert mounted("grafana", home) == DASHBOARD


def test_the_dashboard_asks_for_its_data_source_and_every_query_uses_it() -> None:
    document = dashboard()
    variables = {variable["name"]: variable for variable in document["templating"]["list"]}

    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]
    for panel in document["panels"]:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            # Every query filters by the job and instances chosen at the top of the dashboard.
            assert 'job=~"$job", instance=~"$instance"' in target["expr"], panel["title"]


def test_the_dashboard_panels_do_not_overlap_and_have_distinct_ids() -> None:
    panels = dashboard()["panels"]
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        place = panel["gridPos"]
        assert place["x"] + place["w"] <= 24, panel["title"]
        for x in range(place["x"], place["x"] + place["w"]):
            for y in range(place["y"], place["y"] + place["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
    assert len({panel["id"] for panel in panels}) == len(panels)


@pytest.mark.parametrize(
    "expression",
    [
        "sum by (instance) (minimess_connections{",
        "sum by (result) (rate(minimess_messages_published_total{",
        "sum by (instance) (rate(minimess_deliveries_total{",
        "histogram_quantile(0.5, sum by (instance, le) (rate(minimess_publish_seconds_bucket{",
        "histogram_quantile(0.99, sum by (instance, le) (rate(minimess_publish_seconds_bucket{",
        "histogram_quantile(0.5, sum by (instance, le) (rate(minimess_fanout_seconds_bucket{",
        "histogram_quantile(0.99, sum by (instance, le) (rate(minimess_fanout_seconds_bucket{",
        "sum by (instance) (increase(minimess_slow_consumer_closes_total{",
        "sum by (code) (rate(minimess_error_frames_total{",
        "sum by (instance, partition) (minimess_kafka_consumer_lag{",
        "max by (instance) (minimess_broker_ready{",
        "rate(process_cpu_seconds_total{",
        "process_resident_memory_bytes{",
    ],
)
def test_the_dashboard_shows(expression: str) -> None:
    assert any(query.startswith(expression) for query in expressions()), expression
