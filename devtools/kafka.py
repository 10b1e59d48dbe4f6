"""A local single-node Apache Kafka (KRaft) for development and CI: fetching, starting, stopping it."""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from devtools import commands
from devtools.commands import Command, Failure
from devtools.processes import (
    HOST,
    alive,
    command_line,
    free_port,
    has_proc,
    last_lines,
    launch,
    port_free,
    terminate,
    wait_until,
)

REPO = Path(__file__).resolve().parent.parent
POM = REPO / "scripts" / "kafka-pom.xml"
NODE_ID = 1
DEFAULT_PORT = 9092
SASL_LISTENER = "SASL_PLAINTEXT"
MIN_JAVA = 17

# --- fetch -------------------------------------------------------------------------------------


def kafka_version() -> str:
    """The Kafka version pinned in the POM, so that the version lives in one place."""
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ET.parse(POM).findtext("m:properties/m:kafka.version", namespaces=namespace)
    if not version:
        raise Failure(f"no <kafka.version> property in {POM}")
    return version.strip()


def cache_dir() -> Path:
    root = os.environ.get("MINIMESS_KAFKA_CACHE") or Path.home() / ".cache" / "minimess"
    return Path(root).expanduser().resolve() / f"kafka-{kafka_version()}"


def pom_digest() -> str:
    # Stored beside the jars: a POM change that keeps the Kafka version (a logging jar, say)
    # must still refresh the cache.
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def cached_libs() -> Path | None:
    libs = cache_dir() / "libs"
    stamp = cache_dir() / "pom.sha256"
    if libs.is_dir() and stamp.is_file() and stamp.read_text().strip() == pom_digest():
        return libs
    return None


def fetch() -> Path:
    """The folder of the pinned Kafka's runtime jars, downloading them with Maven when not cached."""
    libs = cached_libs()
    if libs:
        return libs
    mvn = shutil.which("mvn")
    if not mvn:
        raise Failure("mvn not found: Maven is needed to fetch Kafka (e.g. apt-get install maven)")
    target = cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    say(f"fetching Kafka {kafka_version()} and its dependencies from Maven Central into {target}")
    # Copied into a scratch folder first and renamed at the end, so an interrupted fetch never
    # leaves a half-filled libs/ that would later pass for a complete one.
    scratch = Path(tempfile.mkdtemp(prefix="libs-", dir=target))
    try:
        result = subprocess.run(
            [
                mvn,
                "--batch-mode",
                "--quiet",
                "-Dstyle.color=never",
                "--file",
                str(POM),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={scratch}",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            output = last_lines(result.stdout + result.stderr, 30)
            raise Failure(f"mvn could not fetch Kafka {kafka_version()}:\n{output}")
        shutil.rmtree(target / "libs", ignore_errors=True)
        scratch.rename(target / "libs")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    (target / "pom.sha256").write_text(pom_digest() + "\n")
    return target / "libs"


# --- java --------------------------------------------------------------------------------------


def find_java() -> str:
    """A java binary of version 17 or later: JAVA_HOME's, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        where = f"in JAVA_HOME ({java_home})" if java_home else "on PATH"
        raise Failure(f"no java {where}: Kafka {kafka_version()} needs Java {MIN_JAVA} or later")
    output = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    # Java 9 and later say `version "17.0.15"`; older ones `version "1.8.0_452"`.
    match = re.search(r'version "(?:1\.)?(\d+)', output)
    major = int(match.group(1)) if match else 0
    if major < MIN_JAVA:
        raise Failure(
            f"{java} is Java {major or '?'}; Kafka {kafka_version()} needs Java {MIN_JAVA} or later"
        )
    return java


# --- the files in --dir ------------------------------------------------------------------------


class Layout:
    """Where one broker keeps its files."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.server_properties = directory / "server.properties"
        self.log4j_properties = directory / "log4j2.properties"
        self.pid_file = directory / "kafka.pid"
        self.log = directory / "kafka.log"
        self.data = directory / "data"

    def formatted(self) -> bool:
        return (self.data / "meta.properties").is_file()

    def configured_port(self, listener: str) -> int | None:
        """The port a listener (PLAINTEXT or CONTROLLER) had in the last written server.properties."""
        if not self.server_properties.is_file():
            return None
        match = re.search(
            rf"^listeners=.*\b{listener}://[^:,]+:(\d+)", self.server_properties.read_text(), re.MULTILINE
        )
        return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Sasl:
    """A SASL_PLAINTEXT listener beside PLAINTEXT: its port, its PLAIN users, and whether ACLs are checked."""

    port: int
    users: dict[str, str]
    acls: bool

    def properties(self) -> str:
        users = " ".join(f'user_{name}="{password}"' for name, password in self.users.items())
        text = f"""
# --sasl-user: the SASL_PLAINTEXT listener authenticates these users with PLAIN.
sasl.enabled.mechanisms=PLAIN
listener.name.{SASL_LISTENER.lower()}.plain.sasl.jaas.config=\\
  org.apache.kafka.common.security.plain.PlainLoginModule required {users};
"""
        if self.acls:
            text += """
# --acls: a request needs an ACL allowing it. The anonymous users of the PLAINTEXT and CONTROLLER
# listeners are super users: the broker talks to its controller as one, and so does the readiness probe.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
"""
        return text


def sasl_user(text: str) -> tuple[str, str]:
    """NAME=PASSWORD, in characters that need no quoting in the broker's JAAS configuration."""
    name, _, password = text.partition("=")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name) or not re.fullmatch(r'[^\s"\\]+', password):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not NAME=PASSWORD (NAME of letters, digits and '._-'; "
            "PASSWORD without spaces, quotes or backslashes)"
        )
    return name, password


def write_server_properties(
    layout: Layout, port: int, controller_port: int, sasl: Sasl | None = None
) -> None:
    listeners = f"PLAINTEXT://{HOST}:{port}"
    protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    if sasl is not None:
        listeners += f",{SASL_LISTENER}://{HOST}:{sasl.port}"
        protocols += f",{SASL_LISTENER}:{SASL_LISTENER}"
    layout.server_properties.write_text(
        f"""\
# Written by scripts/kafka on every start; edits here do not last.
process.roles=broker,controller
node.id={NODE_ID}
listeners={listeners},CONTROLLER://{HOST}:{controller_port}
advertised.listeners={listeners}
listener.security.protocol.map={protocols}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
# A dynamic quorum of one, formatted with --standalone.
controller.quorum.bootstrap.servers={HOST}:{controller_port}
log.dirs={layout.data}

# One node: every internal topic has one replica, or creating it would wait forever for more.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# One partition each instead of 50: the first consumer group then starts in milliseconds.
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.num.partitions=1
num.partitions=1

# Topics are created on purpose; a misspelt name must fail, not make a new topic.
auto.create.topics.enable=false
# Consumers join a group at once instead of after the 3 s default wait for more members.
group.initial.rebalance.delay.ms=0
# After a SIGKILL the restarted broker may not register until its old session expires (9 s by
# default). Heartbeats never leave this JVM, so a short session costs nothing.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000

# Development data: small segments, kept for a day or 256 MiB per partition.
log.segment.bytes=16777216
log.retention.hours=24
log.retention.bytes=268435456
# Fewer threads than the defaults (3 and 8): laptops and 2-core CI machines run this beside the tests.
num.network.threads=2
num.io.threads=4
"""
        + (sasl.properties() if sasl is not None else "")
    )


def write_log4j_properties(layout: Layout) -> None:
    level = os.environ.get("MINIMESS_KAFKA_LOG_LEVEL", "WARN").upper()
    layout.log4j_properties.write_text(
        f"""\
# Written by scripts/kafka on every start; MINIMESS_KAFKA_LOG_LEVEL sets the level (default WARN).
status = warn
# Kafka logs its own shutdown from a shutdown hook; log4j's hook must not close the log first.
shutdownHook = disable
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = out
# Kept at INFO whatever the level: the line that says the server started (or why it stopped).
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""
    )


def format_storage(java: str, libs: Path, layout: Layout) -> None:
    """Format data/ for a new single-node cluster; only ever done once per --dir."""
    result = subprocess.run(
        [
            *java_command(java, libs, layout),
            "kafka.tools.StorageTool",
            "format",
            "--config",
            str(layout.server_properties),
            "--cluster-id",
            new_cluster_id(),
            "--standalone",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise Failure(f"formatting {layout.data} failed:\n{last_lines(result.stdout + result.stderr, 30)}")


def new_cluster_id() -> str:
    """A Kafka Uuid string (16 random bytes, URL-safe base64), made here to save a JVM start."""
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        # Kafka refuses ids that start with "-": they would read as a command-line option.
        if not cluster_id.startswith("-"):
            return cluster_id


def java_command(java: str, libs: Path, layout: Layout) -> list[str]:
    return [
        java,
        "-Xmx512m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={layout.log4j_properties}",
        # Last, so that they win: e.g. -Xmx1g, or -XX:TieredStopAtLevel=1 to start about a
        # third faster at the cost of slower code once running (not the default: benchmarks).
        *shlex.split(os.environ.get("MINIMESS_KAFKA_JAVA_OPTS", "")),
        "-cp",
        f"{libs}/*",
    ]


# --- the process -------------------------------------------------------------------------------


def running_pid(layout: Layout) -> int | None:
    """The pid of this --dir's broker when it runs; None when not (no pid file, or a stale one)."""
    try:
        pid = int(layout.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if not alive(pid):
        return None
    words = command_line(pid)
    if words is None:
        return None if has_proc() else pid
    # After a SIGKILL or a reboot the pid may belong to an unrelated process by now.
    if "kafka.Kafka" in words and str(layout.server_properties) in words:
        return pid
    return None


def launch_broker(java: str, libs: Path, layout: Layout) -> subprocess.Popen[bytes]:
    return launch(
        [*java_command(java, libs, layout), "kafka.Kafka", str(layout.server_properties)],
        layout.log,
        pid_file=layout.pid_file,
        cwd=layout.dir,
    )


# --- readiness: one Kafka Metadata request -----------------------------------------------------


def serving_nodes(port: int, timeout: float = 2.0) -> list[int]:
    """The node ids that the broker on port lists as serving, from a Metadata v4 request.

    A listening socket proves little: Kafka binds its port long before it handles requests, and it
    lists a broker in Metadata only once the broker has registered with the controller and been
    unfenced, which is when topics can be created and written. v4 is the oldest version Kafka 4
    still serves (KIP-896).
    """
    client_id = b"scripts/kafka"
    request = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id  # Metadata v4, correlation 1
    request += struct.pack(">ib", 0, 0)  # no topics, no auto-creation
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", receive(sock, 4))
        response = receive(sock, size)
    # correlation id and throttle time, then the array of brokers
    (count,) = struct.unpack_from(">i", response, 8)
    offset, nodes = 12, []
    for _ in range(count):
        node_id, host_length = struct.unpack_from(">ih", response, offset)
        offset += 4 + 2 + host_length + 4  # node id, host, port
        (rack_length,) = struct.unpack_from(">h", response, offset)
        offset += 2 + max(rack_length, 0)
        nodes.append(node_id)
    return nodes


def receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        data += chunk
    return data


def serving(port: int) -> bool:
    try:
        return NODE_ID in serving_nodes(port)
    except (OSError, struct.error):
        return False


def wait_until_serving(port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    def exited() -> bool:
        return process is not None and process.poll() is not None

    if not wait_until(lambda: serving(port) or exited(), timeout, interval=0.2):
        raise Failure(f"Kafka did not serve on {HOST}:{port} within {timeout:g} s")
    # Set only when it exited before serving: `or` asks exited() only while it does not serve.
    if process is not None and process.returncode is not None:
        raise Failure(f"Kafka exited with status {process.returncode} while starting")


# --- commands ----------------------------------------------------------------------------------


def cmd_fetch(args: argparse.Namespace) -> int:
    print(fetch())
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    layout = Layout(args.dir)
    pid = running_pid(layout)
    if pid is not None:
        return already_running(layout, pid, args)
    if layout.pid_file.exists():
        say(f"removing the stale {layout.pid_file} (pid {layout.pid_file.read_text().strip()} is gone)")
        layout.pid_file.unlink()

    # Clients keep their bootstrap address across restarts of the same --dir.
    port = args.port if args.port is not None else layout.configured_port("PLAINTEXT") or DEFAULT_PORT
    port = port or free_port()
    controller_port = controller_port_for(args, layout, port)
    sasl = sasl_listener(args, layout, (port, controller_port))
    ports = [("port", port), ("controller port", controller_port)]
    for name, number in [*ports, *([("SASL port", sasl.port)] if sasl else [])]:
        if not port_free(number):
            raise Failure(f"{name} {number} on {HOST} is in use (by another Kafka?)")
    java = find_java()
    libs = fetch()
    layout.dir.mkdir(parents=True, exist_ok=True)
    write_server_properties(layout, port, controller_port, sasl)
    write_log4j_properties(layout)
    if not layout.formatted():
        say(f"formatting {layout.data} for a new cluster")
        format_storage(java, libs, layout)

    started = time.monotonic()
    process = launch_broker(java, libs, layout)
    try:
        wait_until_serving(port, args.timeout, process)
    except Failure as failure:
        if process.poll() is None:
            terminate([process.pid], 10)
        layout.pid_file.unlink(missing_ok=True)
        raise Failure(f"{failure}; last lines of {layout.log}:\n{last_lines(layout.log, 30)}") from None
    also = f", {SASL_LISTENER} on {HOST}:{sasl.port}" if sasl else ""
    say(
        f"Kafka {kafka_version()} serving on {HOST}:{port}{also} after {time.monotonic() - started:.1f} s "
        f"(pid {process.pid}, log {layout.log})"
    )
    print(f"{HOST}:{port}")
    return 0


def controller_port_for(args: argparse.Namespace, layout: Layout, port: int) -> int:
    """--controller-port; by default the one --dir had last, else a free one; 0 picks a free one.

    A formatted --dir may change it: the single voter updates its own endpoint in the metadata when
    it starts (Kafka 4.4; tests/integration/test_kafka_script.py holds it to that).
    """
    if args.controller_port is not None and args.controller_port == port:
        raise Failure(f"--controller-port {port} is the PLAINTEXT port too; pick another")
    controller_port: int | None = args.controller_port
    if controller_port is None:
        controller_port = layout.configured_port("CONTROLLER")
    # A remembered port that --port now takes gives way: only the port asked for is kept.
    while not controller_port or controller_port == port:
        controller_port = free_port()
    return controller_port


def sasl_listener(args: argparse.Namespace, layout: Layout, taken: tuple[int, ...]) -> Sasl | None:
    """The SASL_PLAINTEXT listener that --sasl-user asks for, on the port --dir had last unless told."""
    if not args.sasl_user:
        if args.sasl_port is not None or args.acls:
            raise Failure("--sasl-port and --acls need at least one --sasl-user")
        return None
    port = args.sasl_port or layout.configured_port(SASL_LISTENER)
    while port is None or port in taken:
        if port in taken and args.sasl_port:
            raise Failure(f"--sasl-port {port} is taken by another listener of {layout.dir}")
        port = free_port()
    return Sasl(port, dict(args.sasl_user), args.acls)


def already_running(layout: Layout, pid: int, args: argparse.Namespace) -> int:
    port = layout.configured_port("PLAINTEXT")
    if port is None:
        raise Failure(f"Kafka runs (pid {pid}) but {layout.server_properties} names no PLAINTEXT port")
    if args.port not in (None, 0, port):
        raise Failure(
            f"Kafka already runs from {layout.dir} on {HOST}:{port}; stop it to use port {args.port}"
        )
    controller_port = layout.configured_port("CONTROLLER")
    if args.controller_port not in (None, 0, controller_port):
        raise Failure(
            f"Kafka already runs from {layout.dir} with its controller on {HOST}:{controller_port}; "
            f"stop it to use controller port {args.controller_port}"
        )
    say(f"Kafka already running on {HOST}:{port} (pid {pid})")
    # A start that is still under way elsewhere counts as running only once it serves.
    wait_until_serving(port, args.timeout)
    print(f"{HOST}:{port}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    layout = Layout(args.dir)
    pid = running_pid(layout)
    if pid is None:
        say(f"Kafka is not running from {layout.dir}")
    else:
        started = time.monotonic()
        killed = bool(terminate([pid], args.timeout))
        how = f"killed after {args.timeout:g} s" if killed else "stopped"
        say(f"Kafka {how} (pid {pid}) in {time.monotonic() - started:.1f} s")
    layout.pid_file.unlink(missing_ok=True)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    layout = Layout(args.dir)
    pid = running_pid(layout)
    if pid is None:
        print(f"Kafka is not running from {layout.dir}")
        return 1
    port = layout.configured_port("PLAINTEXT")
    state = "serving" if port is not None and serving(port) else "running but not serving (yet?)"
    print(f"Kafka {state} on {HOST}:{port} (pid {pid}, dir {layout.dir}, log {layout.log})")
    return 0


# --- small things ------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"kafka: {message}", file=sys.stderr, flush=True)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/kafka", description="A local single-node Kafka for development and CI."
    )
    subcommands = parser.add_subparsers(dest="command", required=True)
    subcommands.add_parser("fetch", help="download the pinned Kafka into the cache").set_defaults(
        run=cmd_fetch
    )

    def command(name: str, run: Command, help_text: str) -> argparse.ArgumentParser:
        sub = subcommands.add_parser(name, help=help_text)
        sub.set_defaults(run=run)
        sub.add_argument(
            "--dir",
            type=lambda text: Path(text).resolve(),
            default=REPO / "var" / "kafka",
            help="its configuration, data, pid and log (default: var/kafka in the repository)",
        )
        return sub

    start = command("start", cmd_start, "start in the background and wait until it serves")
    start.add_argument(
        "--port",
        type=int,
        help=f"the PLAINTEXT port (default: the one --dir had last, else {DEFAULT_PORT}; 0: any free port)",
    )
    start.add_argument(
        "--controller-port",
        type=int,
        help="the CONTROLLER port, which only Kafka itself uses "
        "(default: the one --dir had last, else any free port; 0: any free port)",
    )
    start.add_argument(
        "--timeout", type=float, default=60, help="seconds to wait until it serves (default 60)"
    )
    start.add_argument(
        "--sasl-user",
        type=sasl_user,
        action="append",
        metavar="NAME=PASSWORD",
        help=f"also listen with {SASL_LISTENER}, authenticating this user with PLAIN (repeatable)",
    )
    start.add_argument(
        "--sasl-port",
        type=int,
        help=f"the {SASL_LISTENER} port (default: the one --dir had last, else any free port)",
    )
    start.add_argument(
        "--acls",
        action="store_true",
        help="check ACLs (StandardAuthorizer): SASL users may do only what ACLs allow; "
        "anonymous PLAINTEXT and controller connections are super users",
    )
    stop = command("stop", cmd_stop, "stop: SIGTERM, then SIGKILL after --timeout")
    stop.add_argument(
        "--timeout", type=float, default=30, help="seconds to wait before a SIGKILL (default 30)"
    )
    command("status", cmd_status, "say whether it runs (exit 0) or not (exit 1)")
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    return commands.run("kafka", parse(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
