"""The terminal: an interactive prompt that notices never garble, or plain printing for scripts."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Iterator

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout

from minimess.app.chat_client import ChatClient, Link
from minimess.app.completion import complete

# How often the status toolbar is looked at and, while it shows, redrawn: its countdown moves in
# tenths of a second, and a change (connected again, Enter pressed) shows within this.
STATUS_REFRESH = 0.25
# What a user can do about the status line while the client waits to reconnect, shown after it.
RETRY_HINT = "; Enter retries now"
# Said when Ctrl-C is pressed on an empty line, where a shell user may expect it to leave.
CTRL_C_HINT = "* Ctrl-C clears the line; Ctrl-D on an empty line, or quit, leaves"


class InteractiveDisplay:
    """Prints above the prompt: prompt_toolkit's patched stdout redraws the line being typed."""

    def message(self, line: str) -> None:
        print(line, flush=True)

    def notice(self, line: str) -> None:
        print(line, flush=True)

    def tick(self, line: str) -> None:
        """Time ticks would only scroll the conversation away; the interactive client drops them."""

    def status(self, line: str) -> None:
        """Shown in the prompt's bottom toolbar, which follows ChatClient.status_line (_show_status)."""


class PrintDisplay:
    """Messages to stdout, one line each; everything else to stderr."""

    def message(self, line: str) -> None:
        print(line, flush=True)

    def notice(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def tick(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def status(self, line: str) -> None:
        """Each change of the status line, once: a log to read later has no countdown to watch."""
        if line:
            print(f"* {line}", file=sys.stderr, flush=True)


class CommandCompleter(Completer):
    """Tab completes command words, and the topics the client knows after `sub`, `attach`, …"""

    def __init__(self, client: ChatClient) -> None:
        self._client = client

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        found = complete(
            document.text_before_cursor, self._client.attached is not None, self._client.known_topics
        )
        for word in found.words:
            yield Completion(word, start_position=-len(found.partial))


async def run_interactive(client: ChatClient, link: Link) -> None:
    """Read lines at a `> ` prompt (arrow keys walk the history, Tab completes) until quit or
    Ctrl-D; Ctrl-C clears the line being typed.

    Ends too when the link gives up (the server refused the token), raising what it raised, and
    when acting on a line fails, raising that once the link is closed. Messages never sent when
    it ends are dropped, and counted on stderr.
    """
    session: PromptSession[str] = PromptSession(
        history=InMemoryHistory(),
        completer=CommandCompleter(client),
        # Only on Tab: a menu popping up under the line at every key would hide messages.
        complete_while_typing=False,
    )
    with patch_stdout(raw=True):
        client.started()
        connection = asyncio.create_task(link.run(client))
        typing = asyncio.create_task(_read_lines(session, client))
        status = asyncio.create_task(_show_status(session, client))
        try:
            await asyncio.wait([connection, typing], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (typing, status):
                task.cancel()
            # What a task raised is looked at below: the link is closed first, whatever happened.
            await asyncio.gather(typing, status, return_exceptions=True)
            await _close(link, connection)
    # After the prompt is gone, where it stays readable. Publishes sent at least once were reported
    # failed as the link closed (they may have arrived); these were never sent.
    if dropped := link.unsent:
        what = "message" if dropped == 1 else "messages"
        print(f"minimess client: {dropped} {what} not sent, dropped on quitting", file=sys.stderr, flush=True)
    _raise_what_ended(connection)
    _raise_what_ended(typing)


async def _read_lines(session: PromptSession[str], client: ChatClient) -> None:
    while True:
        try:
            line = await session.prompt_async(client.prompt)
        except KeyboardInterrupt:
            # Ctrl-C throws the line being typed away, as a shell does; Ctrl-D or quit leaves.
            # On an empty line it was most likely meant to leave: say how.
            if not session.default_buffer.text.strip():
                print(CTRL_C_HINT, flush=True)
            continue
        except EOFError:
            # Ctrl-D on an empty line: quit, asking first if messages are unsent.
            if client.quit():
                return
            continue
        if not client.handle_line(line):
            return


async def _show_status(session: PromptSession[str], client: ChatClient) -> None:
    """Keep the bottom toolbar on the client's status line: there while it says something, redrawn
    with its countdown; gone while connected, so that the screen is the conversation alone."""
    shown: str | None = None
    while True:
        line = client.status_line
        toolbar = (line + RETRY_HINT if client.waiting_to_retry else line) or None
        if toolbar != shown:
            session.bottom_toolbar = toolbar
            session.app.invalidate()
            shown = toolbar
        await asyncio.sleep(STATUS_REFRESH)


async def _close(link: Link, connection: asyncio.Task[None]) -> None:
    """Close the link; give up on a connection attempt still hanging after a moment."""
    link.close()
    _, hanging = await asyncio.wait([connection], timeout=3)
    for task in hanging:
        task.cancel()


def _raise_what_ended(task: asyncio.Task[None]) -> None:
    """Raise the error that ended `task`, if one did (the link gave up rather than being closed)."""
    if task.done() and not task.cancelled() and (error := task.exception()) is not None:
        raise error


async def run_printing(client: ChatClient, link: Link) -> None:
    """Receive and print until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    client.started()
    connection = asyncio.create_task(link.run(client))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([connection, stopped], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    await _close(link, connection)
    _raise_what_ended(connection)
