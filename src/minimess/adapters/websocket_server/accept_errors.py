"""Failed accepts on the listening socket (no descriptors left), logged at most once a second with a count."""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import Iterator
from typing import Any, Final

from minimess.adapters.websocket_server.log_throttle import ThrottledEvent

# What asyncio's accept loop tells the loop's exception handler when accept() fails for want of
# descriptors or memory (selector_events._accept_connection).
ACCEPT_FAILED: Final = "socket.accept() out of system resource"
# Python without the fix of CPython gh-151615 goes on calling accept() after such a failure and
# schedules one retry per call: up to a backlog's worth of reports per wakeup, and retries that
# still fire once the listening socket is closed, failing on its descriptor.
_RETRY: Final = "BaseSelectorEventLoop._start_serving"


class AcceptErrorLog:
    """The event loop's exception handler: accept failures throttled, anything else as before."""

    def __init__(self, throttled: ThrottledEvent | None = None) -> None:
        self._throttled = ThrottledEvent("accept_failed") if throttled is None else throttled
        self._previous: Any = None

    @contextlib.contextmanager
    def installed(self, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
        """Handle `loop`'s exceptions for the time of the block, passing on what is not an accept failure."""
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(self)
        try:
            yield
        finally:
            loop.set_exception_handler(self._previous)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        exception = context.get("exception")
        if message == ACCEPT_FAILED or (_RETRY in message and isinstance(exception, ValueError | OSError)):
            self._throttled.record(error=_describe(exception))
        elif self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)


def _describe(exception: object) -> str:
    """`EMFILE: Too many open files`, or the exception's text when it has no errno."""
    if isinstance(exception, OSError) and exception.errno is not None:
        name = errno.errorcode.get(exception.errno, str(exception.errno))
        return f"{name}: {exception.strerror}"
    return str(exception)
