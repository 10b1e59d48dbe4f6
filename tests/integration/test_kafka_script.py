"""scripts/kafka as a user runs it: the controller port chosen with --controller-port, kept, and changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devtools import kafka
from devtools.processes import free_ports
from tests.integration.kafka_process import FETCH_ALLOWANCE, SCRIPT, START_TIMEOUT, kafka_unavailable
from tests.timeouts import scaled

pytestmark = pytest.mark.integration


def script(*args: str, within: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=within,
        check=False,
    )


def start(where: tuple[str, ...], *args: str) -> subprocess.CompletedProcess[str]:
    return script(
        "start", *where, *args, "--timeout", f"{scaled(START_TIMEOUT):g}",
        within=scaled(START_TIMEOUT) + FETCH_ALLOWANCE,
    )  # fmt: skip


def test_the_controller_port_is_the_one_asked_for_kept_by_its_dir_and_changeable(tmp_path: Path) -> None:
    port, controller, other_controller = free_ports(3)
    layout = kafka.Layout(tmp_path / "kafka")
    where = ("--dir", str(layout.dir))
    try:
        first = start(where, "--port", str(port), "--controller-port", str(controller))
        if first.returncode != 0:
            kafka_unavailable(
                first.stderr
            )  # no Java or no jars here (with MINIMESS_REQUIRE_KAFKA=1, a failure)
        assert layout.configured_port("CONTROLLER") == controller
        # While it runs, another controller port is refused rather than silently ignored.
        clash = script("start", *where, "--controller-port", str(other_controller), within=scaled(60))
        assert clash.returncode == 1
        assert f"with its controller on 127.0.0.1:{controller}; stop it" in clash.stderr
        assert script("stop", *where, within=scaled(60)).returncode == 0

        # Without the option, --dir's last controller port again.
        again = start(where)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == f"127.0.0.1:{port}"
        assert layout.configured_port("CONTROLLER") == controller
        assert script("stop", *where, within=scaled(60)).returncode == 0

        # A formatted --dir moves its controller, and serves (the broker reaches it on the new port).
        moved = start(where, "--controller-port", str(other_controller))
        assert moved.returncode == 0, moved.stderr
        assert layout.configured_port("CONTROLLER") == other_controller
        assert kafka.serving(port)
    finally:
        script("stop", *where, within=scaled(60))


def test_a_controller_port_that_is_the_plaintext_port_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    (port,) = free_ports(1)

    refused = script(
        "start",
        "--dir",
        str(tmp_path),
        "--port",
        str(port),
        "--controller-port",
        str(port),
        within=scaled(60),
    )

    assert refused.returncode == 1
    assert (
        refused.stderr.strip()
        == f"kafka: error: --controller-port {port} is the PLAINTEXT port too; pick another"
    )
    assert not kafka.Layout(tmp_path).pid_file.exists()
