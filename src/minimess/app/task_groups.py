"""Running sibling tasks that live and die together: the first one to end ends the others."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


async def until_first_ends(*jobs: Coroutine[Any, Any, None]) -> set[asyncio.Task[None]]:
    """Run `jobs` as tasks until one ends; cancel and await the others; return the ended ones.

    Unlike a TaskGroup, a job that returns normally also ends its siblings (a connection's
    reader returning means the connection is over). Errors are left in the returned tasks for
    the caller to handle; the cancelled siblings' outcomes are dropped.
    """
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return done
