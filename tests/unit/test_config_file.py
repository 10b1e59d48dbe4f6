"""The --config file's format: each option's kind of value, and values written as TOML read back alike."""

from __future__ import annotations

import tomllib

import pytest

from minimess.bootstrap.settings import ServeSettings
from minimess.entrypoints import config_file, options


def test_each_option_takes_the_kind_of_value_its_flag_takes() -> None:
    kinds = options.value_kinds(ServeSettings)
    assert kinds["port"] is int
    assert kinds["ping_timeout"] is float
    assert kinds["trace"] is bool
    assert kinds["trusted_proxy"] is list
    assert kinds["broker"] is str  # a choice
    assert kinds["node_id"] is str  # optional


@pytest.mark.parametrize(
    "value",
    [
        'a "quoted" \\ back\tslash',
        "ünï€ode",
        "del \x7f nul \x00",
        "",
        0,
        -3,
        0.1,
        1e-7,
        float("inf"),
        True,
        False,
        ["a", 'b"c'],
    ],
)
def test_a_value_written_as_toml_reads_back_the_same(value: object) -> None:
    document = tomllib.loads(f"key = {config_file.toml_value(value)}")
    assert document["key"] == value
