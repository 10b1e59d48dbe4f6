"""What each of minimess's speed measures buys: minimess with one of them undone, against itself.

usage: uv run python -m benchmarks.variants [--variant NAME ...] [--rounds 3] [--rate 20]
                                            [--messages 200] [--subscribers 1000]

Each variant is the real server with one part swapped at start-up through the providers of its
container (`serve VARIANT` below), not a copy of minimess's code; nagle alone changes asyncio:

    encode-per-subscriber  the hub renders the message's frame again for every recipient
    no-coalescing          every frame goes straight to an idle socket, one write each, even when a
                           connection gets several in one turn of the event loop
    writer-wakeup          every frame goes through the writer task (no direct write to an idle socket)
    nagle                  TCP_NODELAY off on client sockets (asyncio turns it on for every TCP transport)
    log-per-delivery       one structlog line (JSON, to a file) for every delivery, at info level
    asyncio-loop           asyncio's own event loop instead of uvloop (--loop asyncio)
    no-gc-freeze           start-up's objects left to every full collection (no gc.freeze once listening)

Every round starts the unchanged server and each variant in turn, and measures each with
`minimess bench --target` (same subscribers, same publisher); the table shows medians over the
rounds and each variant's ratio to the unchanged server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog
from dependency_injector import providers

from devtools.processes import free_port
from minimess.adapters.websocket_server.outbound import Flusher
from minimess.adapters.websocket_server.settings import WebSocketSettings
from minimess.app.hub import Hub
from minimess.app.settings import MessagingSettings
from minimess.bootstrap.runtime import run_server
from minimess.bootstrap.server import Container, build_container
from minimess.bootstrap.settings import ServeSettings
from minimess.domain.model import Message
from minimess.domain.ports import Frame
from minimess.entrypoints.log_setup import configure_logging

VARIANTS = (
    "encode-per-subscriber",
    "no-coalescing",
    "writer-wakeup",
    "nagle",
    "log-per-delivery",
    "asyncio-loop",
    "no-gc-freeze",
)
METRICS = (
    ("cpu_us_per_delivery", "CPU/delivery µs"),
    ("deliveries_per_s", "deliveries/s"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p99_ms", "p99 ms"),
)


class RenderPerRecipient(Hub):
    """A hub that renders a message's frame again for every recipient after the first."""

    def __init__(self, render: Callable[[Message], Frame]) -> None:
        super().__init__(render)
        self._render_again = render

    def fan_out(self, message: Message) -> None:
        for _ in range(self.subscriber_count(message.topic) - 1):
            self._render_again(message)
        super().fan_out(message)


delivery_log = structlog.get_logger("minimess.app.hub")


class LogPerDelivery(Hub):
    """A hub that logs one line (info) for every delivery."""

    def fan_out(self, message: Message) -> None:
        recipients = self.subscriber_count(message.topic)
        super().fan_out(message)
        for _ in range(recipients):
            delivery_log.info("message_delivered", message_id=message.id, topic=message.topic.name)


class TurnPerWrite(Flusher):
    """A flusher that ends the turn at every direct write, so no frame waits for the next one."""

    def end_turn_later(self) -> None:
        self.turn += 1
        super().end_turn_later()


def encode_per_subscriber(container: Container) -> None:
    container.service.add_kwargs(
        hub=providers.Factory(RenderPerRecipient, container.renderer.provided.message)
    )


def no_coalescing(container: Container) -> None:
    container.flusher.override(providers.Singleton(TurnPerWrite, metrics=container.metrics))


def writer_wakeup(container: Container) -> None:
    container.flusher.override(providers.Singleton(Flusher, direct_writes=False, metrics=container.metrics))


def nagle(container: Container) -> None:
    from asyncio import base_events

    # Not a part of minimess: the one place asyncio turns Nagle off for every TCP transport.
    base_events._set_nodelay = lambda sock: None  # type: ignore[attr-defined]  # noqa: SLF001


def log_per_delivery(container: Container) -> None:
    container.service.add_kwargs(hub=providers.Factory(LogPerDelivery, container.renderer.provided.message))


CHANGES: dict[str, Callable[[Container], None]] = {
    "none": lambda container: None,
    "encode-per-subscriber": encode_per_subscriber,
    "no-coalescing": no_coalescing,
    "writer-wakeup": writer_wakeup,
    "nagle": nagle,
    "log-per-delivery": log_per_delivery,
    "asyncio-loop": lambda container: None,
    "no-gc-freeze": lambda container: None,
}


def serve(variant: str, port: int) -> None:
    """Run a server (no ticks, no rate limit) with the variant's change made to its container."""
    level = "info" if variant == "log-per-delivery" else "warning"
    configure_logging(level, "json")
    settings = ServeSettings(
        server=WebSocketSettings(port=port, rate_limit=0),
        messaging=MessagingSettings(tick=0),
        loop="asyncio" if variant == "asyncio-loop" else "auto",
    )
    container = build_container(settings)
    CHANGES[variant](container)
    run_server(container.server(), settings.loop, freeze=variant != "no-gc-freeze")


@contextlib.contextmanager
def started(variant: str, log: Path) -> Iterator[int]:
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.variants", "serve", variant, str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{variant} did not start; see {log}") from None
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait()


def measure(port: int, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, "-m", "minimess", "bench", "--target", f"ws://127.0.0.1:{port}"]
    command += ["--baseline", "none", "--rounds", "1", "--json", "-"]
    command += ["--subscribers", str(args.subscribers), "--messages", str(args.messages)]
    command += ["--rate", str(args.rate)]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"minimess bench failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    median: dict[str, float] = json.loads(completed.stdout)["servers"]["minimess"]["median"]
    return median


def measured(variant: str, log: Path, args: argparse.Namespace, attempts: int = 3) -> dict[str, float]:
    """One round of `variant` on a fresh server, tried again on a fresh one when the bench fails.

    On a loaded machine the bench may give up on a server (its /metrics read timing out while a
    thousand clients connect); a failed round measures nothing, so it is run again.
    """
    for attempt in range(1, attempts + 1):
        try:
            with started(variant, log) as port:
                return measure(port, args)
        except RuntimeError as error:
            if attempt == attempts:
                raise
            print(f"{variant}: attempt {attempt} failed, again: {error}", file=sys.stderr, flush=True)
    raise AssertionError("unreachable")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", action="append", choices=VARIANTS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--subscribers", type=int, default=1000)
    args = parser.parse_args()
    variants = ["none", *(args.variant or VARIANTS)]
    runs: dict[str, list[dict[str, float]]] = {variant: [] for variant in variants}
    with tempfile.TemporaryDirectory() as folder:
        for number in range(1, args.rounds + 1):
            for variant in variants:  # alternate, so that drift hits every variant alike
                print(f"round {number}/{args.rounds}: {variant}", file=sys.stderr, flush=True)
                runs[variant].append(measured(variant, Path(folder) / f"{variant}.log", args))
                # Each round as it is measured, so that a long run that fails later is not all lost.
                print(json.dumps({"variant": variant, **runs[variant][-1]}), file=sys.stderr, flush=True)
    load = "flood" if args.rate == 0 else f"{args.rate:g} msg/s"
    print(
        f"\n{args.subscribers} subscribers, {args.messages} messages ({load}), median of {args.rounds} rounds"
    )
    print(f"{'variant':<24}" + "".join(f"{label:>16}{'ratio':>7}" for _, label in METRICS))
    medians = {
        variant: {key: statistics.median(run[key] for run in rounds) for key, _ in METRICS}
        for variant, rounds in runs.items()
    }
    for variant in variants:
        line = f"{variant:<24}"
        for key, _ in METRICS:
            value, unchanged = medians[variant][key], medians["none"][key]
            line += f"{value:>16,.2f}{value / unchanged:>7.2f}"
        print(line)


if __name__ == "__main__":
    main()
