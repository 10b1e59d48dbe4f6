"""What the client refuses rather than retrying: a --server URL with a path, a request the server
refuses with a 4xx, and a line over the server's frame limit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.integration.client_process import TerminalClient, run_client
from tests.integration.server_process import ServerProcess


def one_line(output: str) -> str:
    """The only line of `output`, checked to be one and no traceback."""
    assert "Traceback" not in output, output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


def test_the_url_scripts_cluster_prints_is_refused_at_start_saying_what_to_give_instead(
    tmp_path: Path,
) -> None:
    """The client builds its own path: pasted as --server, a connection URL is a usage error (exit 2)."""
    url = "ws://127.0.0.1:8080/subscribe/id:bob/topic:room"
    result = run_client(tmp_path, ["--uid", "bob", "--server", url, "--print"])
    assert result.returncode == 2, result.stderr
    assert one_line(result.stdout + result.stderr) == (
        f"minimess client: --server: invalid server URL {url!r}: it has a path;"
        " give --server ws://127.0.0.1:8080 --topic room"
        " (the uid is --uid; the client builds the path itself)"
    )


def test_a_4xx_refusal_at_the_handshake_stops_the_client_with_the_servers_reason(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """More topics than the server takes is a 400, the same on every attempt: said once, exit 3."""
    # -v: every refused request is logged (request_rejected).
    server = start_server("--tick", "0", "--max-topics", "1", "-v")
    result = run_client(
        tmp_path, ["--uid", "bob", "--server", server.url(""), "--topic", "a", "--topic", "b", "--print"]
    )
    assert result.returncode == 3, result.stderr
    transcript, refusal = result.stderr.strip().splitlines()
    assert transcript == "* transcript: bob.mess (tail -f bob.mess)"
    assert one_line(refusal) == (
        "minimess client: the server refused the connection:"
        " HTTP 400: a connection may hold at most 1 topics;"
        " asking again would get the same answer"
    )
    server.wait_logged("request_rejected", status=400)
    assert len(server.logged_so_far("request_rejected")) == 1


def test_a_line_over_the_servers_limit_is_refused_before_sending_and_the_connection_stays(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Sent, it would close the connection with 1009; the `success` frame told the client the limit."""
    # -v: the connection's close is logged (client_disconnected).
    server = start_server("--tick", "0", "--max-message-bytes", "1000", "-v")
    client = TerminalClient(tmp_path, "a", server.url(""), "--topic", "room").start()
    try:
        client.expect(r"^\* connected to [^\n]* as a\b")
        client.line("attach room")
        client.expect_status("attached to room")
        client.line("x" * 1500)
        client.expect(
            r"^! message to room failed: too long: 16\d\d bytes, the server takes at most 1000 per message"
            r' frame; nothing was sent: "x{59}…"$'
        )
        client.line("short")
        client.wait_for_line(lambda line: line.endswith("(@a): short"))
        assert "disconnected" not in client.screen, client.screen
        assert server.logged_so_far("client_disconnected") == []
    finally:
        client.stop()
