"""Shell completion as the README says to get it: the environment activated, `minimess <Tab>` in bash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.server_process import PROCESS_START
from tests.timeouts import scaled

pytestmark = pytest.mark.integration

# The README's steps, then what bash does on Tab: call the completion function with the words typed.
SCRIPT = """
source "$1/bin/activate"
minimess --install-completion > /dev/null
source ~/.bash_completions/minimess.sh
complete -p minimess
for typed in "minimess se" "minimess serve --max-mess"; do
    COMP_WORDS=($typed); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    _minimess_completion minimess
    echo "$typed -> ${COMPREPLY[*]}"
done
"""


def test_minimess_tab_completes_commands_and_options_once_the_environment_is_activated(
    tmp_path: Path,
) -> None:
    """Completion asks the `minimess` on the PATH: `uv run minimess` is not one, the activated .venv's is."""
    environment = Path(sys.prefix)
    assert (environment / "bin" / "activate").is_file(), environment
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TERM": "dumb"}
    done = subprocess.run(
        ["bash", "-c", SCRIPT, "bash", str(environment)],
        env={**env, "MINIMESS_TEST_TIMEOUT_SCALE": os.environ.get("MINIMESS_TEST_TIMEOUT_SCALE", "1")},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=scaled(2 * PROCESS_START),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "complete -o default -F _minimess_completion minimess",
        "minimess se -> serve",
        "minimess serve --max-mess -> --max-message-bytes",
    ], done.stderr
