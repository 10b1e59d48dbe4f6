"""The history check, long form: recording clients, injected faults, and the checker's verdict.

usage: uv run python -m benchmarks.history_check [--broker kafka] [--runs 3] [--faults 8] [--clients 10]

Each run starts a fresh cluster: with `--broker kafka` (the default), a Kafka topic of its own on
one Kafka started in a temporary folder through scripts/kafka, `--servers` servers on it, and
HAProxy in front; with `--broker memory`, one memory server and no proxy. `--clients` recording
clients connect (through the proxy), each subscribed to every topic and publishing with ids on a
random one. `--faults` faults follow one another, drawn (with `--seed`) from server SIGKILL,
server SIGTERM, and for Kafka also Kafka paused and Kafka restarted (held `--hold` seconds at
least); between them every client gets `--acks` acks. The run ends by waiting for every answer
and every delivery, and the checker judges the history; `--history DIR` keeps each run's history
as JSON lines, and `--check FILE` judges one again. Exit status 1 when any run shows a violation or stalls.

Needs Java (Kafka's jars come through scripts/kafka) and haproxy (Debian installs it in /usr/sbin).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import attrs

from benchmarks.history import records, scenario
from benchmarks.history.checker import Counts, Verdict, check, summary
from benchmarks.history.faults import FAULTS, SERVER_FAULTS, Cluster
from benchmarks.history.workload import WorkloadSettings
from tests.integration.kafka_process import KafkaProcess, kafka_serve_args
from tests.integration.proxy_process import ProxyProcess
from tests.integration.server_process import ServerProcess, wait_status


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.history_check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--broker", choices=("kafka", "memory"), default="kafka")
    parser.add_argument("--servers", type=int, default=3, help="Kafka servers behind the proxy (default 3)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--faults", type=int, default=8, help="faults per run (default 8)")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--topics", type=int, default=3)
    parser.add_argument("--pace", type=float, default=0.05, help="mean seconds between a client's publishes")
    parser.add_argument("--acks", type=int, default=50, help="acks each client gets between faults")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds a Kafka fault lasts at least")
    parser.add_argument("--publish-timeout", type=float, default=2.0, help="the servers' --publish-timeout")
    parser.add_argument("--within", type=float, default=60.0, help="bound on every wait, in seconds")
    parser.add_argument(
        "--fault",
        action="append",
        choices=FAULTS,
        help="a kind of fault to draw from (repeatable; default: all)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--history", type=Path, help="a folder to keep each run's history in")
    parser.add_argument("--check", type=Path, metavar="FILE", help="judge a kept history instead of running")
    return parser.parse_args(argv)


def draw_faults(args: argparse.Namespace, rng: random.Random) -> list[str]:
    """`--faults` faults for one run, every kind the broker allows coming up at least once if it can."""
    kinds = list(args.fault or (FAULTS if args.broker == "kafka" else SERVER_FAULTS))
    faults = kinds[: args.faults] + [rng.choice(kinds) for _ in range(args.faults - len(kinds))]
    rng.shuffle(faults)
    return faults


async def start_cluster(
    args: argparse.Namespace, kafka: KafkaProcess | None, folder: Path, stack: AsyncExitStack
) -> tuple[Cluster, str]:
    """The run's servers (and proxy), ready; stopped when `stack` closes. The cluster, and its URL."""
    common = ["--rate-limit", "0", "--tick", "0"]
    if kafka is None:
        names = ["m1"]
        argv = [["--broker", "memory", *common, "--node-id", "m1"]]
    else:
        topic = f"minimess-history-{uuid.uuid4().hex}"
        names = [f"s{n}" for n in range(1, args.servers + 1)]
        argv = [
            [*kafka_serve_args(kafka, topic, name), "--publish-timeout", str(args.publish_timeout)]
            for name in names
        ]
    servers: dict[str, ServerProcess] = {}
    for name, server_args in zip(names, argv, strict=True):
        server = ServerProcess(*server_args)
        stack.callback(server.stop)
        servers[name] = await asyncio.to_thread(server.start)
    for server in servers.values():
        await asyncio.to_thread(wait_status, server, "/readyz", 200, args.within)
    if kafka is None:
        return Cluster(servers), servers["m1"].url("")
    proxy = ProxyProcess(
        "haproxy", folder / f"haproxy-{uuid.uuid4().hex[:8]}", [s.port for s in servers.values()]
    )
    stack.callback(proxy.stop)
    await asyncio.to_thread(proxy.start)
    return Cluster(servers, kafka), proxy.url()


async def one_run(
    args: argparse.Namespace, number: int, kafka: KafkaProcess | None, folder: Path, rng: random.Random
) -> scenario.Outcome:
    faults = draw_faults(args, rng)
    settings = WorkloadSettings(
        topics=tuple(f"t{n}" for n in range(args.topics)),
        pace=args.pace,
        run=f"r{number}{uuid.uuid4().hex[:8]}",
    )
    async with AsyncExitStack() as stack:
        cluster, url = await start_cluster(args, kafka, folder, stack)
        return await scenario.run(
            cluster,
            url,
            args.clients,
            faults,
            settings,
            args.within,
            args.hold,
            args.seed + number,
            args.acks,
        )


def add_counts(total: Counts | None, counts: Counts) -> Counts:
    if total is None:
        return counts
    return Counts(
        **{name: getattr(total, name) + getattr(counts, name) for name in attrs.fields_dict(Counts)}
    )


async def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.check is not None:
        verdict = check(records.read(args.check))
        print(summary(verdict))
        return 0 if verdict.ok else 1
    rng = random.Random(args.seed)
    total: Counts | None = None
    failed = []
    fault_count = 0
    seconds = 0.0
    with tempfile.TemporaryDirectory(prefix="minimess-history-") as folder:
        kafka = KafkaProcess(Path(folder) / "kafka") if args.broker == "kafka" else None
        try:
            if kafka is not None:
                await asyncio.to_thread(kafka.start)
            for number in range(1, args.runs + 1):
                outcome = await one_run(args, number, kafka, Path(folder), rng)
                print(f"\n== run {number}: {outcome.seconds:.0f} s, faults {' '.join(outcome.faults)}")
                print(summary(outcome.verdict))
                if outcome.stalled:
                    print(f"stalled: {outcome.stalled}")
                if args.history is not None:
                    args.history.mkdir(parents=True, exist_ok=True)
                    path = args.history / f"run-{number}.jsonl"
                    records.write(outcome.records, path)
                    print(f"history: {path}")
                if outcome.stalled or not outcome.verdict.ok:
                    failed.append(number)
                total = add_counts(total, outcome.verdict.counts)
                fault_count += len(outcome.faults)
                seconds += outcome.seconds
        finally:
            if kafka is not None:
                await asyncio.to_thread(kafka.stop)
    assert total is not None
    servers = args.servers if args.broker == "kafka" else 1
    print(
        f"\n== {args.runs} runs, {args.broker}, {servers} servers, {args.clients} clients,"
        f" {args.topics} topics, {fault_count} faults, {seconds:.0f} s"
    )
    print(summary(Verdict(total, ())).rsplit("\nverdict", 1)[0])
    print("failed runs: " + (" ".join(map(str, failed)) if failed else "none"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
