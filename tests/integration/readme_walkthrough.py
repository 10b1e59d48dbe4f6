"""The README's walkthroughs: read from README.md as written, and run line by line in a copy of the project,
each terminal a shell of its own.

A walkthrough is the ```sh block right after a `<!-- walkthrough: NAME -->` line. In it,
`# terminal N: ...` says that the lines after it go to terminal N (opened when first named, in the
project's folder); `# type: TEXT` is TEXT typed into the program running there, then Enter;
`# press Ctrl-C` (also after `# terminal N: `) is that key pressed there; every other `#` line is
prose; every other line is a shell command.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.integration.kafka_process import FETCH_ALLOWANCE, START_TIMEOUT
from tests.integration.shell_terminal import KEYS, Network, ShellTerminal
from tests.timeouts import scaled

PROJECT = Path(__file__).resolve().parents[2]
README = PROJECT / "README.md"
# Long enough for a first `uv sync` of a fresh copy and for `scripts/cluster up` (Kafka, servers, proxy,
# Prometheus), each waiting up to START_TIMEOUT, plus the jars' first fetch.
COMMAND_TIMEOUT = 3 * START_TIMEOUT + FETCH_ALLOWANCE
# A program typed into or stopped: a reply on its screen, or its exit.
REPLY_TIMEOUT = 30.0

_TERMINAL = re.compile(r"# terminal (\d+)(?::\s*(.*))?$")
_TYPE = re.compile(r"# type: (.+)$")
_PRESS = re.compile(r"# press (Ctrl-[A-Z])\b")


@dataclass(frozen=True)
class Step:
    """One thing a reader does: `run` a shell line, `type` into a program, or `press` a key, in a terminal."""

    terminal: str
    action: str
    text: str


def walkthrough(name: str, readme: str | None = None) -> list[Step]:
    """The steps of the walkthrough `name` in README.md (or in `readme`, its text)."""
    lines = (README.read_text(encoding="utf-8") if readme is None else readme).splitlines()
    marker = f"<!-- walkthrough: {name} -->"
    if marker not in lines:
        raise AssertionError(f"no {marker!r} in README.md")
    start = lines.index(marker) + 1
    if lines[start] != "```sh":
        raise AssertionError(f"{marker!r} is not followed by a ```sh block")
    end = lines.index("```", start + 1)
    steps: list[Step] = []
    terminal = ""
    for line in lines[start + 1 : end]:
        rest = line.strip()
        if switch := _TERMINAL.match(rest):
            # What follows the colon is prose, or a key to press there.
            terminal, rest = f"terminal {switch.group(1)}", "# " + (switch.group(2) or "")
        if typed := _TYPE.match(rest):
            steps.append(Step(terminal, "type", typed.group(1)))
        elif pressed := _PRESS.match(rest):
            if pressed.group(1) not in KEYS:
                raise AssertionError(f"{line!r}: no such key in the walkthrough's keys {sorted(KEYS)}")
            steps.append(Step(terminal, "press", pressed.group(1)))
        elif rest and not rest.startswith("#"):
            if not terminal:
                raise AssertionError(f"{line!r} comes before any `# terminal N:` line")
            steps.append(Step(terminal, "run", rest))
    return steps


def copy_project(destination: Path) -> Path:
    """The project's files as they are in the working tree (committed or not, but not what git ignores:
    no .venv, no var/), copied into `destination`."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = PROJECT / name
        if source.is_file():  # a deleted file is still in the index until committed
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def ready_pattern(line: str) -> str | None:
    """What a long-running command shows once a reader would go on to the next line; None for a command
    that a reader waits to end."""
    if "minimess serve" in line or line.startswith("scripts/serve"):
        # A server on Kafka reads new messages once it has said so; before, it starts listening.
        return "kafka_connected" if "--broker kafka" in line else "server_listening"
    if "minimess client" in line:
        return r"\* connected to "
    return None


class Walkthrough:
    """The terminals of one walkthrough in a copy of the project, in a network of their own."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.network = Network().open()
        self.terminals: dict[str, ShellTerminal] = {}

    def terminal(self, name: str) -> ShellTerminal:
        if name not in self.terminals:
            self.terminals[name] = ShellTerminal(name, self.project, self.network)
        return self.terminals[name]

    def do(self, step: Step) -> None:
        """Do `step` as a reader would, and wait as a reader would before the next."""
        terminal = self.terminal(step.terminal)
        if step.action == "run":
            terminal.run(step.text)
            pattern = ready_pattern(step.text)
            if pattern is None:
                status = terminal.wait_for_prompt(scaled(COMMAND_TIMEOUT))
                assert status == 0, f"{step.terminal}: `{step.text}` exited {status}:\n{terminal.screen}"
            else:
                terminal.wait_for(pattern, scaled(COMMAND_TIMEOUT))
        elif step.action == "type":
            terminal.type(step.text)
            # The program took the line once it shows it ended by Enter.
            terminal.wait_for(rf"{re.escape(step.text)}[ \t]*\n", scaled(REPLY_TIMEOUT))
        else:
            terminal.press(step.text)
            # Every program the walkthroughs stop with a key exits of it, back to the shell.
            terminal.wait_for_prompt(scaled(REPLY_TIMEOUT))

    def close(self) -> None:
        for terminal in self.terminals.values():
            terminal.close()
        self.network.close()
