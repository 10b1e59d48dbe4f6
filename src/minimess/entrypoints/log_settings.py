"""How a server is told to log: the level and the format, as options of `minimess serve`.

Apart from the logging setup, which imports structlog: every command line derives its options from
the settings, `--help` and `--version` too, and those log nothing.
"""

from __future__ import annotations

from typing import Literal

import attrs

LogFormat = Literal["auto", "console", "json"]
LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("auto", "console", "json")


@attrs.frozen(kw_only=True)
class LogSettings:
    """How a server logs; `-v` and `-q` are shorthands for the level."""

    log_level: str = attrs.field(
        default="info",
        validator=attrs.validators.in_(LEVELS),
        metadata={"help": "Lowest level logged.", "choices": LEVELS},
    )
    log_format: LogFormat = attrs.field(
        default="auto",
        validator=attrs.validators.in_(FORMATS),
        metadata={"help": "console on a terminal, json otherwise, unless set.", "choices": FORMATS},
    )
