"""The console log renderer: structlog's, and no value can drive or deceive the terminal it is read on."""

from __future__ import annotations

import traceback
from typing import TextIO

import structlog
from structlog.typing import EventDict, ExcInfo, WrappedLogger

from minimess.app.visible_text import escape_invisible


def escape_values(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Every text value (the event included) with its control, bidi and zero-width characters escaped.

    Request paths, close reasons and library messages carry what clients sent: raw, an escape
    sequence would act on the terminal and a newline would forge a log line. Other values are
    shown as their repr, which escapes them already.
    """
    return {
        key: escape_invisible(value) if isinstance(value, str) else value for key, value in event_dict.items()
    }


def escaped_traceback(sio: TextIO, exc_info: ExcInfo) -> None:
    """A plain traceback in which an exception's message, which may quote a client, is one escaped line.

    Plain rather than Rich's: without local variables, which may hold message bodies (as in JSON).
    """
    _, error, trace = exc_info
    sio.write("\n")
    for chunk in traceback.TracebackException(type(error), error, trace).format():
        if chunk.startswith("  File "):
            # A frame: where and which source line, both this program's own; its lines stay lines.
            sio.write("\n".join(escape_invisible(line) for line in chunk.split("\n")))
        else:
            # A message ("ValueError: <what it says>\n"), or the words between chained exceptions.
            text = chunk.strip("\n")
            start = chunk.index(text) if text else len(chunk)
            sio.write(chunk[:start] + escape_invisible(text) + chunk[start + len(text) :])


def console_renderer(colors: bool) -> structlog.dev.ConsoleRenderer:
    """Key=value lines for a person; the styles are the renderer's own escape sequences, nothing else.

    The fields keep the order they were logged in, not the alphabet's: the start line's `url`
    comes first, not after fifteen others.
    """
    return structlog.dev.ConsoleRenderer(
        colors=colors, exception_formatter=escaped_traceback, sort_keys=False
    )
