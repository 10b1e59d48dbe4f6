"""Logging setup: structlog with a level from the CLI, console lines on a TTY and JSON otherwise."""

from __future__ import annotations

import logging
import sys

import structlog

from minimess.adapters.websocket_server.log_context import websocket_connection_id
from minimess.entrypoints.console_log import console_renderer, escape_values
from minimess.entrypoints.log_folding import SUMMARY_FIELDS, FoldingHandler
from minimess.entrypoints.log_settings import LogFormat


def configure_logging(level: str = "info", log_format: LogFormat = "auto") -> None:
    """Send every log line to stderr at `level`, rendered for a person or for a machine."""
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    if log_format == "auto":
        log_format = "console" if sys.stderr.isatty() else "json"
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    rendering: list[structlog.typing.Processor]
    if log_format == "json":
        # Tracebacks as data, without local variables: those may hold message bodies.
        shared += [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        ]
        rendering = [structlog.processors.JSONRenderer()]
    else:
        # Colours only where a person reads them: piped or in a file, the lines stay plain text.
        rendering = [escape_values, console_renderer(colors=sys.stderr.isatty())]
    structlog.configure(
        processors=[*shared, *rendering],
        # Calls below the level cost one method lookup and nothing else (hot paths log at debug).
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries (websockets, aiokafka) log through the standard library: render their records
    # like ours, so that a JSON log stays one JSON object per line; keep their chatter at warning,
    # and fold their floods (a Kafka outage makes aiokafka write dozens of lines a second).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                *shared,
                structlog.stdlib.add_logger_name,
                # websockets' records name their connection on the record, not in our context.
                websocket_connection_id,
                structlog.stdlib.ExtraAdder(allow=SUMMARY_FIELDS),
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
        )
    )
    root = logging.getLogger()
    for previous in root.handlers:
        if isinstance(previous, FoldingHandler):
            previous.close()  # its pending summaries first
    root.handlers[:] = [FoldingHandler(handler)]
    root.setLevel(max(numeric_level, logging.WARNING))
