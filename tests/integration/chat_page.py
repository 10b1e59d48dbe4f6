"""A driver of the browser chat page through its DOM contract only (ids, classes, data- attributes)."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from playwright.sync_api import Locator, Page, expect

from tests.timeouts import scaled

# Until an expectation on the page gives up, in milliseconds: a server round trip, or a reconnect
# after a short backoff.
EXPECT_TIMEOUT_MS = 10_000


def expect_timeout(within: float | None) -> float:
    """Playwright's timeout in milliseconds for `within` seconds (scaled), or the default."""
    return scaled(EXPECT_TIMEOUT_MS if within is None else within * 1000)


class ChatPage:
    """One person's chat page: opens it, types into it, and reads what it shows."""

    def __init__(self, page: Page) -> None:
        self.page = page

    @property
    def state_line(self) -> Locator:
        """The connection state, `#state`."""
        return self.page.locator("#state")

    @property
    def countdown(self) -> Locator:
        """The time left until the next attempt while waiting, `#countdown` (outside `#state`'s live region)."""
        return self.page.locator("#countdown")

    @property
    def message_lines(self) -> Locator:
        """The attached room's messages, `li.message` of `ol#messages`, pending and failed ones included."""
        return self.page.locator("ol#messages > li.message")

    @property
    def notice_lines(self) -> Locator:
        """The notes in the attached room, `li.notice`."""
        return self.page.locator("ol#messages > li.notice")

    def room(self, topic: str) -> Locator:
        """The room list's entry of `topic`."""
        return self.page.locator(f'#rooms li[data-topic="{topic}"]')

    def open(self, base_url: str, uid: str, token: str | None = None) -> ChatPage:
        """Open the page at `base_url` (http://host:port) as `uid`: `?uid=`, or the login form for a token."""
        if token is None:
            self.page.goto(f"{base_url}/?{urlencode({'uid': uid})}")
        else:
            self.page.goto(f"{base_url}/")
            self.page.locator("input#uid").fill(uid)
            self.page.locator("input#token").fill(token)
            self.page.locator("button#connect").click()
        return self

    def join(self, topic: str) -> None:
        """Join `topic` by the join form (which attaches it), and wait until it is the attached room."""
        field = self.page.locator("form#join input#room")
        field.fill(topic)
        field.press("Enter")
        expect(self.room(topic)).to_have_attribute("aria-current", "true", timeout=expect_timeout(None))

    def leave(self, topic: str) -> None:
        """Leave `topic`: attach it, then press the Leave button beside its name, and wait until it is gone."""
        self.attach(topic)
        self.page.locator("button#leave").click()
        expect(self.room(topic)).to_have_count(0, timeout=expect_timeout(None))

    def attach(self, topic: str) -> None:
        """Attach the joined room `topic` by clicking its name in the room list."""
        self.room(topic).locator("button.room").click()
        expect(self.room(topic)).to_have_attribute("aria-current", "true", timeout=expect_timeout(None))

    def send(self, text: str) -> None:
        """Type `text` into the line and press Enter."""
        line = self.page.locator("form#compose #line")
        line.fill(text)
        line.press("Enter")

    def expect_echoed(self, within: float | None = None) -> None:
        """Wait until no own publish is pending: each came back from the server as a message."""
        pending = self.page.locator("ol#messages > li.message.pending")
        expect(pending).to_have_count(0, timeout=expect_timeout(within))

    def messages(self) -> list[tuple[str, str]]:
        """(from, body) of each message line now shown, `@` left off the sender."""
        lines = self.message_lines
        senders = lines.locator("span.from").all_text_contents()
        bodies = lines.locator("span.body").all_text_contents()
        return [(sender.removeprefix("@"), body) for sender, body in zip(senders, bodies, strict=True)]

    def expect_messages(self, expected: list[tuple[str, str]], within: float | None = None) -> None:
        """Wait until the message lines read exactly `HH:MM:SS (@from): body` for these (from, body)."""
        texts = [re.compile(rf"^\d\d:\d\d:\d\d \(@{re.escape(f)}\): {re.escape(b)}$") for f, b in expected]
        expect(self.message_lines).to_have_text(texts, timeout=expect_timeout(within))

    def state(self) -> str:
        """The connection state's `data-state` (idle, connecting, connected, waiting, refused)."""
        return self.state_line.get_attribute("data-state") or ""

    def expect_state(
        self,
        state: str | re.Pattern[str],
        text: str | re.Pattern[str] | None = None,
        within: float | None = None,
    ) -> None:
        """Wait until `#state` has `data-state` = `state` (and says `text`, a substring or a pattern)."""
        expect(self.state_line).to_have_attribute("data-state", state, timeout=expect_timeout(within))
        if text is not None:
            expect(self.state_line).to_contain_text(text, timeout=expect_timeout(within))

    def notices(self) -> list[str]:
        """The text of each notice line in the attached room."""
        return self.notice_lines.all_text_contents()

    def unread(self, topic: str) -> int:
        """The unread count shown for `topic` in the room list (0 when hidden)."""
        counter = self.room(topic).locator("span.unread")
        if not counter.is_visible():
            return 0
        return int(counter.text_content() or "0")
