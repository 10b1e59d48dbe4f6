"""A local minimess cluster without Docker: Kafka, N servers, a proxy and Prometheus: up (or up again,
starting what is down), restart, down, status."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from devtools import commands, kafka, prometheus, templates
from devtools.commands import Command, Failure
from devtools.plan import Plan, differences, port_of
from devtools.processes import (
    HOST,
    alive,
    command_line,
    find_executable,
    free_ports,
    has_proc,
    http_status,
    last_lines,
    launch,
    port_free,
    terminate,
)
from devtools.templates import PROXIES

REPO = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = REPO / "scripts" / "kafka"
DEFAULT_PORT = 8080
DEFAULT_SERVERS = 2
# Not Prometheus's own 9090: Debian's package starts a system-wide Prometheus there.
DEFAULT_PROMETHEUS_PORT = 9190
# A proxy stops at once on SIGTERM (both take it as a fast stop); a server first drains its clients
# for up to its --shutdown-timeout (10 s).
PROXY_STOP_TIMEOUT = 5.0
# Prometheus closes its storage on SIGTERM: a moment.
PROMETHEUS_STOP_TIMEOUT = 15.0
SERVER_STOP_TIMEOUT = 15.0

# --- the files in --dir ------------------------------------------------------------------------


class Layout:
    """Where one cluster keeps its files."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.plan_file = directory / "cluster.json"
        # scripts/kafka's --dir.
        self.kafka = kafka.Layout(directory / "kafka")

    def pid_file(self, name: str) -> Path:
        return self.dir / f"{name}.pid"

    def config(self, proxy: str) -> Path:
        return self.dir / templates.config_name(proxy)

    @property
    def prometheus_config(self) -> Path:
        return self.dir / "prometheus.yml"

    @property
    def prometheus_data(self) -> Path:
        # Kept across `up`s, as Kafka's is: instances are named by node id, so graphs go on.
        return self.dir / "prometheus-data"

    @property
    def prometheus_token(self) -> Path:
        return self.dir / "prometheus-token"

    def log(self, name: str) -> Path:
        if name == "kafka":
            return self.kafka.log
        if name == "nginx":
            return self.dir / "nginx-error.log"
        return self.dir / f"{name}.log"

    def read_plan(self) -> Plan | None:
        try:
            return Plan(**json.loads(self.plan_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def write_plan(self, plan: Plan) -> None:
        self.plan_file.write_text(json.dumps(asdict(plan), indent=2) + "\n")


# --- components and their processes ------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    name: str  # kafka, s1, s2, ..., haproxy or nginx, prometheus
    kind: str  # kafka, server, proxy or prometheus
    address: str
    pid_file: Path
    # Words its command line must hold: after a crash or a reboot the pid in the file may belong to
    # an unrelated process by now.
    marks: tuple[str, ...] = ()


def components(layout: Layout, plan: Plan | None) -> list[Component]:
    """Every component of the cluster in --dir, in start order; from the plan, else the pid files."""
    if plan is None:
        # cluster.json is gone (deleted by hand?): down still finds what the pid files name.
        servers = {path.stem: "?" for path in sorted(layout.dir.glob("s[0-9]*.pid"))}
        proxies = [name for name in PROXIES if layout.pid_file(name).exists()]
        scraper = "?" if layout.pid_file("prometheus").exists() else ""
        plan = Plan(
            proxy=proxies[0] if proxies else "", public="?", kafka="?", servers=servers, prometheus=scraper
        )
    found = [Component("kafka", "kafka", plan.kafka, layout.kafka.pid_file)]
    for name, address in plan.servers.items():
        marks: tuple[str, ...] = ("-m minimess serve", f"--node-id {name}")
        if address != "?":
            marks += (f"--port {address.rpartition(':')[2]}",)
        found.append(Component(name, "server", address, layout.pid_file(name), marks))
    if plan.proxy:
        found.append(proxy_component(layout, plan.proxy, plan.public))
    if plan.prometheus:
        found.append(prometheus_component(layout, plan.prometheus))
    return found


def proxy_component(layout: Layout, proxy: str, address: str) -> Component:
    # Its config's path is on its command line, and names this --dir.
    return Component(proxy, "proxy", address, layout.pid_file(proxy), (str(layout.config(proxy)),))


def prometheus_component(layout: Layout, address: str) -> Component:
    # Its config's path is on its command line, and names this --dir.
    marks = (f"--config.file={layout.prometheus_config}",)
    return Component("prometheus", "prometheus", address, layout.pid_file("prometheus"), marks)


def running_pid(component: Component, layout: Layout) -> int | None:
    """The component's pid when it runs; None when not (no pid file, or a stale one)."""
    if component.kind == "kafka":
        # devtools.kafka owns Kafka, and knows how to tell its JVM from any other process.
        return kafka.running_pid(layout.kafka)
    try:
        pid = int(component.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if not alive(pid):
        return None
    words = command_line(pid)
    if words is None:
        return None if has_proc() else pid  # no /proc (macOS): trust the file
    cmdline = " ".join(words)
    # Padded, so that --port 80 does not match --port 8080. nginx rewrites its title into one word.
    return pid if all(f" {mark} " in f" {cmdline} " for mark in component.marks) else None


def orphans(pid_file: Path, proxy: str) -> list[int]:
    """The proxy's processes left running after its leader died: nginx's workers outlive a SIGKILL
    of their master and keep serving the public port. Found by their process group (the leader's
    pid, from `start_new_session`) and their name (Linux only)."""
    try:
        group = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return []
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _parent, pgid = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue
        pid = int(stat.parent.name)
        if int(pgid) == group and state != "Z" and " ".join(command_line(pid) or []).startswith(proxy):
            found.append(pid)
    return found


def stop_processes(names: dict[int, str], timeout: float) -> None:
    """SIGTERM all at once (servers drain in parallel), SIGKILL whatever still runs after timeout."""
    started = time.monotonic()
    killed = terminate(names, timeout)
    for pid, name in names.items():
        if pid in killed:
            say(f"{name} (pid {pid}) killed after {timeout:g} s")
        else:
            say(f"{name} stopped (pid {pid}) in {time.monotonic() - started:.1f} s")


def kafka_script(command: str, layout: Layout, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(KAFKA_SCRIPT), command, "--dir", str(layout.kafka.dir), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )


# --- up ------------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    layout = Layout(args.dir)
    plan = layout.read_plan()
    found = components(layout, plan)
    pids = {component.name: running_pid(component, layout) for component in found}
    if any(pids.values()):
        return up_again(layout, plan, args, [c for c in found if pids[c.name] is None])
    proxy = args.proxy or "haproxy"
    port = args.port if args.port is not None else DEFAULT_PORT
    count = args.servers if args.servers is not None else DEFAULT_SERVERS
    if count < 1:
        raise Failure("--servers must be at least 1")
    # Everything that can be known wrong is checked before Kafka takes its seconds to start.
    binary = find_binary(proxy)
    python = project_python()
    scraper = find_prometheus()
    layout.dir.mkdir(parents=True, exist_ok=True)
    # Nothing of this --dir runs but maybe what a killed nginx master left behind, holding the port.
    stop_proxies(layout)
    for stale in layout.dir.glob("*.pid"):
        stale.unlink()
    remove_other_proxies(layout, proxy)
    if not port_free(port):
        raise Failure(f"port {port} on {HOST} is in use; pick another with --port")
    prometheus_port = prometheus_port_for(args) if scraper is not None else None

    started = time.monotonic()
    try:
        bootstrap = start_kafka(layout, args.timeout, args.kafka_port or 0, args.kafka_controller_port)
        servers = {f"s{n}": f"{HOST}:{port}" for n, port in enumerate(free_ports(count), 1)}
        scraped_on = "" if prometheus_port is None else f"{HOST}:{prometheus_port}"
        plan = Plan(proxy, f"{HOST}:{port}", bootstrap, servers, prometheus=scraped_on)
        layout.write_plan(plan)
        start_servers(layout, plan, python, args.timeout)
        start_proxy(layout, plan, binary, args.timeout)
        if scraper is not None:
            start_prometheus(layout, plan, scraper, args.timeout)
    except BaseException:
        # A half-started cluster is of no use, but its logs are: stop the processes, keep the files.
        say(f"stopping what had started; the logs stay in {layout.dir}")
        stop_all(layout)
        raise
    say(f"up in {time.monotonic() - started:.1f} s; logs in {layout.dir}")
    print_components(layout, plan)
    return 0


def up_again(layout: Layout, plan: Plan | None, args: argparse.Namespace, down: list[Component]) -> int:
    """`up` on a cluster of which something runs: start what is down when the options ask for the
    cluster that runs, else a Failure that says what differs."""
    if plan is None:
        raise Failure(
            f"the cluster in {layout.dir} is partly up (no cluster.json); run `scripts/cluster down` first"
        )
    differ = differences(plan, args, layout.kafka.configured_port("CONTROLLER"))
    if differ:
        missing = f"; {', '.join(c.name for c in down)} not running" if down else ""
        # Without the options that differ, `up` starts just what is down.
        how = "; `scripts/cluster up` without them starts what is down" if down else ""
        raise Failure(
            f"the cluster in {layout.dir} runs with {plan.proxy} on {plan.public} and "
            f"{servers(len(plan.servers))}{missing}, not {', '.join(differ)}; "
            f"run `scripts/cluster down` first to change it{how}"
        )
    if down:
        names = [component.name for component in down]
        say(f"{', '.join(names)} not running; starting {'it' if len(names) == 1 else 'them'} again")
        start_again(layout, plan, down, args.timeout)
    else:
        say(f"already up from {layout.dir}")
    print_components(layout, plan)
    return 0


def start_again(layout: Layout, plan: Plan, down: list[Component], timeout: float) -> None:
    """Start the components that are down as the plan has them (each server on its old port, so the
    proxy's config holds), in start order; what runs is left alone."""
    names = [component.name for component in down]
    kinds = {component.kind for component in down}
    # As for a first `up`: everything that can be known wrong before Kafka takes its seconds.
    python = project_python() if "server" in kinds else None
    binary = find_binary(plan.proxy) if "proxy" in kinds else None
    scraper = find_prometheus() if "prometheus" in kinds else None
    if binary is not None:
        stop_proxies(layout)  # a killed nginx master's workers still hold the public port
    for component in down:
        if component.kind in ("server", "proxy", "prometheus") and not port_free(
            port_of(component.address) or 0
        ):
            raise Failure(
                f"{component.name}'s port {component.address} is in use by another process; "
                "`scripts/cluster down` then `up` starts the cluster afresh"
            )
    started = time.monotonic()
    if "kafka" in kinds:
        # Its old port: the servers reconnect to the address they were given.
        bootstrap = start_kafka(layout, timeout, port_of(plan.kafka) or 0, None)
        if bootstrap != plan.kafka:
            raise Failure(f"Kafka started on {bootstrap}, not {plan.kafka} where the servers look for it")
    if python is not None:
        start_servers(layout, plan, python, timeout, [c.name for c in down if c.kind == "server"])
    if binary is not None:
        start_proxy(layout, plan, binary, timeout)
    if scraper is not None:
        start_prometheus(layout, plan, scraper, timeout)
    say(f"started {', '.join(names)} again in {time.monotonic() - started:.1f} s")


def remove_other_proxies(layout: Layout, proxy: str) -> None:
    """Remove what a run of another proxy left in --dir, so that it holds only this proxy's files."""
    for other in PROXIES:
        if other == proxy:
            continue
        for name in templates.files(other):
            path = layout.dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


def find_binary(proxy: str) -> str:
    binary = find_executable(proxy)
    if binary is None:
        raise Failure(f"{proxy} not found: install it (Debian, Ubuntu: sudo apt-get install {proxy})")
    return binary


def find_prometheus() -> str | None:
    """Prometheus's path; None, after saying how to get it, when it is not installed: a cluster
    without it still serves."""
    binary = find_executable(prometheus.EXECUTABLE)
    if binary is None:
        say(f"prometheus not found, so nothing scrapes the servers: install it ({prometheus.INSTALL_HINT})")
    return binary


def prometheus_port_for(args: argparse.Namespace) -> int:
    """--prometheus-port, checked free now; 0 picks a free one."""
    port = args.prometheus_port if args.prometheus_port is not None else DEFAULT_PROMETHEUS_PORT
    if port == 0:
        return free_ports(1)[0]
    if not port_free(port):
        raise Failure(
            f"port {port} on {HOST} is in use; pick another with --prometheus-port (0: any free one)"
        )
    return port


def project_python() -> Path:
    venv = Path(os.environ.get("UV_PROJECT_ENVIRONMENT") or ".venv")
    python = (REPO / venv / "bin" / "python").absolute()  # an absolute venv stays as it is
    if not python.exists():
        raise Failure(f"no {python}: run `uv sync` in {REPO} first")
    return python


def start_kafka(layout: Layout, timeout: float, port: int, controller_port: int | None) -> str:
    """Start Kafka in layout.kafka.dir on port (0: a free one, so that a Kafka of one's own on 9092
    is no obstacle) and controller_port (None: the one its --dir had last); its bootstrap address."""
    started = time.monotonic()
    controller = ["--controller-port", str(controller_port)] if controller_port is not None else []
    result = kafka_script("start", layout, "--port", str(port), *controller, "--timeout", f"{timeout:g}")
    if result.returncode != 0:
        # scripts/kafka's message already names the reason and ends with its log's last lines.
        reason = result.stderr.rpartition("kafka: error: ")[2].strip() or f"exit status {result.returncode}"
        raise Failure(f"Kafka did not start: {reason}")
    bootstrap = result.stdout.strip()
    say(f"kafka serving on {bootstrap} after {time.monotonic() - started:.1f} s")
    return bootstrap


def start_servers(
    layout: Layout, plan: Plan, python: Path, timeout: float, names: Sequence[str] | None = None
) -> None:
    """Start the servers named (default: all) at once, then wait until each answers /readyz with 200
    (Kafka reached)."""
    started = time.monotonic()
    chosen = {name: address for name, address in plan.servers.items() if names is None or name in names}
    processes = {}
    for name, address in chosen.items():
        command = [
            str(python), "-m", "minimess", "serve",
            "--host", HOST,
            "--port", address.rpartition(":")[2],
            "--node-id", name,
            "--broker", "kafka",
            "--kafka-bootstrap", plan.kafka,
            # The proxy connects from loopback; only its X-Forwarded-For names the real client.
            "--trusted-proxy", HOST,
            "--log-format", "json",
        ]  # fmt: skip
        processes[name] = launch(command, layout.log(name), pid_file=layout.pid_file(name))
    waiting = dict(chosen)
    deadline = started + timeout
    while waiting:
        for name, address in list(waiting.items()):
            if processes[name].poll() is not None:
                raise Failure(
                    f"{name} exited with status {processes[name].returncode} while starting; "
                    f"last lines of {layout.log(name)}:\n{last_lines(layout.log(name))}"
                )
            if http_status(f"http://{address}/readyz") == 200:
                del waiting[name]
        if not waiting:
            break
        if time.monotonic() > deadline:
            name = next(iter(waiting))
            raise Failure(
                f"{name} did not answer /readyz with 200 within {timeout:g} s; "
                f"last lines of {layout.log(name)}:\n{last_lines(layout.log(name))}"
            )
        time.sleep(0.1)
    say(f"{', '.join(chosen)} ready after {time.monotonic() - started:.1f} s")


def start_proxy(layout: Layout, plan: Plan, binary: str, timeout: float) -> None:
    """Render the proxy's config, start it, and wait until GET /healthz through it answers 200."""
    started = time.monotonic()
    config = layout.config(plan.proxy)
    host, _, port = plan.public.rpartition(":")
    try:
        config.write_text(templates.render(plan.proxy, layout.dir, host, int(port), plan.servers))
    except ValueError as error:
        raise Failure(str(error)) from None
    log = layout.log(plan.proxy)
    if plan.proxy == "nginx":
        log.unlink(missing_ok=True)
        (layout.dir / "nginx-access.log").unlink(missing_ok=True)
    command = templates.prepare(plan.proxy, binary, config, layout.dir, log)
    # nginx writes to its error log itself too: our descriptor appends, or the two overwrite each other.
    process = launch(command, log, pid_file=layout.pid_file(plan.proxy), append=plan.proxy == "nginx")
    wait_until_answering(plan.proxy, process, f"http://{plan.public}/healthz", log, started + timeout)
    say(f"{plan.proxy} serving on {plan.public} after {time.monotonic() - started:.1f} s")


def wait_until_answering(
    name: str, process: subprocess.Popen[bytes], url: str, log: Path, deadline: float
) -> None:
    """Return once `url` answers 200; Failure, with the end of `log`, if `process` exits or time runs out."""
    while http_status(url) != 200:
        if process.poll() is not None:
            raise Failure(
                f"{name} exited with status {process.returncode} while starting; "
                f"last lines of {log}:\n{last_lines(log)}"
            )
        if time.monotonic() > deadline:
            raise Failure(
                f"{name} did not answer {url} with 200 in time; last lines of {log}:\n{last_lines(log)}"
            )
        time.sleep(0.05)


def start_prometheus(layout: Layout, plan: Plan, binary: str, timeout: float) -> None:
    """Render Prometheus's config for the servers, start it, and wait until it says it is ready."""
    started = time.monotonic()
    # The servers are started with the same environment: a MINIMESS_ADMIN_TOKEN guards their /metrics.
    token = os.environ.get("MINIMESS_ADMIN_TOKEN")
    token_file = layout.prometheus_token
    token_file.unlink(missing_ok=True)
    if token:
        token_file.touch(mode=0o600)
        token_file.write_text(token)
    config = prometheus.render(plan.servers, token_file=token_file if token else None)
    layout.prometheus_config.write_text(config)
    layout.prometheus_data.mkdir(exist_ok=True)
    log = layout.log("prometheus")
    command = prometheus.command(binary, layout.prometheus_config, layout.prometheus_data, plan.prometheus)
    process = launch(command, log, pid_file=layout.pid_file("prometheus"))
    ready = f"http://{plan.prometheus}{prometheus.READY_PATH}"
    wait_until_answering("prometheus", process, ready, log, started + timeout)
    say(f"prometheus serving on {plan.prometheus} after {time.monotonic() - started:.1f} s")


# --- down and status -----------------------------------------------------------------------------


def cmd_down(args: argparse.Namespace) -> int:
    layout = Layout(args.dir)
    if not layout.dir.is_dir():
        say(f"nothing to stop: no {layout.dir}")
        return 0
    stop_all(layout, args.timeout)
    return 0


def stop_all(layout: Layout, server_timeout: float = SERVER_STOP_TIMEOUT) -> None:
    """Stop Prometheus (or it would scrape the servers while they go), the proxy (clients leave at
    once), then the servers, then Kafka; whatever runs of them."""
    stop_prometheus(layout)
    stop_proxies(layout)
    servers = [c for c in components(layout, layout.read_plan()) if c.kind == "server"]
    pids = {server.name: running_pid(server, layout) for server in servers}
    stop_processes({pid: name for name, pid in pids.items() if pid is not None}, server_timeout)
    for server in servers:
        server.pid_file.unlink(missing_ok=True)
    stop_kafka(layout)
    layout.plan_file.unlink(missing_ok=True)


def stop_proxies(layout: Layout) -> None:
    # Both: a partial `up` with the other proxy may have left one behind.
    for name in PROXIES:
        component = proxy_component(layout, name, "?")
        pid = running_pid(component, layout)
        if pid is not None:
            stop_processes({pid: name}, PROXY_STOP_TIMEOUT)  # its whole group, workers too
        else:
            left = dict.fromkeys(orphans(component.pid_file, name), f"{name} (left over)")
            stop_processes(left, PROXY_STOP_TIMEOUT)
        component.pid_file.unlink(missing_ok=True)


def stop_prometheus(layout: Layout) -> None:
    pid = running_pid(prometheus_component(layout, "?"), layout)
    if pid is not None:
        stop_processes({pid: "prometheus"}, PROMETHEUS_STOP_TIMEOUT)
    layout.pid_file("prometheus").unlink(missing_ok=True)


def stop_kafka(layout: Layout) -> None:
    if not layout.kafka.dir.is_dir():
        return
    result = kafka_script("stop", layout)
    message = result.stderr.strip().removeprefix("kafka: ")
    if result.returncode != 0:
        raise Failure(f"scripts/kafka stop failed: {message}")
    say(message[:1].lower() + message[1:])


def cmd_restart(args: argparse.Namespace) -> int:
    layout = Layout(args.dir)
    plan = layout.read_plan()
    if plan is None:
        raise Failure(f"no cluster in {layout.dir} (no cluster.json): `scripts/cluster up` starts one")
    found = {component.name: component for component in components(layout, plan)}
    unknown = [name for name in args.names if name not in found]
    if unknown:
        raise Failure(f"no {', '.join(unknown)} in the cluster in {layout.dir}; it has {', '.join(found)}")
    chosen = {found[name] for name in args.names}
    # In stop order, as down stops them: whatever scrapes or forwards to a server goes before it.
    if any(component.kind == "prometheus" for component in chosen):
        stop_prometheus(layout)
    if any(component.kind == "proxy" for component in chosen):
        stop_proxies(layout)
    pids = {
        component.name: running_pid(component, layout) for component in chosen if component.kind == "server"
    }
    stop_processes({pid: name for name, pid in pids.items() if pid is not None}, args.timeout)
    if any(component.kind == "kafka" for component in chosen):
        stop_kafka(layout)
    down = [component for component in found.values() if running_pid(component, layout) is None]
    start_again(layout, plan, down, args.timeout)
    print_components(layout, plan)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    layout = Layout(args.dir)
    plan = layout.read_plan()
    if plan is None:
        print(f"no cluster in {layout.dir} (no cluster.json): `scripts/cluster up` starts one")
        return 1
    all_run = True
    for component in components(layout, plan):
        pid = running_pid(component, layout)
        all_run = all_run and pid is not None
        state = "running" if pid is not None else "not running"
        ready_path = {"server": "/readyz", "prometheus": prometheus.READY_PATH}.get(component.kind)
        if ready_path is not None and pid is not None:
            status = http_status(f"http://{component.address}{ready_path}")
            state += ", ready" if status == 200 else f", not ready ({status or 'no answer'})"
        print(row(component.name, pid, component.address, state))
    print_urls(plan)
    return 0 if all_run else 1


def print_components(layout: Layout, plan: Plan) -> None:
    for component in components(layout, plan):
        print(row(component.name, running_pid(component, layout), component.address))
    print_urls(plan)


def print_urls(plan: Plan) -> None:
    print(f"{'public':10} ws://{plan.public}/subscribe/id:<uid>/topic:<topic>")
    print(f"{'chat page':10} http://{plan.public}/ (open it in a browser)")
    if plan.prometheus:
        print(f"{'metrics':10} http://{plan.prometheus}/ (Prometheus; instances {', '.join(plan.servers)})")


def row(name: str, pid: int | None, address: str, state: str = "") -> str:
    pid_text = f"pid {pid}" if pid is not None else "pid -"
    return f"{name:10} {pid_text:10} {address:21} {state}".rstrip()


# --- small things --------------------------------------------------------------------------------


def servers(count: int) -> str:
    return f"{count} server" if count == 1 else f"{count} servers"


def say(message: str) -> None:
    print(f"cluster: {message}", file=sys.stderr, flush=True)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/cluster",
        description="A local minimess cluster: Kafka, servers, HAProxy or nginx, and Prometheus.",
    )
    subcommands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, run: Command, help_text: str) -> argparse.ArgumentParser:
        sub = subcommands.add_parser(name, help=help_text)
        sub.set_defaults(run=run)
        sub.add_argument(
            "--dir",
            type=lambda text: Path(text).resolve(),
            default=REPO / "var" / "cluster",
            help="configs, pids and every log (default: var/cluster in the repository)",
        )
        return sub

    # Defaults of None: `up` on a running cluster must tell an option asked for from a default.
    up = command("up", cmd_up, "start Kafka, the servers and the proxy; wait until each serves")
    up.add_argument("--proxy", choices=PROXIES, help="the proxy in front (default haproxy)")
    up.add_argument("--port", type=int, help=f"the proxy's public port (default {DEFAULT_PORT})")
    up.add_argument("--servers", type=int, help=f"how many servers (default {DEFAULT_SERVERS})")
    up.add_argument(
        "--prometheus-port",
        type=int,
        help=f"Prometheus's port, when it is installed (default {DEFAULT_PROMETHEUS_PORT}; 0: any free one)",
    )
    up.add_argument("--timeout", type=float, default=60, help="seconds each stage may take (default 60)")
    up.add_argument("--kafka-port", type=int, help="Kafka's bootstrap port (default 0: any free one)")
    up.add_argument(
        "--kafka-controller-port",
        type=int,
        help="Kafka's controller port (default: the one kafka/ had last, else any free one; 0: any free one)",
    )
    restart = command(
        "restart", cmd_restart, "stop the components named, then start them, and whatever else is down, again"
    )
    restart.add_argument(
        "names", nargs="+", metavar="NAME", help="s1, s2, ..., kafka, haproxy, nginx or prometheus"
    )
    restart.add_argument(
        "--timeout", type=float, default=60, help="seconds each stage may take to stop or start (default 60)"
    )
    command("status", cmd_status, "say what runs (exit 0 when everything does, 1 when not)")
    down = command("down", cmd_down, "stop Prometheus, the proxy, the servers, then Kafka")
    down.add_argument(
        "--timeout",
        type=float,
        default=SERVER_STOP_TIMEOUT,
        help=f"seconds a server may drain before a SIGKILL (default {SERVER_STOP_TIMEOUT:g})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    return commands.run("cluster", parse(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
