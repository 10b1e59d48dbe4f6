"""What the devtools command lines share: a failure with a one-line reason, and how a command runs."""

from __future__ import annotations

import argparse
import os
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
    except BrokenPipeError:
        # The reader went away (`scripts/cluster status | head -3`): as quiet as any Unix tool. Later
        # writes to the closed pipe, Python's own flush at exit included, go to /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
