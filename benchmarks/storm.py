"""The storm, timed: until every client of a killed server is back and recovered, and how fast they come.

usage: uv run python -m benchmarks.storm [--clients 1000] [--topics 4] [--rounds 3] [--interval 0.05]

Each round runs benchmarks/storm_scenario.py's scenario on a fresh Kafka topic: three `minimess
serve --broker kafka` servers (--max-connections 600) behind HAProxy, `--clients` subscribers
through it on `--topics` topics, a message every `--interval` seconds from a publisher on s2;
s1 gets SIGKILL, and each client it held reconnects through HAProxy with its position (full
jitter, first delay under 1 s). Reported per round and as the median: the clients displaced, the
time from the SIGKILL until the last of them was subscribed again with `recovered: true` (full
recovery), the displaced clients recovered per second over that time, and the most in any one
second. Every round also checks what the test checks (each client has every message of its topic
once, in order; no client refused) and says so.

Starts its own Kafka through scripts/kafka in a temporary folder; needs haproxy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from benchmarks.storm_scenario import Storm, StormResult
from tests.integration.kafka_process import KafkaProcess

BEFORE_KILL = 20
AFTER_RECOVERY = 20


async def one_round(
    kafka: KafkaProcess, folder: Path, clients: int, topics: int, interval: float
) -> StormResult:
    storm = Storm(kafka, folder, clients, topics)
    with storm.cluster():
        return await storm.run(interval, BEFORE_KILL, AFTER_RECOVERY)


def describe(number: int, result: StormResult) -> str:
    refused = sum(1 for subscriber in result.subscribers if subscriber.refusals)
    problems = result.problems()
    checks = (
        "every message once, in order" if not problems else f"{len(problems)} clients with gaps or repeats"
    )
    return (
        f"round {number}: {len(result.displaced)} displaced, full recovery {result.full_recovery_s:.2f} s,"
        f" {result.reconnects_per_s:.0f} recovered/s (peak {result.peak_reconnects_per_s} in 1 s);"
        f" {checks}; {refused} refused; publish errors {len(result.publish_errors)};"
        f" failed attempts {dict(result.failed_attempts) or 0}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--topics", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between publishes")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="minimess-storm-") as folder:
        kafka = KafkaProcess(Path(folder) / "kafka")
        try:
            await asyncio.to_thread(kafka.start)
            for number in range(1, args.rounds + 1):
                round_folder = Path(folder) / f"round-{number}"
                result = await one_round(kafka, round_folder, args.clients, args.topics, args.interval)
                print(describe(number, result), flush=True)
                results.append(result)
        finally:
            await asyncio.to_thread(kafka.stop)
    full = statistics.median(r.full_recovery_s for r in results)
    print(
        f"median of {len(results)}: full recovery {full:.2f} s,"
        f" {statistics.median(r.reconnects_per_s for r in results):.0f} recovered/s,"
        f" peak {statistics.median(r.peak_reconnects_per_s for r in results):.0f} in 1 s"
    )


if __name__ == "__main__":
    asyncio.run(main())
