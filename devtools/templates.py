"""The local proxies' configuration: deploy/*.in rendered for HAProxy or nginx, and how to run them on it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PROXIES = ("haproxy", "nginx")


def config_name(proxy: str) -> str:
    """The file name of proxy's rendered config; its template is this name plus ".in" in deploy/."""
    if proxy not in PROXIES:
        raise ValueError(f"unknown proxy {proxy!r}; expected one of {', '.join(PROXIES)}")
    return "haproxy.cfg" if proxy == "haproxy" else "nginx.conf"


def files(proxy: str) -> tuple[str, ...]:
    """The names of every file and folder a run of proxy leaves in its directory (config, logs, pid)."""
    if proxy == "haproxy":
        return ("haproxy.cfg", "haproxy.log", "haproxy.pid")
    # As the template names them (and `prepare` makes nginx-tmp/).
    return ("nginx.conf", "nginx-error.log", "nginx-access.log", "nginx.pid", "nginx-tmp")


def template(proxy: str) -> Path:
    name, _, suffix = config_name(proxy).partition(".")
    return DEPLOY / f"{name}-local.{suffix}.in"


def render(proxy: str, directory: Path, host: str, port: int, servers: Mapping[str, str]) -> str:
    """proxy's config: listening on host:port, balancing servers (name -> host:port), files in directory."""
    if proxy == "haproxy":
        lines = [f"    server {name} {address}" for name, address in servers.items()]
    else:
        lines = [f"        server {address} max_fails=1 fail_timeout=2s;" for address in servers.values()]
    values = {"DIR": str(directory), "HOST": host, "PORT": str(port), "SERVERS": "\n".join(lines)}
    return fill(template(proxy), values)


def fill(path: Path, values: Mapping[str, str]) -> str:
    """The template at path with each @NAME@ replaced by values[NAME]; a ValueError if one is left."""
    text = path.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    # A placeholder added to the template but not to the values would reach the program reading the
    # config as a puzzling error.
    settings = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    left = sorted({match for line in settings for match in re.findall(r"@[A-Z_]+@", line)})
    if left:
        raise ValueError(f"{path} has placeholders nothing fills: {', '.join(left)}")
    return text


def prepare(proxy: str, executable: str, config: Path, directory: Path, error_log: Path) -> list[str]:
    """The command line that runs proxy in the foreground on config, once the folders it needs exist."""
    if proxy == "haproxy":
        # -db: stay in the foreground, so that the pid is the proxy's and its log (stdout) is ours.
        return [executable, "-f", str(config), "-db"]
    # The template says `daemon off;`. -e: nginx opens its error log before reading the config, and
    # the built-in one under /var/log is not writable for a user.
    (directory / "nginx-tmp").mkdir(parents=True, exist_ok=True)
    return [executable, "-c", str(config), "-p", str(directory), "-e", str(error_log)]
