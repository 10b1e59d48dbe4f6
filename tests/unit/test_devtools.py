"""The dev tools' logic that the integration tests do not reach on their own."""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from devtools import cluster, kafka, plan, processes, prometheus, templates
from devtools.commands import Failure

SERVERS = {"s1": "127.0.0.1:9001", "s2": "127.0.0.1:9002"}


@pytest.mark.parametrize(
    ("proxy", "listen", "server"),
    [
        ("haproxy", "bind 127.0.0.1:8080", "server s2 127.0.0.1:9002"),
        ("nginx", "listen 127.0.0.1:8080;", "server 127.0.0.1:9002 max_fails=1"),
    ],
)
def test_a_rendered_proxy_config_listens_on_the_public_port_and_names_every_server(
    tmp_path: Path, proxy: str, listen: str, server: str
) -> None:
    text = templates.render(proxy, tmp_path, "127.0.0.1", 8080, SERVERS)

    assert listen in text
    assert server in text
    assert f"{tmp_path}/{proxy}.pid" in text


def test_a_placeholder_nothing_fills_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "haproxy-local.cfg.in").write_text("# @COMMENTS@ may name anything\nbind @HOST@:@WHERE@\n")
    monkeypatch.setattr(templates, "DEPLOY", tmp_path)

    with pytest.raises(ValueError, match=r"nothing fills: @WHERE@$"):
        templates.render("haproxy", tmp_path, "127.0.0.1", 8080, SERVERS)


def test_a_rendered_prometheus_config_names_each_server_by_its_node_id() -> None:
    text = prometheus.render(SERVERS, scrape_interval="1s")

    assert "scrape_interval: 1s" in text
    assert '- targets: ["127.0.0.1:9002"]\n        labels: {__node_id__: "s2"}' in text
    assert "target_label: instance" in text
    assert "authorization" not in text


def test_a_rendered_prometheus_config_scrapes_with_the_admin_token_from_its_file(tmp_path: Path) -> None:
    text = prometheus.render(SERVERS, token_file=tmp_path / "token")

    assert f'    authorization:\n      credentials_file: "{tmp_path}/token"' in text


def test_a_cluster_without_prometheus_says_how_to_install_it_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(processes, "SBIN", ())

    assert cluster.find_prometheus() is None
    assert "apt-get install prometheus" in capsys.readouterr().err


def test_free_ports_are_distinct_and_bindable_while_a_listening_one_is_not() -> None:
    ports = processes.free_ports(3)

    assert len(set(ports)) == 3
    assert all(processes.port_free(port) for port in ports)
    with socket.socket() as taken:
        taken.bind((processes.HOST, 0))
        taken.listen()
        assert not processes.port_free(taken.getsockname()[1])


def test_terminate_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready'); time.sleep(60)"
    )
    process = processes.launch([sys.executable, "-c", stubborn], log)
    try:
        assert processes.wait_until(lambda: "ready" in log.read_text(), 10), processes.last_lines(log)

        assert processes.terminate([process.pid], 0.2) == {process.pid}
        # Not reaped yet, so a zombie: dead all the same.
        assert not processes.alive(process.pid)
    finally:
        process.kill()
        process.wait()


def test_last_lines_keep_the_end_of_a_log_without_colours(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_text("one\n\x1b[1;31mtwo\x1b[0m\nthree\n")

    assert processes.last_lines(log, 2) == "  two\n  three"
    assert processes.last_lines(tmp_path / "missing.log") == "  (nothing)"


def up_options(**given: object) -> argparse.Namespace:
    asked: dict[str, object] = dict.fromkeys(
        ("proxy", "port", "servers", "prometheus_port", "kafka_port", "kafka_controller_port")
    )
    return argparse.Namespace(**{**asked, **given})


def test_a_later_up_differs_from_the_plan_only_in_the_options_it_gives_otherwise() -> None:
    running = plan.Plan("haproxy", "127.0.0.1:8080", "127.0.0.1:9092", SERVERS, prometheus="127.0.0.1:9190")

    assert plan.differences(running, up_options(), 9093) == []
    # 0, any free port, is met by whatever port runs.
    same = up_options(
        proxy="haproxy", port=8080, servers=2, prometheus_port=0, kafka_port=0, kafka_controller_port=9093
    )
    assert plan.differences(running, same, 9093) == []
    assert plan.differences(
        running, up_options(proxy="nginx", servers=3, kafka_controller_port=9094), 9093
    ) == [
        "--proxy nginx (it has haproxy)",
        "--servers 3 (it has 2)",
        "--kafka-controller-port 9094 (it has 9093)",
    ]
    assert plan.differences(
        plan.Plan("nginx", "127.0.0.1:8080", "127.0.0.1:9092", SERVERS),
        up_options(prometheus_port=9190),
        9093,
    ) == ["--prometheus-port 9190 (it has none)"]


@pytest.mark.parametrize("proxy", templates.PROXIES)
def test_a_proxys_files_are_every_path_its_rendered_config_names_in_the_folder(
    tmp_path: Path, proxy: str
) -> None:
    text = templates.render(proxy, tmp_path, "127.0.0.1", 8080, SERVERS)
    named = {Path(path).relative_to(tmp_path).parts[0] for path in re.findall(rf"{tmp_path}/[\w./-]+", text)}
    # Besides those: the config itself, and the log scripts/cluster sends the proxy's output to.
    output_log = "haproxy.log" if proxy == "haproxy" else "nginx-error.log"

    assert named | {templates.config_name(proxy), output_log} == set(templates.files(proxy))


def kafka_start(directory: Path, *argv: str) -> argparse.Namespace:
    return kafka.parse(["start", "--dir", str(directory), *argv])


def test_the_kafka_controller_port_is_the_one_asked_for_else_the_one_its_dir_had(tmp_path: Path) -> None:
    layout = kafka.Layout(tmp_path)
    tmp_path.joinpath("server.properties").write_text(
        "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n"
    )

    assert kafka.controller_port_for(kafka_start(tmp_path, "--controller-port", "9500"), layout, 9092) == 9500
    assert kafka.controller_port_for(kafka_start(tmp_path), layout, 9092) == 9093
    # 0 asks for a free one; and a remembered port that the PLAINTEXT port now takes gives way.
    assert kafka.controller_port_for(kafka_start(tmp_path, "--controller-port", "0"), layout, 9092) not in (
        0,
        9092,
    )
    assert kafka.controller_port_for(kafka_start(tmp_path), layout, 9093) not in (0, 9093)
    with pytest.raises(Failure, match=r"^--controller-port 9092 is the PLAINTEXT port too; pick another$"):
        kafka.controller_port_for(kafka_start(tmp_path, "--controller-port", "9092"), layout, 9092)


def test_a_command_whose_reader_goes_away_stops_quietly() -> None:
    """`scripts/cluster status | head -1`: no BrokenPipeError traceback on stderr."""
    program = (
        "import argparse, sys\n"
        "from devtools import commands\n"
        "def many(args):\n"
        "    for number in range(100_000):\n"
        "        print(f'line {number}')\n"
        "    return 0\n"
        "sys.exit(commands.run('cluster', argparse.Namespace(run=many)))\n"
    )
    reader = subprocess.Popen(["head", "-1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert reader.stdin is not None
    writer = subprocess.run(
        [sys.executable, "-c", program],
        stdout=reader.stdin,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
        text=True,
        timeout=60,
        check=False,
    )
    reader.stdin.close()
    assert reader.stdout is not None
    assert reader.stdout.read() == b"line 0\n"
    reader.wait(timeout=60)
    assert (writer.returncode, writer.stderr) == (141, "")
