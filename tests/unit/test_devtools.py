"""The dev tools' logic that the integration tests do not reach on their own."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from devtools import cluster, processes, prometheus, templates

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
