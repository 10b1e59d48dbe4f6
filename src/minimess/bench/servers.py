"""The servers under test: started as child processes or targeted by URL, and their CPU and memory."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import attrs

from minimess.bench.scrape import CONNECTIONS_OPENED, CPU_SECONDS, RSS_BYTES, ScrapeError, scrape

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# How often the peak RSS is sampled during a round: often for servers read through /proc, which
# costs them nothing; once a second for servers read through /metrics, whose every scrape costs
# the server a few milliseconds of CPU that would otherwise show in its CPU per delivery.
PROC_SAMPLE_INTERVAL = 0.1
SCRAPE_SAMPLE_INTERVAL = 1.0
# A server answers /metrics with what it rendered up to --metrics-max-age ago (1 s by default), so
# a sample that must include everything up to a moment (the end of a phase) is read once longer
# than that has passed since: whatever rendering it gets, cached or new, was made after the moment.
# The wait adds an idle second to the phase's CPU time, which is a few milliseconds.
METRICS_MAX_AGE = 1.0
SCRAPE_SETTLE = METRICS_MAX_AGE + 0.1


class BenchError(Exception):
    """A reason the benchmark cannot go on, said in one line."""


@attrs.frozen
class Sample:
    """What the servers under test have used so far, all of them together."""

    cpu_seconds: float
    rss_bytes: int
    # WebSocket connections the servers have accepted since they started, where /metrics says.
    connections_opened: int | None = None
    # Each server's CPU seconds, in the order of `Servers.urls` (or of the /metrics URLs).
    cpu_seconds_by_server: tuple[float, ...] = ()


@attrs.frozen
class Servers:
    """Where the benchmark's clients connect, and how to read the servers' resource use.

    Subscribers are spread over `urls` (run.subscriber_urls); the publishers use the first one, so
    with Kafka servers every message crosses the bus to reach the subscribers of the others.
    """

    name: str
    urls: tuple[str, ...]
    read_sample: Callable[[], Sample]
    # Seconds between samples of the peak RSS.
    sample_interval: float = PROC_SAMPLE_INTERVAL
    # Seconds a sample may lag behind the servers (read through /metrics: a cached rendering).
    settle: float = 0.0
    # Started for this round: what their RSS grows by while the clients connect is the connections'.
    # A server that had connections before reuses memory they freed, so its growth says nothing
    # per connection; a targeted one is fresh only while it has accepted none (see is_fresh).
    fresh: bool = True

    def is_fresh(self, before: Sample) -> bool:
        """Whether RSS growth from `before` on is the new connections' alone (see `fresh`)."""
        return self.fresh or before.connections_opened == 0

    def sample_since(self, sleep: Callable[[float], None] = time.sleep) -> Sample:
        """A sample that includes everything the servers did until this call, waiting first if need be."""
        if self.settle:
            sleep(self.settle)
        return self.read_sample()


@contextlib.contextmanager
def started_baseline(design: str, log_dir: Path, port: int | None = None) -> Iterator[Servers]:
    """One bare websockets server of `design` (minimess.bench.baseline) on `port` (default: a free one)."""
    port = port or _free_port()
    command = [sys.executable, "-m", "minimess.bench.baseline", str(port), design]
    with _running([command], [port], log_dir / "baseline", ready_path=None) as processes:
        yield Servers(f"bare {design}", (f"ws://{HOST}:{port}",), lambda: _proc_sample(processes))


@contextlib.contextmanager
def started_kafka_baseline(
    kafka_bootstrap: str, kafka_topic: str, log_dir: Path, ports: Sequence[int] = (), servers: int = 2
) -> Iterator[Servers]:
    """`servers` bare Kafka servers (minimess.bench.kafka_baseline) on `ports` (default: free ones),
    on a Kafka topic of their own next to minimess's."""
    ports = list(ports) or [_free_port() for _ in range(servers)]
    topic = f"{kafka_topic}.bare"
    commands = [
        [sys.executable, "-m", "minimess.bench.kafka_baseline", str(port), kafka_bootstrap, topic]
        for port in ports
    ]
    # Each listens once it is reading Kafka, so an open port is a ready server.
    with _running(commands, ports, log_dir / "baseline", ready_path=None) as processes:
        urls = tuple(f"ws://{HOST}:{port}" for port in ports)
        yield Servers("bare kafka", urls, lambda: _proc_sample(processes))


@contextlib.contextmanager
def started_minimess(
    broker: str,
    trace: bool,
    kafka_bootstrap: str,
    kafka_topic: str,
    log_dir: Path,
    ports: Sequence[int] = (),
    workers: int = 1,
    kafka_servers: int = 2,
) -> Iterator[Servers]:
    """One `minimess serve` on the memory broker, or `kafka_servers` on Kafka, on `ports` (default:
    free ones), each with `workers` worker processes."""
    count = kafka_servers if broker == "kafka" else 1
    ports = list(ports) or [_free_port() for _ in range(count)]
    commands = []
    for number, port in enumerate(ports, start=1):
        command = [
            sys.executable,
            "-m",
            "minimess",
            "serve",
            "--port",
            str(port),
            "--broker",
            broker,
            "--node-id",
            f"bench-s{number}",
            # The benchmark's own publisher and subscribers must not be throttled or ticked at.
            "--rate-limit",
            "0",
            "--tick",
            "0",
            "--log-level",
            "warning",
            "--log-format",
            "json",
        ]
        if trace:
            command.append("--trace")
        if workers > 1:
            command += ["--workers", str(workers)]
        if broker == "kafka":
            command += ["--kafka-bootstrap", kafka_bootstrap, "--kafka-topic", kafka_topic]
        commands.append(command)
    with _running(commands, ports, log_dir / "minimess", ready_path="/readyz") as processes:
        urls = tuple(f"ws://{HOST}:{port}" for port in ports)
        yield Servers(f"minimess ({broker})", urls, lambda: _proc_sample(processes))


@contextlib.contextmanager
def targeted(url: str, metrics_urls: Sequence[str], metrics_token: str | None = None) -> Iterator[Servers]:
    """A server (or a proxy in front of several) that runs already; CPU and RSS come from /metrics."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise BenchError(f"--target must be a ws:// or wss:// URL, got {url!r}")
    if not metrics_urls:
        metrics_urls = [metrics_url_of(url)]
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    _check_reachable(url)
    sample = _metrics_sample(metrics_urls, metrics_token)
    sample()  # fail now, not after connecting thousands of clients
    yield Servers(f"minimess at {base}", (base,), sample, SCRAPE_SAMPLE_INTERVAL, SCRAPE_SETTLE, fresh=False)


def _check_reachable(url: str) -> None:
    """Refuse a target nothing answers at, by the URL the user gave (not the /metrics URL read next)."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        socket.create_connection((parts.hostname or "", port), timeout=5).close()
    except ValueError as error:  # a port that is not a number, or out of range
        raise BenchError(f"--target {url!r}: {error}") from None
    except OSError as error:
        reason = (error.strerror or str(error) or type(error).__name__).lower()
        raise BenchError(f"cannot reach {url}: {reason}") from None


@contextlib.contextmanager
def _running(
    commands: list[list[str]], ports: list[int], log_stem: Path, ready_path: str | None
) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    logs = [Path(f"{log_stem}-{number}.log") for number in range(1, len(commands) + 1)]
    try:
        for command, log in zip(commands, logs, strict=True):
            with log.open("wb") as output:
                processes.append(subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT))
        for process, port, log in zip(processes, ports, logs, strict=True):
            _wait_until_serving(process, port, log, ready_path)
        yield processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_serving(
    process: subprocess.Popen[bytes], port: int, log: Path, ready_path: str | None
) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise BenchError(f"server on port {port} exited with {process.returncode}: " + " | ".join(tail))
        if _serves(port, ready_path):
            return
        time.sleep(0.05)
    raise BenchError(f"server on port {port} was not ready within {STARTUP_TIMEOUT:.0f} s; see {log}")


def _serves(port: int, ready_path: str | None) -> bool:
    try:
        if ready_path is None:
            socket.create_connection((HOST, port), timeout=1).close()
            return True
        with urllib.request.urlopen(f"http://{HOST}:{port}{ready_path}", timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _proc_sample(processes: list[subprocess.Popen[bytes]]) -> Sample:
    cpus, rss = [], 0
    for process in processes:
        cpu = 0.0
        # A server with --workers is a supervisor and its workers: all of them count.
        for pid in (process.pid, *_children(process.pid)):
            # Fields 14 and 15 of /proc/<pid>/stat: user and system time in clock ticks.
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
            rss += resident_pages * os.sysconf("SC_PAGE_SIZE")
        cpus.append(cpu)
    return Sample(sum(cpus), rss, cpu_seconds_by_server=tuple(cpus))


def _children(pid: int) -> list[int]:
    """The processes `pid` started (the workers of a supervisor), read from /proc."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def metrics_url_of(url: str) -> str:
    """The /metrics URL of the server (or proxy) that serves the ws:// or wss:// `url`."""
    parts = urlsplit(url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"{scheme}://{parts.netloc}/metrics"


def _metrics_sample(metrics_urls: Sequence[str], token: str | None) -> Callable[[], Sample]:
    def sample() -> Sample:
        cpus, rss, opened = [], 0, 0
        counted = True
        for url in metrics_urls:
            # `--stats` is --metrics' old name, and its old URLs name /stats, which is JSON.
            hint = "; give the server's /metrics URL" if urlsplit(url).path.endswith("/stats") else ""
            try:
                figures = scrape(url, token)
            except ScrapeError as error:
                raise BenchError(f"{error}{hint}") from None
            if CPU_SECONDS not in figures or RSS_BYTES not in figures:
                raise BenchError(f"{url} does not report the server's CPU time and RSS{hint}")
            cpus.append(figures[CPU_SECONDS])
            rss += int(figures[RSS_BYTES])
            counted = counted and CONNECTIONS_OPENED in figures
            opened += int(figures.get(CONNECTIONS_OPENED, 0))
        return Sample(sum(cpus), rss, opened if counted else None, tuple(cpus))

    return sample


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])
