"""Local processes for development and tests: free ports, starting one detached, watching it, stopping it."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

HOST = "127.0.0.1"
# Debian installs HAProxy and nginx in sbin, which is not on an ordinary user's PATH.
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
# How long a process that took a SIGKILL may take to be gone.
KILL_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port free on HOST right now, for a process to bind a moment later."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: every socket stays bound until all are picked."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_free(port: int) -> bool:
    """Whether a server could bind port on HOST now."""
    with socket.socket() as sock:
        # As servers bind: a port left in TIME_WAIT by the last run is free, not taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def find_executable(name: str) -> str | None:
    """The path of the program `name` on PATH or in the sbin folders."""
    return shutil.which(name, path=search_path())


def search_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), *SBIN])


def launch(
    command: Sequence[str],
    log: Path,
    *,
    pid_file: Path | None = None,
    append: bool = False,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start command detached, its output in log, and write its pid to pid_file."""
    # A program that also writes to log itself (nginx's error log) needs our descriptor to append.
    with log.open("ab" if append else "wb") as output:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            # Its own session and process group: a Ctrl-C in the terminal that started it does not
            # reach it, and a signal to the group reaches its children (nginx's workers) too.
            start_new_session=True,
        )
    if pid_file is not None:
        pid_file.write_text(f"{process.pid}\n")
    return process


def alive(pid: int) -> bool:
    """Whether pid is a live process; a zombie is dead (PID 1 here may never reap it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): kill(0) has to do
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def command_line(pid: int) -> list[str] | None:
    """The words of pid's command line; None when unknown (no such process, or no /proc)."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return [word.decode(errors="replace") for word in words if word]


def has_proc() -> bool:
    return Path("/proc/self").exists()


def signal_group(pid: int, signum: int) -> None:
    """Signal pid and, when it leads its own group (as whatever `launch` starts does), its children."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass


def terminate(pids: Iterable[int], timeout: float) -> set[int]:
    """SIGTERM all at once (so they shut down in parallel), SIGKILL whatever still runs after timeout.

    The pids that needed the SIGKILL; every one of them is gone, or has had KILL_TIMEOUT to go.
    """
    pids = list(pids)
    for pid in pids:
        signal_group(pid, signal.SIGTERM)
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout, interval=0.05)
    killed = {pid for pid in pids if alive(pid)}
    for pid in killed:
        signal_group(pid, signal.SIGKILL)
    wait_until(lambda: not any(alive(pid) for pid in killed), KILL_TIMEOUT, interval=0.05)
    return killed


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Whether pid is gone within timeout."""
    return wait_until(lambda: not alive(pid), timeout)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Whether condition holds within timeout, asked every interval (a poll, not a synchronisation)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The status of GET url, or None when nothing answers."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or HOST, parts.port or 80, timeout=timeout)
    try:
        connection.request("GET", parts.path or "/")
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def last_lines(source: str | Path, count: int = 20) -> str:
    """The last lines of a text or a file, indented, for an error message."""
    if isinstance(source, Path):
        try:
            source = source.read_text(errors="replace")
        except OSError:
            source = ""
    # Maven 3.8 colours some of its output even in batch mode.
    lines = re.sub(r"\x1b\[[0-9;]*m", "", source).rstrip().splitlines()[-count:]
    return "\n".join(f"  {line}" for line in lines) if lines else "  (nothing)"
