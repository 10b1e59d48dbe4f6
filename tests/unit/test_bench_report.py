"""The arithmetic and the rendering of `minimess bench` figures."""

from __future__ import annotations

import io
import json
from array import array

import pytest

from minimess.bench import report, run
from minimess.bench.progress import Progress
from minimess.bench.report import RoundResult
from minimess.bench.run import BenchResult
from minimess.bench.settings import BenchSettings
from minimess.bench.workers import ConnectReport


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert report.percentile(values, 0.50) == 50
    assert report.percentile(values, 0.99) == 99
    assert report.percentile(values, 1.0) == 100
    assert report.percentile([7], 0.99) == 7


def test_percentile_of_nothing_is_an_error() -> None:
    """An empty sample has no percentile rather than a made-up zero."""
    with pytest.raises(ValueError, match="no values"):
        report.percentile([], 0.5)


def test_latency_metrics_are_in_milliseconds_and_ordered() -> None:
    metrics = report.latency_metrics([1000, 2000, 3000, 4000, 100_000])
    assert metrics["latency_p50_ms"] == 3.0
    assert metrics["latency_max_ms"] == 100.0
    values = [metrics[f"latency_{name}_ms"] for name in ("p50", "p90", "p99", "max")]
    assert values == sorted(values)  # type: ignore[type-var]


def test_latency_metrics_without_deliveries_are_absent() -> None:
    """No delivery, no latency: None, which the table shows as '-'."""
    assert set(report.latency_metrics([]).values()) == {None}


def test_medians_skip_rounds_without_the_metric() -> None:
    rounds = [
        RoundResult({"deliveries_per_s": 10.0, "cpu_us_per_delivery": None}),
        RoundResult({"deliveries_per_s": 30.0, "cpu_us_per_delivery": 4.0}),
        RoundResult({"deliveries_per_s": 20.0}),
    ]
    summary = report.medians(rounds)
    assert summary["deliveries_per_s"] == 20.0
    assert summary["cpu_us_per_delivery"] == 4.0
    assert summary["latency_p99_ms"] is None


def test_ratios_are_minimess_over_baseline() -> None:
    """A ratio below 1 means minimess used less; a zero or missing baseline gives no ratio."""
    ratio = report.ratios(
        {"cpu_us_per_delivery": 6.0, "deliveries_per_s": 90.0, "slow_consumer_closes": 0},
        {"cpu_us_per_delivery": 8.0, "deliveries_per_s": 75.0, "slow_consumer_closes": 0},
    )
    assert ratio["cpu_us_per_delivery"] == pytest.approx(0.75)
    assert ratio["deliveries_per_s"] == pytest.approx(1.2)
    assert ratio["slow_consumer_closes"] is None
    assert ratio["latency_p50_ms"] is None


def test_stage_breakdown_pools_every_round_in_stage_order() -> None:
    """Stages come out in the order a message passes them, over the deliveries of all rounds."""
    rounds = [
        RoundResult({}, {"written->client": array("q", [300]), "sent->received": array("q", [100, 200])}),
        RoundResult({}, {"sent->received": array("q", [300]), "received->accepted": array("q", [50])}),
    ]
    rows = report.stage_breakdown(rounds)
    assert [row["stage"] for row in rows] == ["sent->received", "received->accepted", "written->client"]
    assert rows[0]["samples"] == 3
    assert rows[0]["p50_ms"] == 0.2
    assert rows[0]["mean_ms"] == pytest.approx(0.2)


def test_table_shows_every_measured_metric_with_its_ratio() -> None:
    """One row per metric either server measured; '-' where a value or ratio is missing."""
    baseline = {"deliveries_per_s": 1000.0, "rss_kib_per_connection": None}
    ours = {"deliveries_per_s": 1500.0, "rss_kib_per_connection": 12.5}
    table = report.render_table(
        "title", {"baseline": baseline, "minimess": ours}, report.ratios(ours, baseline)
    )
    lines = table.splitlines()
    assert lines[0] == "title"
    assert lines[1].split() == ["baseline", "minimess", "ratio"]
    deliveries = next(line for line in lines if line.startswith("deliveries /s"))
    assert deliveries.split()[-3:] == ["1,000", "1,500", "1.50"]
    rss = next(line for line in lines if line.startswith("server RSS per connection"))
    assert rss.split()[-3:] == ["-", "12.5", "-"]
    assert not any(line.startswith("latency") for line in lines)


def test_stage_table_lists_each_stage_in_milliseconds() -> None:
    """The breakdown table has one line per stage with p50, p90, p99 and mean."""
    rows = report.stage_breakdown([RoundResult({}, {"queued->written": array("q", [1500, 2500])})])
    text = report.render_stages(rows)
    line = next(line for line in text.splitlines() if line.startswith("queued -> written"))
    assert line.split()[-4:] == ["1.500", "2.500", "2.500", "2.000"]


def test_progress_off_a_terminal_prints_phases_only() -> None:
    """In a log or a pipe, live counters would be noise: only phase lines appear."""
    stream = io.StringIO()
    progress = Progress(stream)
    progress.phase("round 1/1, baseline")
    progress.update("10/100 connected")
    progress.clear()
    assert stream.getvalue() == "round 1/1, baseline\n"


def test_progress_on_a_terminal_rewrites_one_line() -> None:
    """On a terminal each update replaces the line in place."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = Progress(stream)
    progress.phase("round 1/1")
    progress.update("5/10 connected")
    assert stream.getvalue() == "\r\x1b[Kround 1/1\r\x1b[Kround 1/1: 5/10 connected"


def test_a_metric_that_cannot_be_measured_shows_n_a_even_when_no_server_has_it() -> None:
    """--target: the RSS per connection of a server that ran before is n/a, never a made-up figure."""
    columns = {"minimess at ws://x": {"deliveries_per_s": 10.0, "rss_kib_per_connection": None}}
    table = report.render_table("title", columns, None, unmeasurable={"rss_kib_per_connection"})
    rss = next(line for line in table.splitlines() if line.startswith("server RSS per connection"))
    assert rss.split()[-1] == "n/a"


def test_rss_per_connection_is_measured_only_on_servers_started_for_the_round() -> None:
    connects = [ConnectReport(connected=100, failed=0, first_failure=None, started=1.0, finished=2.0)]
    fresh = run.connect_metrics(connects, rss_before=1_000_000, rss_after=1_102_400, fresh=True)
    assert fresh["rss_kib_per_connection"] == 1.0
    ran_before = run.connect_metrics(connects, rss_before=1_000_000, rss_after=1_102_400, fresh=False)
    assert ran_before["rss_kib_per_connection"] is None
    assert ran_before["connections"] == 100


def test_the_json_document_leaves_the_admin_token_out() -> None:
    """--json files are kept and shared: the token sent to /metrics is not in them."""
    settings = BenchSettings(metrics_token="s3cret-token", baseline="none")
    document = BenchResult(settings, {"minimess": "minimess (memory)"}, {"minimess": []}).document()
    assert "metrics_token" not in document["settings"]
    assert document["settings"]["subscribers"] == settings.subscribers
    assert "s3cret-token" not in json.dumps(document)


@pytest.mark.parametrize(("subscribers", "noted"), [(10, True), (20, False)])
def test_the_table_notes_when_the_publishing_servers_extra_is_not_its_publishing_alone(
    subscribers: int, noted: bool
) -> None:
    """With fewer subscribers than servers x topics, some server lacks some topic: said under the table."""
    settings = BenchSettings(broker="kafka", baseline="none", subscribers=subscribers, topics=10)
    table = BenchResult(settings, {"minimess": "minimess (kafka)"}, {"minimess": []}).table()
    assert ("subscribers >= servers x topics (2 x 10 = 20); this run has 10" in table) is noted
