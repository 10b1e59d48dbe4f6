"""Interactive bash shells in pseudo-terminals, all in one network namespace of their own, as a reader's
terminals are: lines typed into them, keys pressed, the screen read back."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pexpect  # type: ignore[import-untyped]

from tests.integration.client_process import LineScreen
from tests.timeouts import scaled

# The shell's prompt, with the exit status of the last command: `[walkthrough:0]$ `.
PS1 = "[walkthrough:$?]$ "
_PROMPT = re.compile(r"\[walkthrough:(\d+)\]\$ ")
KEYS = {"Ctrl-C": "\x03", "Ctrl-D": "\x04"}


class Network:
    """A network namespace with only a loopback interface, held open by a sleeping process.

    Whatever runs in it may listen on the fixed ports a README names (8080, 9092, ...) while the same
    ports are taken on the machine itself, and nothing in it can disturb the machine's own servers.
    """

    def __init__(self) -> None:
        self._holder: subprocess.Popen[bytes] | None = None

    def open(self) -> Network:
        # Root makes the namespace directly; anyone else through a user namespace of their own.
        user = [] if os.geteuid() == 0 else ["--map-root-user"]
        self._holder = subprocess.Popen(
            [
                "unshare", *user, "--net", "--", "sh", "-c",
                "PATH=$PATH:/usr/sbin:/sbin; ip link set lo up && exec sleep infinity",
            ],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        holder = self._holder
        deadline = time.monotonic() + scaled(10)
        while _command_name(holder.pid) != "sleep":
            if holder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"unshare could not make a network namespace (exit {holder.poll()})")
            time.sleep(0.01)
        return self

    def enter(self) -> list[str]:
        """The command prefix that runs a command in this namespace."""
        assert self._holder is not None, "the network was never opened"
        user = [] if os.geteuid() == 0 else ["--user", "--preserve-credentials"]
        return ["nsenter", "--target", str(self._holder.pid), *user, "--net", "--"]

    def close(self) -> None:
        if self._holder is not None and self._holder.poll() is None:
            self._holder.kill()
            self._holder.wait()


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def reader_env(**extra: str) -> dict[str, str]:
    """This environment as a reader's shell would have it: without the test run's virtual environment,
    coverage hooks or MINIMESS_ settings (but the Kafka jar cache, which scripts/test fills)."""
    venv_bin = str(Path(sys.executable).parent)
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH")
        and not name.startswith(("COV_CORE_", "COVERAGE_", "PYTEST_"))
        and (not name.startswith("MINIMESS_") or name == "MINIMESS_KAFKA_CACHE")
    }
    env["PATH"] = os.pathsep.join(part for part in env.get("PATH", "").split(os.pathsep) if part != venv_bin)
    return {**env, **extra}


class ShellTerminal:
    """`bash -i` in a pseudo-terminal: a reader's terminal, its screen as plain text."""

    def __init__(self, name: str, cwd: Path, network: Network) -> None:
        self.name = name
        self._screen = LineScreen()
        self._changed = threading.Condition()
        self._eof = False
        # How many prompts the screen had when the last line was typed into the shell.
        self._prompts_before = 0
        self.child = pexpect.spawn(
            network.enter()[0],
            [*network.enter()[1:], "bash", "--norc", "--noprofile", "-i"],
            cwd=str(cwd),
            # A terminal that answers no cursor position requests, as the client tests' own; and uv
            # working from its cache, as the namespace has no way out (scripts/test's own sync filled it).
            env=reader_env(PS1=PS1, TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", UV_OFFLINE="1"),
            dimensions=(50, 250),
            encoding="utf-8",
            codec_errors="replace",
        )
        # Read all the time: a program whose terminal is not read blocks on it.
        threading.Thread(target=self._drain, daemon=True).start()
        self.wait_for_prompt(scaled(30))

    def _drain(self) -> None:
        while True:
            try:
                data = self.child.read_nonblocking(size=65536, timeout=0.2)
            except pexpect.TIMEOUT:
                continue
            except (pexpect.EOF, OSError, ValueError):
                with self._changed:
                    self._eof = True
                    self._changed.notify_all()
                return
            with self._changed:
                self._screen.feed(data)
                self._changed.notify_all()

    @property
    def screen(self) -> str:
        """Every line on the screen so far, the unfinished one included."""
        with self._changed:
            return self._screen.text + "".join(self._screen.line)

    def _prompts(self) -> int:
        return len(_PROMPT.findall(self._screen.text + "".join(self._screen.line)))

    def _prompt_status(self) -> int | None:
        """The exit status the shell's prompt shows, when it waits for a command; else None."""
        if self._prompts() <= self._prompts_before:
            return None
        match = re.search(r"\[walkthrough:(\d+)\]\$ $", "".join(self._screen.line))
        return int(match.group(1)) if match else None

    def run(self, line: str) -> None:
        """Type `line` into the shell and press Enter."""
        with self._changed:
            self._prompts_before = self._prompts()
        self.child.send(line + "\r")

    def type(self, text: str) -> None:
        """Type `text` into the program running in the terminal and press Enter."""
        self.child.send(text + "\r")

    def press(self, key: str) -> None:
        """Press a key named in KEYS (Ctrl-C, Ctrl-D)."""
        with self._changed:
            self._prompts_before = self._prompts()
        self.child.send(KEYS[key])

    def wait_for_prompt(self, within: float) -> int:
        """The exit status of the command that ran, once the shell prompts again within `within` s."""
        found = self._wait(lambda: self._prompt_status() is not None, within, "the shell's prompt")
        assert found
        status = self._prompt_status()
        assert status is not None
        return status

    def wait_for(self, pattern: str, within: float) -> None:
        """Until `pattern` shows on the screen after the last line typed into the shell; fail if the
        shell prompts again first (the command ended)."""
        regex = re.compile(pattern, re.MULTILINE)

        def shown() -> bool:
            if self._prompt_status() is not None:
                raise AssertionError(f"{self.name}: the command ended before {pattern!r}:\n{self._tail()}")
            return regex.search(self._since_last_command()) is not None

        self._wait(shown, within, repr(pattern))

    def _since_last_command(self) -> str:
        text = self._screen.text + "".join(self._screen.line)
        prompts = list(_PROMPT.finditer(text))
        return text[prompts[self._prompts_before - 1].end() :] if self._prompts_before else text

    def _wait(self, condition: Callable[[], bool], within: float, what: str) -> bool:
        deadline = time.monotonic() + within
        with self._changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._eof:
                    state = "its shell exited" if self._eof else f"not within {within:g} s"
                    raise AssertionError(f"{self.name}: no {what} ({state}); screen:\n{self._tail()}")
                self._changed.wait(min(remaining, 0.5))
        return True

    def _tail(self) -> str:
        return (self._screen.text + "".join(self._screen.line))[-4000:]

    def close(self) -> None:
        """Hang up: the shell and what runs in its foreground get SIGHUP; kill the shell if it stays."""
        if self.child.isalive():
            self.child.close(force=True)
