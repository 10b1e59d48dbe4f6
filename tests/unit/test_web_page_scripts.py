"""The chat page's JavaScript modules pass their unit tests (tests/js, Node's built-in runner)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.timeouts import scaled

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "src" / "minimess" / "adapters" / "web_page"


def node(*args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run Node with `args` in the project's folder, its output captured."""
    executable = shutil.which("node")
    assert executable is not None, "node is needed for the page's tests (Debian: apt-get install nodejs)"
    return subprocess.run(
        [executable, *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=scaled(timeout),
        check=False,
    )


def test_the_page_modules_pass_their_node_tests() -> None:
    """Importing each module also checks its syntax, as `node --check` does."""
    tests = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests" / "js").glob("*.test.mjs"))
    assert tests, "no tests in tests/js"
    run = node("--test", *tests)
    assert run.returncode == 0, f"node --test failed:\n{run.stdout}\n{run.stderr}"


def test_every_page_module_is_valid_javascript() -> None:
    """main.js and view.js need a DOM to run, so they are only checked, not imported, by the tests."""
    for module in sorted(PAGE.glob("*.js")):
        # From stdin as a module: `node --check file.js` may take a .js file for CommonJS, or pass
        # it unchecked.
        run = node("--input-type=module", "--check", stdin=module.read_text(encoding="utf-8"), timeout=30)
        assert run.returncode == 0, f"{module.name}:\n{run.stderr}"


def test_every_page_file_has_a_name_the_server_serves() -> None:
    """Files are served flat as /page/<name>, names [a-z_]+ with a known extension."""
    names = [path.name for path in PAGE.iterdir() if path.name not in {"__init__.py", "__pycache__"}]
    assert "index.html" in names
    for name in names:
        assert re.fullmatch(r"[a-z_]+\.(js|css|html|svg|png)", name), name
