"""The `minimess bench` command once its options are checked: run it, and where the table and the JSON go."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from minimess.bench.settings import BenchSettings

# --json and --log-dir: how the run is reported, not what it measures, so not settings.
JSON_HELP = "Also write every figure as JSON to this file ('-': stdout)."
LOG_DIR_HELP = "Where started servers log (default: a temporary folder)."


def bench(settings: BenchSettings, json_path: str | None, log_dir: Path | None) -> int:
    """Run the benchmark, print its table (and JSON); the exit status: 1 if it could not go on."""
    # Imported when a bench runs, not with this module: every command line imports it for the help
    # above, and the bench's workers, publisher and server launcher are for `minimess bench` only.
    from minimess.bench.progress import Progress
    from minimess.bench.run import run_bench
    from minimess.bench.servers import BenchError

    with tempfile.TemporaryDirectory(prefix="minimess-bench-") as temporary:
        folder = log_dir or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            result = run_bench(settings, Progress(), folder)
        except BenchError as error:
            print(f"\nminimess bench: {error}", file=sys.stderr)
            return 1
    # With the JSON on stdout, the table goes to stderr so that stdout stays one document.
    print(result.table(), file=sys.stderr if json_path == "-" else sys.stdout)
    if json_path == "-":
        json.dump(result.document(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif json_path is not None:
        Path(json_path).write_text(json.dumps(result.document(), indent=2) + "\n")
    return 0
