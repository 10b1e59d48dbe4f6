"""One run of the history check: the workload on a cluster, each fault in turn, the drain, the verdict."""

from __future__ import annotations

import time
from collections.abc import Sequence

import attrs

from benchmarks.history.checker import Verdict, check
from benchmarks.history.faults import Cluster, inject
from benchmarks.history.records import Record
from benchmarks.history.workload import Workload, WorkloadSettings


@attrs.frozen
class Outcome:
    """The verdict on one run, its history, and the wait that ran out, if one did."""

    verdict: Verdict
    records: Sequence[Record]
    # The faults injected: all that were asked for, unless a wait ran out first.
    faults: Sequence[str]
    seconds: float
    stalled: str | None = None


async def run(
    cluster: Cluster,
    url: str,
    clients: int,
    faults: Sequence[str],
    settings: WorkloadSettings,
    within: float,
    hold: float = 0.0,
    seed: int = 0,
    acks: int = 20,
) -> Outcome:
    """Clients on `url` until each is subscribed and has `acks` acks; each fault, then again until
    each is subscribed and has `acks` more; the drain; the checker's verdict on everything recorded.

    A wait that runs out (each is bounded by `within`) ends the run early, with the verdict on what
    was recorded until then.
    """
    started = time.monotonic()
    workload = Workload(url, clients, settings, seed)
    workload.start()
    stalled = None
    injected: list[str] = []
    try:
        await workload.until_ready(within, acks)
        for name in faults:
            injected.append(name)
            await inject(name, cluster, workload, within, hold)
            await workload.until_ready(within, acks)
        await workload.drain(within)
    except TimeoutError as error:
        stalled = str(error)
    finally:
        await workload.close()
    records = list(workload.recorder.records)
    return Outcome(check(records), records, tuple(injected), time.monotonic() - started, stalled)
