"""What `scripts/cluster up` started (cluster.json) and how a later `up`'s options differ from it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """What `up` starts, kept in cluster.json so that status and down find every piece."""

    proxy: str
    public: str  # host:port
    kafka: str  # bootstrap host:port
    servers: dict[str, str]  # node id -> host:port
    # Its web UI and API, host:port; "" when it was not started (not installed). A default, so that
    # the cluster.json of a cluster started before Prometheus was part of it still reads.
    prometheus: str = ""


def port_of(address: str) -> int | None:
    """The port of host:port; None for "" (not started)."""
    return int(address.rpartition(":")[2]) if address else None


def differences(plan: Plan, args: argparse.Namespace, kafka_controller_port: int | None) -> list[str]:
    """Each option of `up` asking for other than the plan has, as `--proxy nginx (it has haproxy)`.

    An option not given asks for nothing, and 0 (any free port) is met by whatever port runs.
    """
    checks: list[tuple[str, object, object]] = [
        ("--proxy", args.proxy, plan.proxy),
        ("--port", args.port, port_of(plan.public)),
        ("--servers", args.servers, len(plan.servers)),
        ("--prometheus-port", args.prometheus_port or None, port_of(plan.prometheus)),
        ("--kafka-port", args.kafka_port or None, port_of(plan.kafka)),
        ("--kafka-controller-port", args.kafka_controller_port or None, kafka_controller_port),
    ]
    return [
        f"{option} {asked} (it has {'none' if running is None else running})"
        for option, asked, running in checks
        if asked is not None and asked != running
    ]
