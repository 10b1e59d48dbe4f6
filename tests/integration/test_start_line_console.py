"""The start line in the console format, as a person reads it: the README's example, fields in its order."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from devtools import processes
from tests.integration.server_process import FollowedStream
from tests.timeouts import scaled

pytestmark = pytest.mark.integration

README = Path(__file__).parents[2] / "README.md"


def readme_start_line() -> str:
    """The README's example start line, up to its `…`."""
    (line,) = [line for line in README.read_text().splitlines() if line.startswith("server_listening ")]
    return line.removesuffix(" …")


def test_the_console_start_line_begins_as_the_readme_shows_url_first() -> None:
    port = processes.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "minimess", "serve", "--port", str(port), "--log-format", "console", "-q"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={name: value for name, value in os.environ.items() if not name.startswith("MINIMESS_")}
        | {"PYTHONUNBUFFERED": "1"},
    )
    log = FollowedStream(process.stderr, str, threading.Condition())
    try:
        (line,) = log.wait_for(lambda line: "server_listening" in line, within=scaled(30), what="start line")
    finally:
        processes.terminate([process.pid], scaled(15))
        process.wait()
    # The console pads the event to a column: one space is what the README shows.
    shown = re.sub(r" +", " ", line[line.index("server_listening") :])
    assert shown.startswith(readme_start_line().replace("8080", str(port))), shown
