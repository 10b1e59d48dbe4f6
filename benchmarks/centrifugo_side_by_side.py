"""minimess and Centrifugo side by side: the same subscribers on one channel of each, rounds
alternating between the servers, and what each server's CPU paid per delivery.

usage: uv run python -m benchmarks.centrifugo_side_by_side [--centrifugo PATH] [--subscribers 1000]
           [--workers N] [--rounds 3] [--mode flood --mode paced] [--flood-messages 2000]
           [--paced-messages 200] [--rate 20] [--window 100] [--json]

minimess is `minimess serve` on the memory broker with `--rate-limit 0 --tick 0 --log-level
warning`, started as `minimess bench` starts it; Centrifugo v6 runs with GOMAXPROCS=1 (one core)
and a config written to a temporary folder: HS256 connection tokens with the secret it sets,
client-side subscribe allowed on the `bench` namespace, its server HTTP API with an API key,
logging at warn. Both keep their keepalive as it comes: Centrifugo pings every 25 s and closes a
client that has not answered in 8 s, minimess every 20 s and 20 s; the subscribers answer both
(websockets answers minimess's WebSocket pings, fan_out_clients Centrifugo's `{}`), but a
subscriber that is further behind than that reads the ping too late and is closed, and its
deliveries are missed: the table counts the subscribers each server closed.

The subscribers (benchmarks/fan_out_clients.py) are N websockets connections in worker processes,
all on one topic (minimess `t0`, Centrifugo `bench:t0`). The publisher is one connection with
`--window` publishes in flight: a `pub` frame connection for minimess (minimess bench's own
publisher), and one keep-alive HTTP/1.1 connection to Centrifugo's HTTP API `publish` for
Centrifugo, requests pipelined. Both servers pay for their publisher's connection and every
publish; spread over N deliveries that is a small part of the figure either way.

A round measures, for one server and one mode: the server's CPU (utime + stime of its process,
from /proc) from just before the first publish until the subscribers have counted every
delivery, divided by the deliveries; deliveries/s from the first publish to the last delivery;
the RSS then, and what the RSS grew by per connection while the subscribers connected.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import multiprocessing
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import attrs
import jwt

from benchmarks.fan_out_clients import (
    COUNTERS,
    RECEIVED,
    Delivered,
    SubscriberPlan,
    publish_http,
    run_subscribers,
)
from devtools.processes import free_port
from minimess.bench.publisher import PublishPlan, PublishReport, publish
from minimess.bench.servers import Sample, started_minimess

HOST = "127.0.0.1"
SERVERS = ("minimess", "centrifugo")
MODES = ("flood", "paced")
NAMESPACE = "bench"
TOPIC = "t0"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# After the last answer, deliveries that stop arriving for this long are not coming. Longer than
# minimess bench's 3 s: under a flood of 2,000 messages to 1,000 loopback sockets on a loaded
# 2-core machine, the subscribers were seen to receive nothing for over 3 s and then all the rest.
QUIET_PERIOD = 15.0
DRAIN_TIMEOUT = 60.0
# How often the parent looks at the workers' counters: the end of a round is seen within it, and
# the server's idle CPU over it is a rounding error.
POLL_INTERVAL = 0.02
METRICS = (
    ("cpu_us_per_delivery", "server CPU per delivery, µs", "{:,.2f}"),
    ("deliveries_per_s", "deliveries/s", "{:,.0f}"),
    ("messages_per_frame", "messages per frame", "{:,.2f}"),
    ("rss_mib", "RSS at the end, MiB", "{:,.1f}"),
    ("kib_per_connection", "RSS per connection, KiB", "{:,.1f}"),
    ("deliveries", "deliveries", "{:,.0f}"),
    ("expected", "expected", "{:,.0f}"),
    ("closed", "subscribers closed by the server", "{:,.0f}"),
)


class SideBySideError(Exception):
    """A reason the benchmark cannot go on, said in one line."""


@attrs.frozen
class Server:
    """A server started for a round: where subscribers connect, how to publish, how to read its use."""

    name: str
    protocol: str
    url: str
    channel: str
    token: str | None
    read_sample: Callable[[], Sample]
    publish: Callable[[PublishPlan], Coroutine[Any, Any, PublishReport]]


@contextlib.contextmanager
def started(kind: str, binary: Path, folder: Path) -> Iterator[Server]:
    """A fresh server of `kind` on a free loopback port, stopped on leaving."""
    if kind == "minimess":
        with started_minimess("memory", False, "", "", folder) as servers:
            url = servers.urls[0]
            yield Server(
                "minimess", "minimess", url, TOPIC, None, servers.read_sample, lambda p: publish(url, p)
            )
        return
    with started_centrifugo(binary, folder) as server:
        yield server


@contextlib.contextmanager
def started_centrifugo(binary: Path, folder: Path) -> Iterator[Server]:
    """Centrifugo on one core (GOMAXPROCS=1) with a config of its own in `folder`."""
    port = free_port()
    secret, api_key = secrets.token_hex(32), secrets.token_hex(16)
    config = {
        "http_server": {"address": HOST, "port": port},
        "log": {"level": "warn"},
        "client": {
            "token": {"hmac_secret_key": secret},
            "allowed_origins": [f"http://{HOST}"],
        },
        "http_api": {"key": api_key},
        "channel": {"namespaces": [{"name": NAMESPACE, "allow_subscribe_for_client": True}]},
    }
    config_path = folder / "centrifugo.json"
    config_path.write_text(json.dumps(config, indent=2))
    log = folder / "centrifugo.log"
    environment = {**os.environ, "GOMAXPROCS": "1"}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(binary), "--config", str(config_path)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    try:
        _wait_until_listening(process, port, log)
        token = jwt.encode({"sub": "bench"}, secret, algorithm="HS256")
        channel = f"{NAMESPACE}:{TOPIC}"
        yield Server(
            "Centrifugo",
            "centrifugo",
            f"ws://{HOST}:{port}",
            channel,
            token,
            lambda: proc_sample(process.pid),
            lambda plan: publish_http(HOST, port, api_key, channel, plan),
        )
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])
            raise SideBySideError(f"centrifugo exited with {process.returncode}: {tail}")
        with contextlib.suppress(OSError):
            socket.create_connection((HOST, port), timeout=1).close()
            return
        time.sleep(0.05)
    raise SideBySideError(f"centrifugo was not listening within {STARTUP_TIMEOUT:.0f} s; see {log}")


def proc_sample(pid: int) -> Sample:
    """The process's CPU seconds (every thread's user and system time) and RSS, from /proc."""
    # Fields 14 and 15 of /proc/<pid>/stat: user and system time in clock ticks.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return Sample(cpu, resident_pages * os.sysconf("SC_PAGE_SIZE"), cpu_seconds_by_server=(cpu,))


def run_round(server: Server, mode: str, args: argparse.Namespace) -> dict[str, float | None]:
    """Connect the subscribers, publish, wait for every delivery, and measure the server."""
    context = multiprocessing.get_context("spawn")
    numbers = list(range(args.subscribers))
    shares = [tuple(numbers[k :: args.workers]) for k in range(args.workers)]
    controls: list[Connection] = []
    counters: list[Any] = []
    processes = []
    before = server.read_sample()
    for share in filter(None, shares):
        subscribers = SubscriberPlan(server.protocol, server.url, server.channel, share, 100, server.token)
        parent_end, worker_end = context.Pipe()
        counter = context.Array("q", COUNTERS, lock=False)
        process = context.Process(
            target=run_subscribers, args=(subscribers, worker_end, counter), daemon=True
        )
        process.start()
        controls.append(parent_end)
        counters.append(counter)
        processes.append(process)
    try:
        connects = _gather(controls, "connected")
        connected = sum(ok for ok, _, _ in connects)
        if connected < args.subscribers:
            failure = next((first for _, failed, first in connects if failed), None)
            raise SideBySideError(f"{server.name}: {connected} of {args.subscribers} connected; {failure}")
        after_connect = server.read_sample()
        messages = args.flood_messages if mode == "flood" else args.paced_messages
        plan = PublishPlan(
            topics=[server.channel],
            messages=messages,
            rate=0.0 if mode == "flood" else args.rate,
            body_bytes=args.body_bytes,
            window=args.window,
            answer_timeout=DRAIN_TIMEOUT,
        )
        expected = messages * connected
        cpu_start = server.read_sample()
        published = asyncio.run(server.publish(plan))
        _wait_for_deliveries(counters, expected)
        cpu_end = server.read_sample()
        for control in controls:
            control.send("finish")
        delivered: list[Delivered] = _gather(controls, "delivered")
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    # Connections closed before the round ended were closed by the server (a slow consumer: minimess
    # 4000, Centrifugo 3008); the workers close theirs only after reporting.
    closes: Counter[int] = Counter()
    for d in delivered:
        closes.update(d.close_codes)
    received = sum(d.received for d in delivered)
    frames = sum(d.frames for d in delivered)
    elapsed = max(d.last_received for d in delivered) - published.started
    cpu = cpu_end.cpu_seconds - cpu_start.cpu_seconds
    return {
        "acked": published.acked,
        "publish_errors": published.errors.total() + published.unanswered,
        "deliveries": received,
        "expected": expected,
        "deliveries_per_s": received / elapsed if received and elapsed > 0 else None,
        "cpu_us_per_delivery": cpu / received * 1e6 if received else None,
        "messages_per_frame": received / frames if frames else None,
        "rss_mib": cpu_end.rss_bytes / 2**20,
        "kib_per_connection": (after_connect.rss_bytes - before.rss_bytes) / 1024 / connected,
        "closed": closes.total(),
        **{f"closed_{code}": count for code, count in sorted(closes.items())},
    }


def _gather(controls: list[Connection], kind: str) -> list[Any]:
    """Every worker's `kind` report, in the workers' order; a worker that died is an error."""
    reports: list[Any] = []
    for control in controls:
        if not control.poll(DRAIN_TIMEOUT + STARTUP_TIMEOUT):
            raise SideBySideError(f"a subscriber worker sent no {kind!r} report")
        try:
            message, payload = control.recv()
        except EOFError:
            raise SideBySideError("a subscriber worker died; see its traceback above") from None
        if message != kind:
            raise SideBySideError(f"a subscriber worker sent {message!r}, expected {kind!r}")
        reports.append(payload)
    return reports


def _wait_for_deliveries(counters: list[Any], expected: int) -> None:
    deadline = time.monotonic() + DRAIN_TIMEOUT
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        received = sum(counter[RECEIVED] for counter in counters)
        if received >= expected:
            return
        if received != last:
            last, quiet_since = received, time.monotonic()
        elif time.monotonic() - quiet_since > QUIET_PERIOD:
            return
        time.sleep(POLL_INTERVAL)


def versions(binary: Path) -> dict[str, str]:
    # A binary from `go install` says v0.0.0 of itself; the module version is in its build info.
    completed = subprocess.run(
        ["go", "version", "-m", str(binary)], capture_output=True, text=True, timeout=30
    )
    module = [line.split()[1:3] for line in completed.stdout.splitlines() if line.strip().startswith("mod\t")]
    go = completed.stdout.partition("\n")[0].rpartition(" ")[2]
    return {
        "centrifugo": f"Centrifugo {module[0][1]} ({go})" if module else "Centrifugo (version unknown)",
        "python": platform.python_version(),
        "websockets": importlib.metadata.version("websockets"),
    }


def centrifugo_binary(given: str | None) -> Path:
    gopath = subprocess.run(["go", "env", "GOPATH"], capture_output=True, text=True).stdout.strip()
    candidates = [given, shutil.which("centrifugo"), str(Path(gopath or "~/go", "bin", "centrifugo"))]
    for candidate in filter(None, candidates):
        path = Path(candidate).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise SideBySideError(
        "no centrifugo binary: GOFLAGS=-mod=mod go install github.com/centrifugal/centrifugo/v6@latest"
        " (or give --centrifugo PATH)"
    )


def render(runs: dict[str, dict[str, list[dict[str, float | None]]]], args: argparse.Namespace) -> str:
    lines = []
    for mode, by_server in runs.items():
        load = (
            f"flood, {args.flood_messages:,} messages"
            if mode == "flood"
            else f"{args.rate:g} msg/s, {args.paced_messages:,} messages"
        )
        rounds = len(next(iter(by_server.values())))
        lines.append(f"\n{args.subscribers:,} subscribers, {load}, median of {rounds} round(s)")
        lines.append(f"{'':<32}{'minimess':>14}{'Centrifugo':>14}{'ratio':>8}")
        medians = {server: median_of(rounds_) for server, rounds_ in by_server.items()}
        for key, label, style in METRICS:
            ours, theirs = medians["minimess"].get(key), medians["centrifugo"].get(key)
            ratio = f"{ours / theirs:>8.2f}" if ours is not None and theirs else f"{'':>8}"
            lines.append(f"{label:<32}{_cell(ours, style):>14}{_cell(theirs, style):>14}{ratio}")
    return "\n".join(lines)


def _cell(value: float | None, style: str) -> str:
    return "-" if value is None else style.format(value)


def median_of(rounds: list[dict[str, float | None]]) -> dict[str, float | None]:
    keys = dict.fromkeys(key for r in rounds for key in r)
    result: dict[str, float | None] = {}
    for key in keys:
        # A close code missing from a round closed no connection in it.
        default = 0 if key.startswith("closed") else None
        values = [value for r in rounds if (value := r.get(key, default)) is not None]
        result[key] = statistics.median(values) if values else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--centrifugo", help="the centrifugo binary (default: on PATH, else $(go env GOPATH)/bin)"
    )
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="subscriber processes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mode", action="append", choices=MODES, help="flood, paced (default: both)")
    parser.add_argument("--flood-messages", type=int, default=2000)
    parser.add_argument("--paced-messages", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second when paced")
    parser.add_argument("--window", type=int, default=100, help="publishes in flight at most")
    parser.add_argument("--body-bytes", type=int, default=64)
    parser.add_argument(
        "--minimess-queue-size",
        type=int,
        help="minimess serve --queue-size (frames a connection may have waiting; default: the server's)",
    )
    parser.add_argument("--json", action="store_true", help="print every round and the medians as JSON")
    args = parser.parse_args()
    if args.subscribers < 1 or args.workers < 1 or args.rounds < 1 or args.rate <= 0 or args.body_bytes < 17:
        parser.error(
            "--subscribers, --workers and --rounds must be at least 1, --rate above 0, --body-bytes ≥ 17"
        )
    if args.minimess_queue_size is not None:
        # Read by `minimess serve` as --queue-size (entrypoints/options.py); only minimess reads it.
        os.environ["MINIMESS_QUEUE_SIZE"] = str(args.minimess_queue_size)
    load_before = os.getloadavg()
    try:
        binary = centrifugo_binary(args.centrifugo)
        modes = args.mode or list(MODES)
        runs: dict[str, dict[str, list[dict[str, float | None]]]] = {
            mode: {server: [] for server in SERVERS} for mode in modes
        }
        with tempfile.TemporaryDirectory(prefix="side-by-side-") as folder:
            for number in range(1, args.rounds + 1):
                for mode in modes:
                    for kind in SERVERS:  # alternate, so that drift on the machine hits both alike
                        print(f"round {number}/{args.rounds}: {mode}, {kind}", file=sys.stderr, flush=True)
                        with started(kind, binary, Path(folder)) as server:
                            runs[mode][kind].append(run_round(server, mode, args))
                        # Each round as it is measured, so that a long run that fails later is not all lost.
                        print(
                            json.dumps({"mode": mode, "server": kind, **runs[mode][kind][-1]}),
                            file=sys.stderr,
                        )
        found = versions(binary)
    except SideBySideError as error:
        sys.exit(f"error: {error}")
    if args.json:
        document = {
            "settings": vars(args),
            "versions": found,
            "load_average": {"start": load_before, "end": os.getloadavg()},
            "runs": runs,
            "medians": {
                mode: {s: median_of(r) for s, r in by_server.items()} for mode, by_server in runs.items()
            },
        }
        print(json.dumps(document, indent=2))
        return
    print(f"{found['centrifugo']} (GOMAXPROCS=1); Python {found['python']}, websockets {found['websockets']}")
    print(
        f"load average (1, 5, 15 min): {_load(load_before)} at the start, {_load(os.getloadavg())} at the end"
    )
    print(render(runs, args))


def _load(figures: tuple[float, float, float]) -> str:
    return ", ".join(f"{figure:.2f}" for figure in figures)


if __name__ == "__main__":
    main()
