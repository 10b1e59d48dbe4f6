"""A benchmark run: rounds against the baseline and minimess, alternating, and what they measured."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import statistics
import threading
import time
from array import array
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import attrs

from minimess.bench import report
from minimess.bench.never_reading import NeverReading
from minimess.bench.progress import Progress
from minimess.bench.publisher import PublishPlan, PublishReport, publish_all
from minimess.bench.scrape import SLOW_CONSUMER_CLOSES, ScrapeError, scrape
from minimess.bench.servers import (
    BenchError,
    Sample,
    Servers,
    metrics_url_of,
    started_baseline,
    started_kafka_baseline,
    started_minimess,
    targeted,
)
from minimess.bench.settings import BenchSettings
from minimess.bench.workers import CONNECTED, RECEIVED, ConnectReport, DeliveryReport, WorkerPlan, run_worker

# After the last ack, deliveries that stop arriving for this long are not coming. Not shorter: on
# a loaded machine the subscriber processes of a flood were seen to pause for over 3 s and then
# receive the rest, and a round ended early counts too few deliveries (and too much CPU per one).
QUIET_PERIOD = 15.0
POLL_INTERVAL = 0.1
NEVER_READING_TIMEOUT = 60.0


@attrs.frozen
class BenchResult:
    """Every round of every server, and the figures drawn from them."""

    settings: BenchSettings
    names: dict[str, str]
    rounds: dict[str, list[report.RoundResult]]

    @property
    def medians(self) -> dict[str, dict[str, float | None]]:
        return {key: report.medians(rounds) for key, rounds in self.rounds.items()}

    @property
    def ratio(self) -> dict[str, float | None] | None:
        if "baseline" not in self.rounds:
            return None
        return report.ratios(self.medians["minimess"], self.medians["baseline"])

    @property
    def stages(self) -> list[dict[str, Any]]:
        return report.stage_breakdown(self.rounds["minimess"])

    def table(self) -> str:
        settings = self.settings
        load = "flood" if settings.rate == 0 else f"{settings.rate:g} msg/s"
        # --batch: minimess's clients read batched frames, a bare baseline's one document a frame.
        clients = ", clients of minimess.batch" if settings.batch else ""
        title = (
            f"{settings.subscribers:,} subscribers on {settings.topics:,} topic(s),"
            f" {settings.messages:,} messages ({load}){clients}, median of {settings.rounds} round(s)"
        )
        columns = {self.names[key]: summary for key, summary in self.medians.items()}
        # A server that had connections before cannot say what new ones take (Servers.fresh).
        unmeasurable = {"rss_kib_per_connection"} if settings.target is not None else set()
        text = report.render_table(title, columns, self.ratio, unmeasurable)
        servers = settings.minimess_servers
        if servers > 1 and settings.subscribers < servers * settings.topics:
            # The servers then hold different topics, so the others' mean is not what the
            # publishing server pays to consume, and the difference is not its publishing alone.
            text += (
                f"\nnote: publishing (1 - rest) takes every server to consume alike, which needs"
                f" subscribers >= servers x topics ({servers} x {settings.topics} ="
                f" {servers * settings.topics}); this run has {settings.subscribers}"
            )
        if self.stages:
            text += "\n\n" + report.render_stages(self.stages)
        return text

    def document(self) -> dict[str, Any]:
        """Everything, as JSON-ready data for comparisons between runs."""
        return {
            # A secret (a field kept out of the settings' repr: the admin token) is not written.
            "settings": attrs.asdict(self.settings, filter=lambda field, _value: field.repr is not False),
            "servers": {
                key: {
                    "name": self.names[key],
                    "median": self.medians[key],
                    "rounds": [r.metrics for r in rounds],
                }
                for key, rounds in self.rounds.items()
            },
            "ratio": self.ratio,
            "stages": self.stages,
        }


def run_bench(settings: BenchSettings, progress: Progress, log_dir: Path) -> BenchResult:
    """Run every round, the baseline and minimess in turn, each round on freshly started servers."""
    keys = ["minimess"] if settings.baseline == "none" else ["baseline", "minimess"]
    rounds: dict[str, list[report.RoundResult]] = {key: [] for key in keys}
    names: dict[str, str] = {}
    for number in range(1, settings.rounds + 1):
        # Alternate, so that whatever drifts on the machine hits both alike.
        for key in keys:
            with servers_for(key, settings, log_dir) as servers:
                names[key] = servers.name
                progress.phase(f"round {number}/{settings.rounds}, {servers.name}")
                rounds[key].append(_Round(settings, servers, progress).run())
    progress.clear()
    return BenchResult(settings, names, rounds)


@contextlib.contextmanager
def servers_for(key: str, settings: BenchSettings, log_dir: Path) -> Iterator[Servers]:
    # --server-port: the minimess servers' ports first, then the baseline's.
    minimess_ports = settings.server_ports[: settings.minimess_servers]
    baseline_ports = settings.server_ports[settings.minimess_servers :]
    if key == "baseline" and settings.baseline == "kafka":
        with started_kafka_baseline(
            settings.kafka_bootstrap, settings.kafka_topic, log_dir, baseline_ports, settings.kafka_servers
        ) as servers:
            yield servers
    elif key == "baseline":
        with started_baseline(settings.baseline, log_dir, *baseline_ports) as servers:
            yield servers
    elif settings.target is not None:
        with targeted(settings.target, settings.metrics_urls, settings.metrics_token) as servers:
            yield servers
    else:
        with started_minimess(
            settings.broker,
            settings.trace,
            settings.kafka_bootstrap,
            settings.kafka_topic,
            log_dir,
            minimess_ports,
            settings.server_workers,
            kafka_servers=settings.kafka_servers,
        ) as servers:
            yield servers


class _Round:
    """One round against one set of servers: connect, publish, wait for the deliveries, measure."""

    def __init__(self, settings: BenchSettings, servers: Servers, progress: Progress) -> None:
        self._settings = settings
        self._servers = servers
        self._progress = progress

    def run(self) -> report.RoundResult:
        settings, servers = self._settings, self._servers
        plans, expected = self._plans()
        context = multiprocessing.get_context("spawn")
        # Each end of a phase is read with sample_since: a server read through /metrics may answer
        # with a rendering of up to a second ago, which would leave the end of the phase out.
        before = servers.sample_since()
        controls: list[Connection] = []
        counters = []
        processes = []
        for plan in plans:
            parent_end, worker_end = context.Pipe()
            counter = context.Array("q", 2, lock=False)
            process = context.Process(target=run_worker, args=(plan, worker_end, counter), daemon=True)
            process.start()
            controls.append(parent_end)
            counters.append(counter)
            processes.append(process)
        try:
            connects: list[ConnectReport] = self._gather(controls, "connected", counters)
            after_connect = servers.sample_since()
            fresh = servers.is_fresh(before)
            metrics = connect_metrics(connects, before.rss_bytes, after_connect.rss_bytes, fresh)
            # What the publishing phase measured: the publishers' report and the servers' CPU time.
            published: tuple[PublishReport, Sample, Sample] | None = None
            # With no subscriber (--subscribers 0) the publishers alone are measured; with some,
            # there is nothing to measure if none of them could connect.
            if settings.messages and (metrics["connections"] or not settings.subscribers):
                with _Aside(settings, servers) as aside:
                    # No need to wait here: a rendering of before the start only adds a moment of
                    # idling (the servers' use was just read) to the phase.
                    cpu_start = servers.read_sample()
                    publish_report = asyncio.run(self._publish(counters, expected))
                    self._wait_for_deliveries(counters, expected)
                    published = (publish_report, cpu_start, servers.sample_since())
                metrics.update(aside.metrics())
            for control in controls:
                control.send("finish")
            deliveries: list[DeliveryReport] = self._gather(controls, "delivered", counters)
        finally:
            for process in processes:
                process.join(timeout=10)
                if process.is_alive():
                    process.kill()
        result = report.RoundResult(metrics)
        if published is not None:
            publish_report, start, end = published
            cpu = end.cpu_seconds - start.cpu_seconds
            result.metrics.update(_delivery_metrics(deliveries, publish_report, expected, cpu))
            first_publishes = self._settings.target is None
            result.metrics.update(message_metrics(publish_report, start, end, first_publishes))
            result.stages_us = _stages(deliveries, publish_report)
        return result

    def _plans(self) -> tuple[list[WorkerPlan], int]:
        settings = self._settings
        topics = topic_names(settings.topics)
        per_worker = subscriber_urls(self._servers.urls, topics, settings.subscribers, settings.workers)
        plans = [
            WorkerPlan(tuple(urls), settings.connect_concurrency, settings.trace, settings.batch)
            for urls in per_worker
            if urls
        ]
        per_topic = messages_per_topic(settings.messages, settings.topics)
        expected = sum(per_topic[i % settings.topics] for i in range(settings.subscribers))
        return plans, expected

    def _gather(self, controls: list[Connection], kind: str, counters: list[Any]) -> list[Any]:
        """Wait for every worker's `kind` report, showing progress; a dead worker is an error."""
        reports: dict[int, Any] = {}
        while len(reports) < len(controls):
            for index, control in enumerate(controls):
                if index in reports or not control.poll(POLL_INTERVAL / len(controls)):
                    continue
                try:
                    message, payload = control.recv()
                except EOFError:
                    raise BenchError("a load-generator worker died; see its traceback above") from None
                if message != kind:
                    raise BenchError(f"worker sent {message!r}, expected {kind!r}")
                reports[index] = payload
            if kind == "connected":
                connected = sum(counter[CONNECTED] for counter in counters)
                self._progress.update(f"{connected:,}/{self._settings.subscribers:,} connected")
            else:
                self._progress.update("collecting the workers' figures")
        return [reports[index] for index in range(len(controls))]

    async def _publish(self, counters: list[Any], expected: int) -> PublishReport:
        settings = self._settings
        plan = PublishPlan(
            topics=topic_names(settings.topics),
            messages=settings.messages,
            rate=settings.rate,
            body_bytes=settings.body_bytes,
            window=settings.window,
            answer_timeout=settings.drain_timeout,
            batch=settings.batch,
        )
        task = asyncio.create_task(publish_all(self._servers.urls[0], plan, settings.publishers))
        while not task.done():
            received = sum(counter[RECEIVED] for counter in counters)
            self._progress.update(f"publishing, {received:,}/{expected:,} deliveries")
            await asyncio.wait({task}, timeout=POLL_INTERVAL * 2.5)
        return task.result()

    def _wait_for_deliveries(self, counters: list[Any], expected: int) -> None:
        deadline = time.monotonic() + self._settings.drain_timeout
        last, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            received = sum(counter[RECEIVED] for counter in counters)
            self._progress.update(f"draining, {received:,}/{expected:,} deliveries")
            if received >= expected:
                return
            if received != last:
                last, quiet_since = received, time.monotonic()
            elif time.monotonic() - quiet_since > QUIET_PERIOD:
                return
            time.sleep(POLL_INTERVAL)


class _Aside:
    """What runs beside a round's publishing, in a thread of its own: the never-reading
    connections (--never-reading), and the servers' RSS sampled every `sample_interval` for its peak.

    The thread has its own event loop, so that the connections stand, and are opened again when
    dropped, through the publishing and the draining alike.
    """

    def __init__(self, settings: BenchSettings, servers: Servers) -> None:
        self._settings = settings
        self._servers = servers
        self._ready = threading.Event()
        self._finish = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-aside", daemon=True)
        self._error: BaseException | None = None
        self._never_reading: NeverReading | None = None
        self._before = 0
        self._peak = 0
        self._closes_before: int | None = None

    def __enter__(self) -> _Aside:
        self._thread.start()
        if not self._ready.wait(NEVER_READING_TIMEOUT) or self._error is not None:
            self._finish.set()
            raise BenchError(f"the never-reading connections did not open: {self._error!r}")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._finish.set()
        self._thread.join()

    def metrics(self) -> dict[str, float | None]:
        if self._error is not None:
            raise BenchError(f"sampling the servers failed: {self._error!r}")
        metrics: dict[str, float | None] = {
            "rss_peak_mib": self._peak / 2**20,
            "rss_growth_mib": (self._peak - self._before) / 2**20,
        }
        if self._never_reading is not None:
            metrics["never_reading_drops"] = self._never_reading.drops
        closes = _slow_consumer_closes(self._metrics_urls(), self._settings.metrics_token)
        if closes is not None and self._closes_before is not None:
            metrics["server_slow_consumer_closes"] = closes - self._closes_before
        return metrics

    def _metrics_urls(self) -> list[str]:
        if self._settings.target is not None and self._settings.metrics_urls:
            return list(self._settings.metrics_urls)
        return [metrics_url_of(url) for url in self._servers.urls]

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:
            self._error = error
            self._ready.set()

    async def _main(self) -> None:
        stop = asyncio.Event()
        settings = self._settings
        task = None
        if settings.never_reading:
            self._never_reading = NeverReading(
                self._servers.urls[0], topic_names(settings.topics)[0], settings.never_reading
            )
            task = asyncio.create_task(self._never_reading.run(stop))
            async with asyncio.timeout(NEVER_READING_TIMEOUT):
                await self._never_reading.opened.wait()
        try:
            self._closes_before = await asyncio.to_thread(
                _slow_consumer_closes, self._metrics_urls(), settings.metrics_token
            )
            self._before = self._peak = (await asyncio.to_thread(self._servers.read_sample)).rss_bytes
            self._ready.set()
            while not self._finish.is_set():
                sample = await asyncio.to_thread(self._servers.read_sample)
                self._peak = max(self._peak, sample.rss_bytes)
                # In a worker thread: the loop (the never-reading connections) runs meanwhile, and the
                # end of the round is seen at once.
                await asyncio.to_thread(self._finish.wait, self._servers.sample_interval)
        finally:
            stop.set()
            if task is not None:
                await task


def _slow_consumer_closes(metrics_urls: Sequence[str], token: str | None) -> int | None:
    """The servers' slow-consumer closes so far, from their /metrics; None where there is none (baselines)."""
    total = 0
    for url in metrics_urls:
        try:
            closes = scrape(url, token).get(SLOW_CONSUMER_CLOSES)
        except ScrapeError:
            return None
        if closes is None:
            return None
        total += int(closes)
    return total


def topic_names(count: int) -> list[str]:
    return [f"t{number}" for number in range(count)]


def messages_per_topic(messages: int, topics: int) -> list[int]:
    """How many of a round's messages land on each topic, published round-robin."""
    return [messages // topics + (1 if k < messages % topics else 0) for k in range(topics)]


def subscriber_urls(
    servers: Sequence[str], topics: Sequence[str], subscribers: int, workers: int
) -> list[list[str]]:
    """Each worker's subscribe URLs: subscriber i takes topic i mod T and server (i mod T + i div T) mod S.

    Each run of T subscribers is dealt over the servers in turn, so that the servers' shares differ
    by one at most (a server with fewer subscribers would look cheaper per message), and each run
    starts one server further on, so that with S runs every topic has subscribers on every server
    and each message reaches subscribers on every side of the bus.
    """
    per_worker: list[list[str]] = [[] for _ in range(workers)]
    for i in range(subscribers):
        topic = topics[i % len(topics)]
        server = servers[(i % len(topics) + i // len(topics)) % len(servers)]
        per_worker[i % workers].append(f"{server}/subscribe/id:b{i}/topic:{topic}")
    return per_worker


def connect_metrics(
    connects: list[ConnectReport], rss_before: int, rss_after: int, fresh: bool
) -> dict[str, float | None]:
    """What connecting measured; RSS per connection only on servers started for the round (Servers.fresh)."""
    connected = sum(c.connected for c in connects)
    # No subscriber, no worker: nothing connected, over no time.
    window = max(c.finished for c in connects) - min(c.started for c in connects) if connects else 0.0
    return {
        "connections": connected,
        "connect_failures": sum(c.failed for c in connects),
        "connections_per_s": connected / window if connected and window > 0 else None,
        "rss_kib_per_connection": (rss_after - rss_before) / 1024 / connected
        if connected and fresh
        else None,
    }


def _delivery_metrics(
    deliveries: list[DeliveryReport], published: PublishReport, expected: int, cpu_seconds: float
) -> dict[str, float | None]:
    received = sum(d.received for d in deliveries)
    message_frames = sum(d.message_frames for d in deliveries)
    closes: dict[int, int] = {}
    for d in deliveries:
        for code, count in d.close_codes.items():
            closes[code] = closes.get(code, 0) + count
    last = max((d.last_received for d in deliveries), default=0.0)
    elapsed = last - published.started
    return {
        "messages_acked": published.acked,
        "publish_errors": published.errors.total() + published.unanswered,
        "deliveries": received,
        "expected_deliveries": expected,
        "deliveries_per_s": received / elapsed if received and elapsed > 0 else None,
        "cpu_us_per_delivery": cpu_seconds / received * 1e6 if received else None,
        "subscriber_cpu_us_per_delivery": sum(d.cpu_seconds for d in deliveries) / received * 1e6
        if received
        else None,
        "messages_per_frame": received / message_frames if message_frames else None,
        **report.latency_metrics(latency for d in deliveries for latency in d.latencies_us),
        "slow_consumer_closes": closes.pop(4000, 0),
        "other_closes": sum(closes.values()),
    }


def message_metrics(
    published: PublishReport, start: Sample, end: Sample, first_publishes: bool = True
) -> dict[str, float | None]:
    """What the publishing phase cost per message acked: on each server, on all, and the publishing
    server's extra over the others' mean, which is its publishing cost when every server consumes
    and fans out alike (subscribers are spread evenly, subscriber_urls). Without `first_publishes`
    (a target: the proxy chooses the publishers' server) there is no such extra."""
    acked = published.acked
    window = published.finished - published.started
    metrics: dict[str, float | None] = {
        "messages_per_s": acked / window if acked and window > 0 else None,
        "cpu_us_per_message": (end.cpu_seconds - start.cpu_seconds) / acked * 1e6 if acked else None,
    }
    per_server = [
        (after - before) / acked * 1e6 if acked else None
        for before, after in zip(start.cpu_seconds_by_server, end.cpu_seconds_by_server, strict=True)
    ]
    if len(per_server) < 2:
        return metrics
    for number, cost in enumerate(per_server, start=1):
        metrics[f"cpu_us_per_message_server_{number}"] = cost
    first, *others = per_server
    if first_publishes and first is not None and all(cost is not None for cost in others):
        metrics["publishing_us_per_message"] = first - statistics.fmean(c for c in others if c is not None)
    return metrics


def _stages(deliveries: list[DeliveryReport], published: PublishReport) -> dict[str, array[int]]:
    stages: dict[str, array[int]] = {}
    for d in deliveries:
        for stage, values in d.stages_us.items():
            stages.setdefault(stage, array("q")).extend(values)
    if published.accept_us:
        stages["received->accepted"] = published.accept_us
    return stages
