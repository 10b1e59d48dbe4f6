"""run_interactive: however the session ends, the link is closed and what is dropped is counted."""

from __future__ import annotations

import asyncio

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from minimess.adapters.terminal import run_interactive
from minimess.app.chat_client import LinkEvents
from minimess.domain.model import Topic
from tests.timeouts import scaled


class IdleLink:
    """A Link that never connects: run() waits until close(), which it records."""

    def __init__(self, unsent: int) -> None:
        self.closed = asyncio.Event()
        self.unsent = unsent
        # One more, sent before a drop: reported as the link closes, not counted as never sent.
        self.pending = unsent + 1

    @property
    def topics(self) -> tuple[Topic, ...]:
        return ()

    @property
    def is_connected(self) -> bool:
        return False

    def subscribe(self, topic: Topic) -> None: ...
    def unsubscribe(self, topic: Topic) -> None: ...
    def publish(self, topic: Topic, body: str) -> bool:
        return True

    def oversize(self, topic: Topic, body: str) -> str | None:
        return None

    def retry_now(self) -> None: ...

    async def run(self, events: LinkEvents) -> None:
        await self.closed.wait()

    def close(self) -> None:
        self.closed.set()


class FailingClient:
    """A ChatClient whose handling of a typed line fails, as a bug would make it."""

    attached = None
    prompt = "> "
    status_line = ""
    waiting_to_retry = False
    known_topics: tuple[Topic, ...] = ()

    def started(self) -> None: ...

    def handle_line(self, line: str) -> bool:
        raise RuntimeError(f"cannot handle {line!r}")


async def test_a_line_whose_handling_fails_still_closes_the_link_and_counts_the_dropped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The error comes out once the link is closed and the dropped messages are counted, not before."""
    link = IdleLink(unsent=2)
    with create_pipe_input() as keys, create_app_session(input=keys, output=DummyOutput()):
        keys.send_text("boom\r")
        with pytest.raises(RuntimeError, match="cannot handle 'boom'"):
            async with asyncio.timeout(scaled(5)):
                await run_interactive(FailingClient(), link)  # type: ignore[arg-type]
    assert link.closed.is_set()
    assert "minimess client: 2 messages not sent, dropped on quitting" in capsys.readouterr().err
