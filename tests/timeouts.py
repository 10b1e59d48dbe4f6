"""Test timeouts, scaled by MINIMESS_TEST_TIMEOUT_SCALE for slow machines."""

from __future__ import annotations

import os


def scaled(seconds: float) -> float:
    """`seconds` times MINIMESS_TEST_TIMEOUT_SCALE (default 1)."""
    return seconds * float(os.environ.get("MINIMESS_TEST_TIMEOUT_SCALE", "1"))
