"""Debian's Chromium driven by Playwright for the page's tests, and what each page logs to its console."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import attrs
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Error, Page, sync_playwright

from devtools import processes
from tests.timeouts import scaled

# The machine's network is closed: without these, Chromium keeps trying Google's hosts (updates,
# sync, field trials, QUIC probes) and logs each failure.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Until a Playwright call that waits (a click, an expectation) gives up, in milliseconds.
ACTION_TIMEOUT_MS = 10_000


class BrowserUnavailable(Exception):
    """Chromium is not installed here (one that is installed but fails to start is a failure)."""


def find_chromium() -> str:
    """The path of Debian's `chromium`; BrowserUnavailable when it is not installed."""
    executable = processes.find_executable("chromium")
    if executable is None:
        raise BrowserUnavailable(f"chromium is not installed (looked in {processes.search_path()})")
    return executable


def browser_required() -> bool:
    """Whether a browser that cannot run fails the run (CI) instead of skipping the page's tests."""
    return os.environ.get("MINIMESS_REQUIRE_BROWSER", "") == "1"


def browser_unavailable(reason: str) -> NoReturn:
    """Fail (MINIMESS_REQUIRE_BROWSER=1) or skip the test that needs the browser, with the reason."""
    if browser_required():
        pytest.fail(f"the browser is required (MINIMESS_REQUIRE_BROWSER=1) but cannot run: {reason}")
    pytest.skip(f"the browser cannot run here (set MINIMESS_REQUIRE_BROWSER=1 to fail instead): {reason}")


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, launched by Playwright (which never downloads a browser of its own)."""
    executable = find_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@attrs.define
class ConsoleLog:
    """The errors and warnings a page logged to its console and the exceptions it did not catch.

    A test that expects some (a refused WebSocket handshake logs one) says so with `allow`; any
    other fails the test when its pages are closed.
    """

    entries: list[str] = attrs.Factory(list)
    allowed: list[re.Pattern[str]] = attrs.Factory(list)

    def watch(self, page: Page) -> None:
        # Functions, not bound methods: Playwright keeps a mark on a bound method's object, which
        # a slotted class cannot take.
        page.on("console", lambda message: self._console(message))
        page.on("pageerror", lambda error: self._page_error(error))

    def allow(self, pattern: str) -> None:
        """Console lines matching `pattern` (a regex searched in `<type>: <text>`) are expected."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [entry for entry in self.entries if not any(p.search(entry) for p in self.allowed)]

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            location = message.location
            self.entries.append(f"{message.type}: {message.text} (at {location.get('url', '?')})")

    def _page_error(self, error: Error) -> None:
        self.entries.append(f"pageerror: {error.name}: {error.message}")


@attrs.define
class PageOpener:
    """Opens pages, each in a context of its own (its own storage), and checks their consoles at the end."""

    browser: Browser
    console: ConsoleLog = attrs.Factory(ConsoleLog)
    contexts: list[BrowserContext] = attrs.Factory(list)

    def __call__(self, width: int = 1280, height: int = 800) -> Page:
        context = self.browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(scaled(ACTION_TIMEOUT_MS))
        self.contexts.append(context)
        page = context.new_page()
        self.console.watch(page)
        return page

    def close(self) -> list[str]:
        """Close every context (a test closes them before stopping what they are connected to, so that
        they log no reconnection); the console entries no test expected. Safe to call twice."""
        for context in self.contexts:
            context.close()
        self.contexts.clear()
        return self.console.unexpected()
