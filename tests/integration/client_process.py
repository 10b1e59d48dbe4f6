"""Real `minimess client` processes for integration tests: one in a pseudo-terminal, one in `--print` mode."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pexpect  # type: ignore[import-untyped]
import pyte

from tests.integration.server_process import PROCESS_START, FollowedStream
from tests.timeouts import scaled

# A fixed POSIX zone (no tz database needed) half an hour off any whole-hour zone, so that a client
# writing UTC, or the test machine's own zone, instead of local time cannot pass by accident.
CLIENT_TZ = "IST-5:30"

UP = "\x1b[A"
DOWN = "\x1b[B"

# A complete escape sequence: CSI (parameters in group 1, final byte in group 2), OSC, a charset
# selection, or a two-character one.
_ESCAPE = re.compile(
    r"\x1b(?:\[([0-?]*)[ -/]*([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][0-9A-Za-z]|[@-Z\\-_=>])"
)
# The start of an escape sequence that more output may complete.
_ESCAPE_START = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[()])?")


def client_env(**extra: str) -> dict[str, str]:
    """This environment minus MINIMESS_ settings that could leak into a client, plus `extra`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("MINIMESS_") or name == "MINIMESS_TEST_TIMEOUT_SCALE"
    }
    return {**env, "TZ": CLIENT_TZ, "PYTHONUNBUFFERED": "1", **extra}


def client_command(uid: str, server_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "minimess", "client", "--uid", uid, "--server", server_url, *args]


class LineScreen:
    """Just enough of a terminal to turn prompt_toolkit's output into the lines a user sees scroll by.

    It tracks the cursor's column on the current line (carriage return, backspace, cursor left and
    right, erase to the end) and ignores moves between lines, colours and modes: prompt_toolkit
    redraws a one-line prompt in place and prints notices above it, each ended by a newline.
    """

    def __init__(self) -> None:
        # Lines ended by a newline: they never change again.
        self.lines: list[str] = []
        self.line: list[str] = []
        self._column = 0
        # An escape sequence cut off at the end of the last output, completed by the next.
        self._pending = ""

    def feed(self, data: str) -> None:
        data, self._pending = self._pending + data, ""
        at = 0
        while at < len(data):
            char = data[at]
            if char == "\x1b":
                escape = _ESCAPE.match(data, at)
                if escape is None and _ESCAPE_START.fullmatch(data, at):
                    self._pending = data[at:]
                    return
                if escape is not None:
                    self._control_sequence(escape)
                    at = escape.end()
                    continue
            elif char == "\n":
                self.lines.append("".join(self.line).rstrip())
                self.line, self._column = [], 0
            elif char == "\r":
                self._column = 0
            elif char == "\b":
                self._column = max(0, self._column - 1)
            elif char >= " " and char != "\x7f":
                self.line.extend(" " * (self._column + 1 - len(self.line)))
                self.line[self._column] = char
                self._column += 1
            at += 1

    def _control_sequence(self, escape: re.Match[str]) -> None:
        parameters, final = escape.group(1, 2)
        if final is None:
            return
        count = int(parameters) if parameters and parameters.isdigit() else 1
        if final == "C":
            self._column += count
        elif final == "D":
            self._column = max(0, self._column - count)
        elif final == "G":
            self._column = count - 1
        elif final in "JK" and parameters in ("", "0"):
            del self.line[self._column :]
        elif final in "JK" and parameters == "2":
            self.line = []

    @property
    def text(self) -> str:
        """The finished lines, each followed by a newline."""
        return "".join(line + "\n" for line in self.lines)


def read_lines(path: Path) -> list[str]:
    """The complete (newline-terminated) lines of a file; none if it does not exist yet."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return text.split("\n")[:-1]


def wait_for_lines(
    path: Path, predicate: Callable[[str], bool], count: int = 1, within: float = 10.0
) -> list[str]:
    """The first `count` complete lines of `path` that satisfy `predicate`, polled for `within` s (scaled)."""
    deadline = time.monotonic() + scaled(within)
    while True:
        found = [line for line in read_lines(path) if predicate(line)]
        if len(found) >= count:
            return found[:count]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"fewer than {count} matching lines in {path} within {scaled(within)} s: {read_lines(path)!r}"
            )
        time.sleep(0.05)


class _AnsweringScreen(pyte.Screen):
    """A pyte screen that writes its answers (the cursor position a program asks for) back to it."""

    def __init__(self, columns: int, lines: int, answer: Callable[[str], object]) -> None:
        super().__init__(columns, lines)
        self._answer = answer

    def write_process_input(self, data: str) -> None:
        self._answer(data)


class TerminalClient:
    """`minimess client` in a pseudo-terminal, its screen as plain text, and its transcript file.

    With `cpr`, the terminal answers prompt_toolkit's cursor position requests, as a real one does:
    then prompt_toolkit knows the rows below its prompt, and draws a bottom toolbar there.
    """

    def __init__(self, workdir: Path, uid: str, server_url: str, *args: str, cpr: bool = False) -> None:
        self.cpr = cpr
        self.workdir = workdir
        self.uid = uid
        self.command = client_command(uid, server_url, *args)
        self.transcript = workdir / f"{uid}.mess"
        self.child: pexpect.spawn | None = None
        # What the client wrote to the terminal; guarded by _changed.
        self._screen = LineScreen()
        # The same, drawn by a terminal emulator of the pty's size: what is on the screen now,
        # the rows redrawn in place (the bottom toolbar) included.
        self._terminal = _AnsweringScreen(200, 40, self.type if cpr else lambda _answer: None)
        self._terminal_stream = pyte.Stream(self._terminal)
        self._changed = threading.Condition()
        # Where in the plain screen text the next `expect` starts looking.
        self._cursor = 0
        self._eof = False

    def start(self) -> TerminalClient:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.child = pexpect.spawn(
            self.command[0],
            self.command[1:],
            cwd=str(self.workdir),
            env=client_env(
                TERM="xterm", NO_COLOR="1", **({} if self.cpr else {"PROMPT_TOOLKIT_NO_CPR": "1"})
            ),
            dimensions=(40, 200),
            encoding="utf-8",
            codec_errors="replace",
        )
        # Read all the time, not only inside `expect`: a client whose terminal is not read blocks on it.
        threading.Thread(target=self._drain, args=(self.child,), daemon=True).start()
        return self

    def _drain(self, child: pexpect.spawn) -> None:
        while True:
            try:
                data = child.read_nonblocking(size=65536, timeout=0.2)
            except pexpect.TIMEOUT:
                continue
            except (pexpect.EOF, OSError, ValueError):
                with self._changed:
                    self._eof = True
                    self._changed.notify_all()
                return
            with self._changed:
                self._screen.feed(data)
                self._terminal_stream.feed(data)
                self._changed.notify_all()

    def type(self, text: str) -> None:
        """Type `text` (keys, not a line: add "\\r" for Enter)."""
        assert self.child is not None
        self.child.send(text)

    def line(self, text: str) -> None:
        """Type `text` and press Enter."""
        self.type(text + "\r")

    def expect(self, pattern: str, within: float = 10.0) -> re.Match[str]:
        """The next match of `pattern` (a multiline regex) in the finished screen lines after the last."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + scaled(within)
        with self._changed:
            while True:
                match = regex.search(self._screen.text, self._cursor)
                if match is not None:
                    self._cursor = match.end()
                    return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._eof:
                    tail = self._screen.text[self._cursor :][-3000:] + "".join(self._screen.line)
                    state = "exited" if self._eof else "still running"
                    raise AssertionError(
                        f"{self.uid}: no {pattern!r} on screen within {scaled(within)} s ({state});"
                        f" screen since the last match:\n{tail}"
                    )
                self._changed.wait(remaining)

    @property
    def screen(self) -> str:
        """Every finished line on the screen so far, for asserting what was not printed."""
        with self._changed:
            return self._screen.text

    def expect_drawn(
        self,
        pattern: str,
        within: float = 10.0,
        where: Callable[[re.Match[str]], bool] = lambda match: True,
    ) -> re.Match[str]:
        """A match of `pattern` (a multiline regex) for which `where` holds, on the screen as it is
        drawn at some moment within `within` s (scaled): every row, those redrawn in place included.

        A screen drawn and redrawn between two looks is never seen, so a test waits for a state that
        stays (e.g. "a later attempt than N"), not for one that may flash by."""
        regex = re.compile(pattern, re.MULTILINE)

        def matching(drawn: str) -> re.Match[str] | None:
            return next((match for match in regex.finditer(drawn) if where(match)), None)

        match = matching(
            self._wait_drawn(lambda drawn: matching(drawn) is not None, f"{pattern!r} not drawn", within)
        )
        assert match is not None
        return match

    def expect_not_drawn(self, pattern: str, within: float = 10.0) -> None:
        """Wait until the screen as drawn has no match of `pattern` (a multiline regex)."""
        regex = re.compile(pattern, re.MULTILINE)
        self._wait_drawn(lambda drawn: regex.search(drawn) is None, f"{pattern!r} still drawn", within)

    def _wait_drawn(self, found: Callable[[str], bool], what: str, within: float) -> str:
        """The screen as drawn, once `found` holds for it."""
        deadline = time.monotonic() + scaled(within)
        with self._changed:
            while True:
                drawn = "\n".join(row.rstrip() for row in self._terminal.display)
                if found(drawn):
                    return drawn
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._eof:
                    raise AssertionError(f"{self.uid}: {what} after {scaled(within)} s:\n{drawn}")
                # Woken by output; a countdown redraws at least every second.
                self._changed.wait(min(remaining, 1.0))

    def expect_status(self, text: str, within: float = 10.0) -> re.Match[str]:
        """The next status line (`* ...`) that starts with `text`."""
        return self.expect(rf"^\* {re.escape(text)}[^\n]*", within)

    def expect_problem(self, within: float = 10.0) -> re.Match[str]:
        """The next problem line (`! ...`)."""
        return self.expect(r"^! [^\n]*\S[^\n]*", within)

    def wait_for_line(self, predicate: Callable[[str], bool], within: float = 10.0) -> str:
        """The first line of the transcript that satisfies `predicate`."""
        return wait_for_lines(self.transcript, predicate, 1, within)[0]

    def wait_exit(self, within: float = 10.0) -> int:
        """The exit code, once the client has closed its terminal within `within` seconds (scaled)."""
        assert self.child is not None
        with self._changed:
            if not self._changed.wait_for(lambda: self._eof, scaled(within)):
                raise AssertionError(
                    f"{self.uid}: still running after {scaled(within)} s:\n{self._screen.text}"
                )
        self.child.wait()
        status = self.child.exitstatus
        assert status is not None, f"{self.uid}: killed by signal {self.child.signalstatus}"
        return int(status)

    def stop(self) -> None:
        """Kill the process if it still runs; safe to call twice."""
        if self.child is None:
            return
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close(force=True)


class PrintClient:
    """`minimess client --print` with no terminal and no input, its stdout and stderr followed."""

    def __init__(self, workdir: Path, uid: str, server_url: str, *args: str) -> None:
        self.workdir = workdir
        self.transcript = workdir / f"{uid}.mess"
        self.command = client_command(uid, server_url, "--print", *args)
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> PrintClient:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # No PYTHONUNBUFFERED: `--print` output goes to a pipe, so the client must flush each line itself.
        env = client_env()
        del env["PYTHONUNBUFFERED"]
        self.process = subprocess.Popen(
            self.command,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
        )
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self.stdout = FollowedStream(self.process.stdout, str, threading.Condition())
        self.stderr = FollowedStream(self.process.stderr, str, threading.Condition())
        return self

    def interrupt(self, within: float = 10.0) -> int:
        """Ctrl-C: SIGINT, and the exit code once it has exited within `within` seconds (scaled)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=scaled(within))

    def stop(self) -> None:
        """Kill the process if it still runs; safe to call twice."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.kill()
        self.process.wait()


def run_client(
    workdir: Path, args: Sequence[str], within: float = PROCESS_START, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`minimess client <args>` run to completion with no input, with `env` added; fail if it takes
    over `within` s."""
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "minimess", "client", *args],
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=client_env(**(env or {})),
        timeout=scaled(within),
        check=False,
    )
