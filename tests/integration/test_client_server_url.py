"""A --server URL with an empty port, given as a flag or in MINIMESS_SERVER: refused at start, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.client_process import run_client

pytestmark = pytest.mark.integration

REASON = "the port must be a number from 1 to 65535; expected ws://host[:port] or wss://host[:port]"


def test_an_empty_port_given_as_a_flag_is_refused_naming_the_flag(tmp_path: Path) -> None:
    """urlsplit reads `host:` as no port: without the check the client retried ws://127.0.0.1:: for ever."""
    result = run_client(tmp_path, ["--uid", "bob", "--server", "ws://127.0.0.1:", "--print"])
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"minimess client: --server: invalid server URL 'ws://127.0.0.1:': {REASON}\n"
    assert result.stdout == ""


def test_an_empty_port_from_the_environment_is_refused_naming_the_variable(tmp_path: Path) -> None:
    result = run_client(tmp_path, ["--uid", "bob", "--print"], env={"MINIMESS_SERVER": "ws://127.0.0.1:"})
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"minimess client: MINIMESS_SERVER: invalid server URL 'ws://127.0.0.1:': {REASON}\n"
    )
