"""/metrics of a real server after real traffic: the counts match what the clients did, the latency
histograms have observations, a rendering serves every request for a while, and the figures move to the
admin port behind the admin token."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

from tests.integration.server_process import ServerProcess
from tests.integration.wire import (
    MetricsScrape,
    RawClient,
    http_request,
    logged,
    next_frame,
    open_client,
    publish,
    scrape,
    send_frame,
    stats,
)
from tests.timeouts import scaled

ADMIN_TOKEN = "metrics-admin-token"
# Pings off, so that only the slow-consumer path ends the connection that never reads; a short close
# timeout, so that it is dropped soon after.
OPTIONS = (
    *("--tick", "0", "--rate-limit", "0", "--ping-interval", "0"),
    *("--queue-size", "16", "--close-timeout", "0.5"),
)
# 9 MB: more than a connection that never reads can hold (its queue, buffers and kernel buffers).
FLOOD = [f"{number:04d}:" + "x" * (30 * 1024) for number in range(300)]
SLOW_CONSUMER = "4000"


async def scrape_until(url: str, condition: Callable[[MetricsScrape], bool], what: str) -> MetricsScrape:
    """Scrape `url` until `condition` holds; fail after a scaled 10 s.

    A poll: nothing tells when the figures change, and the server answers with the same rendering
    for up to --metrics-max-age (1 s) after it made it.
    """
    deadline = time.monotonic() + scaled(10)
    while not condition(metrics := await scrape(url)):
        if time.monotonic() > deadline:
            raise AssertionError(f"/metrics did not show {what} within {scaled(10)} s")
        await asyncio.sleep(0.1)
    return metrics


async def test_the_counts_follow_real_traffic_and_the_histograms_have_observations(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(*OPTIONS)
    url = server.http_url("/metrics")
    slow = await RawClient.connect(server, "slow", "flood")
    try:
        async with (
            await open_client(server, "bob", "news") as bob,
            await open_client(server, "alice") as alice,
        ):
            for number in range(3):
                await publish(alice, "news", f"m{number}", f"p-{number}")
            await send_frame(
                alice, type="pub", topic="news", body="mine", ref="a-1", id="shared-message-id-1"
            )
            assert (await next_frame(alice, "ack"))["ref"] == "a-1"
            # The same id from another sender is refused.
            await send_frame(
                bob, type="pub", topic="news", body="also mine", ref="b-1", id="shared-message-id-1"
            )
            await bob.send("not json")
            bodies = [(await next_frame(bob, "message"))["body"] for _ in range(4)]
            assert bodies == ["m0", "m1", "m2", "mine"]
            refused, bad = await next_frame(bob, "error"), await next_frame(bob, "error")
            assert (refused["code"], bad["code"]) == ("id_reused", "bad_frame")
            # The connection that never reads is closed as a slow consumer, then dropped.
            for number, body in enumerate(FLOOD):
                await publish(alice, "flood", body, f"f-{number}")
            await logged(server, "slow_consumer_closed")
            during = await scrape_until(
                url, lambda metrics: metrics.value("minimess_connections") == 2, "the slow consumer gone"
            )

        after = await scrape_until(
            url, lambda metrics: metrics.value("minimess_connections") == 0, "every connection gone"
        )
    finally:
        slow.close()

    acks = 3 + 1 + len(FLOOD)
    assert during.types["minimess_connections"] == "gauge"
    assert during.value("minimess_connections") == 2
    assert during.value("minimess_connections_opened_total") == 3
    assert during.value("minimess_connections_closed_total", code=SLOW_CONSUMER) == 1
    assert during.total("minimess_connections_closed_total") == 1
    assert during.value("minimess_messages_published_total", result="ack") == acks
    assert during.value("minimess_messages_published_total", result="id_reused") == 1
    assert during.total("minimess_messages_published_total") == acks + 1
    assert during.value("minimess_error_frames_total", code="id_reused") == 1
    assert during.value("minimess_error_frames_total", code="bad_frame") == 1
    assert during.total("minimess_error_frames_total") == 2
    assert during.value("minimess_slow_consumer_closes_total") == 1
    assert during.value("minimess_broker_ready") == 1
    assert during.value("minimess_history_messages") == acks
    # bob got 4 messages; the slow consumer was pushed part of the flood before it was dropped, and
    # what it was pushed after its queue filled never reached its socket.
    deliveries = during.value("minimess_deliveries_total")
    assert 4 < deliveries <= 4 + len(FLOOD)
    assert 0 < during.value("minimess_frames_dropped_total") <= deliveries - 4
    assert during.types["minimess_publish_seconds"] == "histogram"
    assert during.value("minimess_publish_seconds_count") == acks
    assert during.value("minimess_publish_seconds_bucket", le="+Inf") == acks
    assert during.value("minimess_publish_seconds_sum") > 0
    # One observation per message that had a local subscriber when it came from the bus.
    assert 4 < during.value("minimess_fanout_seconds_count") <= acks
    assert during.value("minimess_fanout_seconds_sum") > 0
    assert during.value("process_cpu_seconds_total") > 0
    assert during.value("process_resident_memory_bytes") > 0

    assert after.value("minimess_connections") == 0
    assert after.value("minimess_connections_closed_total", code="1000") == 2
    assert after.total("minimess_connections_closed_total") == 3
    assert (
        after.value("minimess_outbound_queued_bytes")
        == after.value("minimess_outbound_queued_bytes_max")
        == 0
    )


async def test_one_rendering_answers_metrics_and_stats_for_the_max_age_and_the_stop_line_is_fresh(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server("--tick", "0", "--metrics-max-age", "60")
    url = server.http_url("/metrics")
    first = await asyncio.to_thread(http_request, url)
    async with await open_client(server, "alice"), await open_client(server, "bob"):
        again = await asyncio.to_thread(http_request, url)
        document = await stats(server)
    assert first[0] == again[0] == 200
    # Two connections opened since, yet the same bytes: the first request's rendering.
    assert again[2] == first[2]
    assert MetricsScrape(again[2].decode()).value("minimess_connections_opened_total") == 0
    assert (document["connections"], document["connections_opened"]) == (0, 0)

    server.signal(signal.SIGTERM)
    (stopped,) = await logged(server, "server_stopped")
    assert (stopped["connections_opened"], stopped["connections_closed"]) == (2, 2)


async def test_with_an_admin_port_metrics_is_served_only_there_and_only_with_the_token(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server("--tick", "0", "--admin-port", "0", "--admin-token", ADMIN_TOKEN)
    (admin,) = server.logged_so_far("admin_listening")
    url = f"http://127.0.0.1:{admin['port']}/metrics"

    assert (await asyncio.to_thread(http_request, server.http_url("/metrics"), "GET", ADMIN_TOKEN))[0] == 404
    for token in (None, "not-the-token"):
        status, headers, body = await asyncio.to_thread(http_request, url, "GET", token)
        assert (status, body) == (401, b"/metrics needs Authorization: Bearer <admin token>\n")
        assert headers["WWW-Authenticate"].startswith("Bearer")

    async with await open_client(server, "alice"):
        metrics = await scrape(url, ADMIN_TOKEN)
    assert metrics.value("minimess_connections") == 1
    assert metrics.value("minimess_connections_opened_total") == 1

    status, headers, body = await asyncio.to_thread(http_request, url, "HEAD", ADMIN_TOKEN)
    assert (status, body) == (200, b"")
    assert int(headers["Content-Length"]) > 0
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
