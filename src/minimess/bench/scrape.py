"""Reading a running server's figures from its /metrics, in the Prometheus text format."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

CPU_SECONDS = "process_cpu_seconds_total"
RSS_BYTES = "process_resident_memory_bytes"
SLOW_CONSUMER_CLOSES = "minimess_slow_consumer_closes_total"
CONNECTIONS_OPENED = "minimess_connections_opened_total"


class ScrapeError(Exception):
    """The metrics could not be read, or were not in the Prometheus text format."""


def scrape(url: str, token: str | None = None, timeout: float = 5.0) -> Mapping[str, float]:
    """Every sample at `url`, summed over its labels, by sample name (`token`: a Bearer token)."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        ) as response:
            text = response.read().decode()
    except (OSError, ValueError, urllib.error.URLError) as error:
        raise ScrapeError(f"cannot read {url}: {error}") from None
    totals: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    except ValueError as error:
        raise ScrapeError(f"{url} is not in the Prometheus text format: {error}") from None
    return totals
