"""asyncio's reports of failed accepts go to the throttled log; every other report goes where it went."""

from __future__ import annotations

import asyncio
import errno
from typing import Any

from minimess.adapters.websocket_server.accept_errors import ACCEPT_FAILED, AcceptErrorLog
from minimess.adapters.websocket_server.log_throttle import ThrottledEvent


class Recorded(ThrottledEvent):
    """A throttled event that only remembers what it was told."""

    def __init__(self) -> None:
        self.recorded: list[dict[str, Any]] = []

    def record(self, **fields: Any) -> None:
        self.recorded.append(fields)


EMFILE = OSError(errno.EMFILE, "Too many open files")


async def test_accept_failures_are_throttled_and_other_reports_reach_the_previous_handler() -> None:
    loop = asyncio.get_running_loop()
    passed_on: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: passed_on.append(context))
    throttled = Recorded()
    try:
        with AcceptErrorLog(throttled).installed(loop):
            loop.call_exception_handler({"message": ACCEPT_FAILED, "exception": EMFILE})
            retry = "Exception in callback BaseSelectorEventLoop._start_serving(...)"
            loop.call_exception_handler(
                {"message": retry, "exception": ValueError("Invalid file descriptor: -1")}
            )
            loop.call_exception_handler({"message": "Task exception was never retrieved"})
        loop.call_exception_handler({"message": ACCEPT_FAILED, "exception": EMFILE})
    finally:
        loop.set_exception_handler(None)
    assert throttled.recorded == [
        {"error": "EMFILE: Too many open files"},
        {"error": "Invalid file descriptor: -1"},
    ]
    # The other report while installed, and the accept failure after the block, went on as before.
    assert [context["message"] for context in passed_on] == [
        "Task exception was never retrieved",
        ACCEPT_FAILED,
    ]
