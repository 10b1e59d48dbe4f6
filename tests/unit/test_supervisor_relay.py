"""The supervisor's relay of a worker's output: whole lines, and a slow reader stalls only the relay."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading

from minimess.bootstrap.supervisor import _relay
from tests.timeouts import scaled


def _fill(fd: int) -> None:
    """Write to the pipe `fd` until it takes no more."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        for chunk in (b"x" * 65536, b"x"):  # then byte by byte: no room left for any line
            try:
                while True:
                    os.write(fd, chunk)
            except BlockingIOError:
                pass
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)


def _drain(fd: int, until: bytes) -> bytes:
    """Read `fd` until `until` has come; everything read."""
    read = b""
    while until not in read:
        read += os.read(fd, 65536)
    return read


async def test_a_full_output_stalls_the_relay_and_not_the_event_loop() -> None:
    read_end, write_end = os.pipe()
    try:
        _fill(write_end)
        stream = asyncio.StreamReader()
        stream.feed_data(b'{"event": "worker line"}\n')
        stream.feed_eof()
        relay = asyncio.create_task(_relay(stream, write_end))
        loop_ran = threading.Event()
        reading = threading.Event()
        received: list[bytes] = []

        def reader() -> None:
            # The output's reader catches up once the loop has shown it runs (or after a while,
            # so that a relay that blocks the loop ends and the test fails rather than hangs).
            loop_ran.wait(scaled(10))
            reading.set()
            received.append(_drain(read_end, b"worker line"))

        draining = threading.Thread(target=reader)
        draining.start()
        # The relay has had its turn: without a thread of its own its write blocks right here.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        ran_while_full = not reading.is_set()
        loop_ran.set()
        async with asyncio.timeout(scaled(20)):
            await relay
        draining.join()
        assert ran_while_full, "the event loop waited for the output's reader"
        (output,) = received
        assert output.endswith(b'{"event": "worker line"}\n')
    finally:
        os.close(read_end)
        os.close(write_end)


async def test_long_lines_of_several_relays_into_one_output_arrive_whole() -> None:
    """Lines longer than a pipe takes in one write are not cut by another relay's."""
    read_end, write_end = os.pipe()
    line_bytes = 100_000  # more than a pipe holds: every line takes several writes
    letters = b"abcd"
    try:
        streams = []
        for letter in letters:
            stream = asyncio.StreamReader(limit=2 * line_bytes)
            for _ in range(5):
                stream.feed_data(bytes([letter]) * line_bytes + b"\n")
            stream.feed_eof()
            streams.append(stream)
        received: list[bytes] = []
        draining = threading.Thread(target=lambda: received.append(_drain_lines(read_end, 5 * len(letters))))
        draining.start()
        async with asyncio.timeout(scaled(30)):
            await asyncio.gather(*(_relay(stream, write_end) for stream in streams))
        draining.join()
        lines = received[0].splitlines()
        assert len(lines) == 5 * len(letters)
        assert all(len(set(line)) == 1 and len(line) == line_bytes for line in lines)
    finally:
        os.close(read_end)
        os.close(write_end)


def _drain_lines(fd: int, count: int) -> bytes:
    """Read `fd` in small pieces until `count` lines have come."""
    read = b""
    while read.count(b"\n") < count:
        read += os.read(fd, 4096)
    return read
