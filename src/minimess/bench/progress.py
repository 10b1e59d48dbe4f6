"""The progress display of a benchmark run: one line rewritten in place on a terminal."""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    """Shows what the benchmark is doing; on a terminal, live counters too.

    Off a terminal (a log, a test) only the phases are printed, one line each, so that the
    output stays readable and small.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._live = self._stream.isatty()
        self._phase = ""

    def phase(self, text: str) -> None:
        self._phase = text
        if self._live:
            self._write(text)
        else:
            print(text, file=self._stream, flush=True)

    def update(self, detail: str) -> None:
        if self._live:
            self._write(f"{self._phase}: {detail}")

    def clear(self) -> None:
        if self._live:
            self._write("")

    def _write(self, text: str) -> None:
        # Carriage return and erase-line: the next state replaces the last one.
        self._stream.write(f"\r\x1b[K{text}")
        self._stream.flush()
