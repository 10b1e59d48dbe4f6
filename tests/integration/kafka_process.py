"""A real single-node Kafka for integration tests, started and stopped through scripts/kafka."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import NoReturn

import pytest

from devtools import kafka, processes
from tests.timeouts import scaled

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kafka"
# How long `scripts/kafka start` may wait for the broker to serve (about 5-10 s on 2 cores).
START_TIMEOUT = 90.0
# The first start downloads the jars with Maven; that, not the broker, is what this allows for.
FETCH_ALLOWANCE = 300.0


class KafkaUnavailable(Exception):
    """scripts/kafka could not start Kafka here (no Java, no Maven, no jars, or a broker that died)."""


class KafkaProcess:
    """One Kafka broker owning the folder `directory`; `start` and `stop` may alternate freely.

    The folder keeps the cluster's data across a stop and a start, and the broker keeps its port,
    so clients that were connected before a stop can reconnect to the same address.
    """

    def __init__(self, directory: Path, sasl_users: dict[str, str] | None = None, acls: bool = False) -> None:
        self.dir = directory
        self.pid_file = kafka.Layout(directory).pid_file
        # With users, the broker also listens with SASL_PLAINTEXT (PLAIN) for them; with acls, it
        # checks ACLs on that listener (scripts/kafka start --sasl-user, --acls).
        self.sasl_users = sasl_users or {}
        self.acls = acls
        # 0 until the first start has picked a free port.
        self.port = 0
        # Frozen by `pause`: a stop has to let it go on first, or SIGTERM would wait for a SIGCONT.
        self._paused = False

    @property
    def bootstrap(self) -> str:
        assert self.port, "Kafka was never started"
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        """The SASL_PLAINTEXT listener's address, as the last start wrote it into server.properties."""
        port = kafka.Layout(self.dir).configured_port(kafka.SASL_LISTENER)
        assert port, "Kafka was never started with SASL users"
        return f"127.0.0.1:{port}"

    def start(self) -> KafkaProcess:
        """Start the broker (on a free port first, on the same port after) and wait until it serves."""
        sasl = [f"--sasl-user={name}={password}" for name, password in self.sasl_users.items()]
        result = self._run(
            "start",
            "--port",
            str(self.port),
            "--timeout",
            str(scaled(START_TIMEOUT)),
            *sasl,
            *(["--acls"] if self.acls else []),
            within=scaled(START_TIMEOUT) + FETCH_ALLOWANCE,
        )
        if result.returncode != 0:
            raise KafkaUnavailable(f"scripts/kafka start failed (exit {result.returncode}):\n{result.stderr}")
        address = result.stdout.strip()
        host, _, port = address.rpartition(":")
        if host != "127.0.0.1" or not port.isdigit():
            raise KafkaUnavailable(f"scripts/kafka start printed {address!r}, not 127.0.0.1:<port>")
        self.port = int(port)
        return self

    def stop(self) -> None:
        """Stop the broker (SIGTERM, SIGKILL if it lingers); a no-op when it does not run."""
        if not self.pid_file.exists():
            return  # never started, or already stopped: scripts/kafka removes the file on both paths
        if self._paused:
            self.resume()
        result = self._run("stop", "--timeout", str(scaled(30)), within=scaled(60))
        if result.returncode != 0:
            raise RuntimeError(f"scripts/kafka stop failed (exit {result.returncode}):\n{result.stderr}")

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): its sockets stay open but nothing answers, as when it hangs.

        Returns once every thread of the broker is stopped: a thread the signal has not reached yet
        (on a busy machine, one waiting for a CPU) could still answer a request sent after this.
        """
        pid = self._pid()
        os.kill(pid, signal.SIGSTOP)
        self._paused = True
        if not processes.wait_until(lambda: _all_threads_stopped(pid), scaled(10), interval=0.01):
            raise RuntimeError(f"Kafka (pid {pid}) did not stop within {scaled(10)} s of SIGSTOP")

    def resume(self) -> None:
        """Let a paused broker go on (SIGCONT)."""
        os.kill(self._pid(), signal.SIGCONT)
        self._paused = False

    def _pid(self) -> int:
        return int(self.pid_file.read_text().strip())

    def _run(self, command: str, *args: str, within: float) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [sys.executable, str(SCRIPT), command, "--dir", str(self.dir), *args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=within,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise KafkaUnavailable(f"scripts/kafka {command}: {error}") from None


def kafka_required() -> bool:
    """Whether a Kafka that cannot start fails the run (CI) instead of skipping the Kafka tests."""
    return os.environ.get("MINIMESS_REQUIRE_KAFKA", "") == "1"


def kafka_unavailable(reason: str) -> NoReturn:
    """Fail (MINIMESS_REQUIRE_KAFKA=1) or skip the test that needs Kafka, with the reason."""
    if kafka_required():
        pytest.fail(f"Kafka is required (MINIMESS_REQUIRE_KAFKA=1) but cannot start: {reason}")
    pytest.skip(f"Kafka cannot start here (set MINIMESS_REQUIRE_KAFKA=1 to fail instead): {reason}")


def fresh_kafka_topic() -> str:
    """A Kafka topic of the test's own, so that no test reads another's records."""
    return f"minimess-test-{uuid.uuid4().hex}"


def kafka_serve_args(kafka: KafkaProcess, topic: str, node: str, partitions: int = 3) -> tuple[str, ...]:
    """`minimess serve` options for a server on `kafka`'s bus, named `node`, with no rate limit or ticks."""
    return (
        "--broker", "kafka",
        "--kafka-bootstrap", kafka.bootstrap,
        "--kafka-topic", topic,
        "--kafka-partitions", str(partitions),
        "--rate-limit", "0",
        "--tick", "0",
        "--node-id", node,
    )  # fmt: skip


def _all_threads_stopped(pid: int) -> bool:
    """Whether the kernel shows every thread of `pid` stopped (state T), as after SIGSTOP."""
    states = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            # The state follows the command name, which is in parentheses and may hold spaces.
            states.append(stat.read_text().rpartition(")")[2].split()[0])
        except (OSError, IndexError):
            continue  # a thread that ended meanwhile
    return bool(states) and all(state in ("T", "t") for state in states)
