"""What the devtools command lines share: a failure with a one-line reason, and how a command runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

Command = Callable[[argparse.Namespace], int]
"""One subcommand: parsed arguments in, exit status out."""


class Failure(Exception):
    """A reason to stop with a one-line message (and maybe some log lines after it)."""


def run(program: str, args: argparse.Namespace) -> int:
    """Run the subcommand `args` chose; a Failure is its one-line reason on stderr and exit 1."""
    try:
        return int(args.run(args))
    except Failure as failure:
        print(f"{program}: error: {failure}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
