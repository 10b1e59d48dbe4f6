"""The chat page in Chromium on two `minimess serve --broker kafka` servers behind a real HAProxy."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.integration.browser_process import PageOpener
from tests.integration.chat_page import ChatPage, expect_timeout
from tests.integration.kafka_process import KafkaProcess, fresh_kafka_topic, kafka_serve_args
from tests.integration.proxy_process import ProxyProcess
from tests.integration.server_process import ServerProcess, wait_status
from tests.integration.wire import publish_blocking, unique
from tests.timeouts import scaled

pytestmark = pytest.mark.integration

# Messages published on the other server while the page's server is out.
MISSED = 20
# Until a server answers /readyz 200: it creates the Kafka topic and connects its clients first.
READY_WITHIN = 20.0
# Until the page is back through the proxy and has every message: a backoff of 0.5 s at most,
# HAProxy passing the refused connection on, the recovery read from Kafka.
RECOVER_WITHIN = 20.0


def test_the_page_behind_haproxy_recovers_every_message_once_in_order_when_its_server_is_killed(
    kafka: KafkaProcess, start_server: Callable[..., ServerProcess], open_page: PageOpener, tmp_path: Path
) -> None:
    """The page's server frozen, MISSED messages published on the other one, then the frozen one killed:
    the page, back through HAProxy, shows all of them, in order, once each, and no "missed" notice."""
    topic = fresh_kafka_topic()
    servers = {node: start_server(*kafka_serve_args(kafka, topic, node)) for node in ("s1", "s2")}
    for server in servers.values():
        wait_status(server, "/readyz", 200, READY_WITHIN)
    proxy = ProxyProcess(
        "haproxy", tmp_path / "haproxy", [server.port for server in servers.values()]
    ).start()
    try:
        room = unique("room")
        alice = ChatPage(open_page()).open(proxy.http_url(""), "alice")
        alice.expect_state("connected", "as alice")
        alice.join(room)
        alice.send("before")
        alice.expect_messages([("alice", "before")])
        # Its position is that of the echo.
        alice.expect_echoed()
        match = re.search(r"connected to (s[12]) as alice", alice.state_line.text_content() or "")
        assert match is not None, alice.state_line.text_content()
        gone = servers[match[1]]
        (other_node,) = (node for node in servers if node != match[1])
        other = servers[other_node]

        # Frozen first, so that the page cannot have any of them live: every one must be recovered.
        gone.signal(signal.SIGSTOP)
        missed = [f"missed {number}" for number in range(MISSED)]
        publish_blocking(other.url(""), "bob", room, *missed)
        gone.signal(signal.SIGKILL)
        gone.wait(scaled(10))

        expected = [("alice", "before"), *(("bob", body) for body in missed)]
        alice.expect_messages(expected, within=RECOVER_WITHIN)
        alice.expect_state("connected", f"connected to {other_node} as alice")
        # A duplicate would come after the recovered ones: what follows them must be the next message.
        alice.send("after")
        alice.expect_messages([*expected, ("alice", "after")])
        expect(alice.notice_lines).to_have_count(0, timeout=expect_timeout(None))
    finally:
        open_page.close()
        proxy.stop()
