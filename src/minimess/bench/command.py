"""The `minimess bench` command: its options, and where the table and the JSON go."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from minimess.bench.progress import Progress
from minimess.bench.run import run_bench
from minimess.bench.servers import BenchError
from minimess.bench.settings import BenchSettings


def bench(
    subscribers: Annotated[
        int, typer.Option(min=0, help="Subscriber connections (0: only the publisher).")
    ] = 1000,
    topics: Annotated[int, typer.Option(min=1, help="Topics; subscriber i takes topic i mod TOPICS.")] = 1,
    messages: Annotated[
        int, typer.Option(min=0, help="Messages per round, round-robin over the topics; 0 only connects.")
    ] = 200,
    rate: Annotated[
        float, typer.Option(min=0, help="Messages per second; 0 publishes as fast as acked.")
    ] = 0.0,
    body_bytes: Annotated[int, typer.Option(min=17, max=60000, help="Size of each message body.")] = 64,
    window: Annotated[int, typer.Option(min=1, help="Publishes in flight at most.")] = 64,
    workers: Annotated[
        int, typer.Option(min=1, help="Subscriber processes (default: one per CPU).")
    ] = os.cpu_count() or 2,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds per server; the table shows medians.")] = 3,
    broker: Annotated[
        str, typer.Option(help="memory: start one server; kafka: start two on --kafka-bootstrap.")
    ] = "memory",
    target: Annotated[
        str | None,
        typer.Option(help="Measure a running server or proxy at this ws:// URL instead of starting one."),
    ] = None,
    metrics: Annotated[
        list[str] | None,
        typer.Option(
            "--metrics",
            "--stats",
            help="With --target: the /metrics URL of each server behind it (default: the target's)."
            " --stats is its old name.",
        ),
    ] = None,
    metrics_token: Annotated[
        str | None,
        typer.Option(
            "--metrics-token",
            "--stats-token",
            envvar="MINIMESS_ADMIN_TOKEN",
            help="With --target: the servers' --admin-token, sent to /metrics as a Bearer token."
            " --stats-token is its old name.",
            show_default=False,
        ),
    ] = None,
    kafka_bootstrap: Annotated[str, typer.Option(help="Kafka for --broker kafka.")] = "localhost:9092",
    kafka_topic: Annotated[str, typer.Option(help="Kafka topic for --broker kafka.")] = "minimess.bench",
    baseline: Annotated[
        str,
        typer.Option(
            help="The bare websockets server run in the same rounds, for ratios: broadcast, queued"
            " (a writer task per connection, woken for each message) or none."
        ),
    ] = "broadcast",
    trace: Annotated[
        bool, typer.Option(help="Start servers with --trace and report where the time goes, stage by stage.")
    ] = False,
    drain_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for answers and deliveries after publishing.")
    ] = 30.0,
    never_reading: Annotated[
        int,
        typer.Option(
            min=0,
            help="Connections that subscribe to the first topic and never read, opened again"
            " whenever the server drops them, for the whole publishing phase.",
        ),
    ] = 0,
    json_path: Annotated[
        str | None, typer.Option("--json", help="Also write every figure as JSON to this file ('-': stdout).")
    ] = None,
    log_dir: Annotated[
        Path | None, typer.Option(help="Where started servers log (default: a temporary folder).")
    ] = None,
) -> None:
    """Measure fan-out throughput, latency, CPU and memory per connection, against a bare baseline."""
    try:
        settings = BenchSettings(
            subscribers=subscribers,
            topics=topics,
            messages=messages,
            rate=rate,
            body_bytes=body_bytes,
            window=window,
            workers=workers,
            rounds=rounds,
            broker=broker,
            target=target,
            metrics_urls=tuple(metrics or ()),
            metrics_token=metrics_token,
            kafka_bootstrap=kafka_bootstrap,
            kafka_topic=kafka_topic,
            baseline=baseline,
            trace=trace,
            drain_timeout=drain_timeout,
            never_reading=never_reading,
        )
    except ValueError as error:
        typer.echo(f"minimess bench: {error}", err=True)
        raise typer.Exit(2) from None
    with tempfile.TemporaryDirectory(prefix="minimess-bench-") as temporary:
        folder = log_dir or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            result = run_bench(settings, Progress(), folder)
        except BenchError as error:
            typer.echo(f"\nminimess bench: {error}", err=True)
            raise typer.Exit(1) from None
    # With the JSON on stdout, the table goes to stderr so that stdout stays one document.
    typer.echo(result.table(), err=json_path == "-")
    if json_path == "-":
        json.dump(result.document(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif json_path is not None:
        Path(json_path).write_text(json.dumps(result.document(), indent=2) + "\n")
