"""Running `python -m minimess ...` to its end as a shell would, without the developer's MINIMESS_*."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.integration.server_process import PROCESS_START
from tests.timeouts import scaled


def minimess(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The finished `minimess` process: its exit status, stdout and stderr."""
    clean = {
        name: value for name, value in os.environ.items() if not name.startswith(("MINIMESS_", "_MINIMESS"))
    }
    # Wide, so that help boxes do not fold an option's name or a metavar.
    clean |= {
        "COLUMNS": "250",
        "MINIMESS_TEST_TIMEOUT_SCALE": os.environ.get("MINIMESS_TEST_TIMEOUT_SCALE", "1"),
    }
    return subprocess.run(
        [sys.executable, "-m", "minimess", *args],
        env={**clean, **(env or {})},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=scaled(PROCESS_START),
    )
