"""What writing and reading one Kafka record's envelope costs in each Thrift protocol.

usage: uv run python -m benchmarks.envelope_codec [--rounds 7] [--number 20000]

For a typical message (a 30-character body) and one with a 4 KiB body, it times with timeit, in
alternating rounds, `envelope.encode` in each protocol, `envelope.decode` of each protocol's
value (the Message and the record rules a server checks included), and the parts of a binary
read: the bounds check and thriftpy2's Cython reader alone. It prints each one's median over the
rounds in µs per call, and the record's size. The compact rows are what a server wrote and read
before the binary protocol; run with nothing else busy, or quote the load (`uptime`).
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable
from datetime import UTC, datetime

from thriftpy2.utils import deserialize

from minimess.adapters.kafka import binary_bounds, envelope
from minimess.adapters.kafka.envelope import Envelope, RecordRules, decode, encode
from minimess.domain.model import Message, Topic, Uid

ORIGIN = "eu-1.example.net:8080"
RULES = RecordRules()  # a consuming server holds what it reads to them, as a client's publish


def _cases(body: str) -> dict[str, Callable[[], object]]:
    """What is timed for one message, by name."""
    message = Message.create(Topic("news"), Uid("alice"), body, datetime.now(UTC))
    sent = Envelope(message=message, origin_node=ORIGIN)
    binary, compact = encode(sent, "binary"), encode(sent, "compact")
    assert decode(binary) == decode(compact) == sent
    struct = envelope._envelope_type()  # noqa: SLF001  # the reader alone, without the Message
    cython = envelope._FACTORIES["binary"]  # noqa: SLF001
    return {
        "encode binary": lambda: encode(sent, "binary"),
        "encode compact": lambda: encode(sent, "compact"),
        "decode binary": lambda: decode(binary, RULES),
        "decode compact": lambda: decode(compact, RULES),
        "  bounds check": lambda: binary_bounds.check(binary),
        "  Cython reader": lambda: deserialize(struct(), binary, cython),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=20_000, help="calls per timing")
    args = parser.parse_args()
    for label, body in (("typical", "see you at the standup in five"), ("4 KiB body", "x" * 4096)):
        cases = _cases(body)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, call in cases.items():
                times[name].append(timeit.timeit(call, number=args.number) / args.number * 1e6)
        message = Message.create(Topic("news"), Uid("alice"), body, datetime.now(UTC))
        sizes = {p: len(encode(Envelope(message, ORIGIN), p)) for p in envelope.PROTOCOLS}
        print(f"{label}: {sizes['binary']} bytes binary, {sizes['compact']} compact")
        for name, samples in times.items():
            print(f"  {name:16} {statistics.median(samples):7.2f} µs")


if __name__ == "__main__":
    main()
