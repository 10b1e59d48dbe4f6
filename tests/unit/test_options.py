"""Typer options derived from a settings class: names, MINIMESS_* variables, help, and parse-time ranges."""

from __future__ import annotations

import inspect
from typing import Any

import attrs
import pytest
import typer
from attrs import validators as v
from typer.testing import CliRunner, Result

from minimess.entrypoints import options


@attrs.frozen(kw_only=True)
class Inner:
    depth: int = attrs.field(default=1, validator=v.ge(1), metadata={"help": "How deep."})


@attrs.frozen(kw_only=True)
class Knobs:
    count: int = attrs.field(default=1, validator=[v.ge(1), v.le(10)], metadata={"help": "How many."})
    ratio: float = attrs.field(default=0.5, validator=[v.gt(0), v.lt(1)], metadata={"help": "How much."})
    colour: str = attrs.field(default="red", metadata={"choices": ("red", "blue")})
    names: tuple[str, ...] = attrs.field(default=(), metadata={"flag": "name"})
    label: str | None = None
    loud: bool = False
    inner: Inner = attrs.field(factory=Inner)


@attrs.frozen(kw_only=True)
class Named:
    who: str = attrs.field(metadata={"help": "Who."})


def command_app(built: list[Any], settings_class: type = Knobs) -> typer.Typer:
    """An app whose one command has the options of `settings_class` and records what they build."""

    def command(**values: Any) -> None:
        built.append(options.build(settings_class, values))

    command.__signature__ = inspect.Signature(options.parameters(settings_class))  # type: ignore[attr-defined]
    app = typer.Typer()
    app.command()(command)
    return app


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[Result, list[Knobs]]:
    built: list[Knobs] = []
    # Wide, so that help and error boxes do not fold a line in the middle of a name.
    return CliRunner().invoke(command_app(built), list(args), env={"COLUMNS": "250", **(env or {})}), built


def test_flags_build_the_settings_and_missing_ones_keep_the_field_defaults() -> None:
    """Nested classes are flattened, a `flag` renames, a tuple is repeatable, a choice becomes its text."""
    result, built = invoke("--count=3", "--colour=blue", "--name=a", "--name=b", "--loud", "--depth=4")
    assert result.exit_code == 0, result.output
    assert built == [Knobs(count=3, colour="blue", names=("a", "b"), loud=True, inner=Inner(depth=4))]
    result, built = invoke()
    assert built == [Knobs()]


def test_a_field_without_a_default_is_a_required_option() -> None:
    built: list[Named] = []
    result = CliRunner().invoke(command_app(built, Named), [], env={"COLUMNS": "250"})
    assert result.exit_code == 2
    assert "Missing option '--who'" in result.output
    CliRunner().invoke(command_app(built, Named), ["--who=alice"])
    assert built == [Named(who="alice")]


def test_each_option_is_read_from_its_minimess_variable() -> None:
    env = {"MINIMESS_RATIO": "0.25", "MINIMESS_NAME": "a b", "MINIMESS_LABEL": "x", "MINIMESS_DEPTH": "2"}
    result, built = invoke(env=env)
    assert result.exit_code == 0, result.output
    assert built == [Knobs(ratio=0.25, names=("a", "b"), label="x", inner=Inner(depth=2))]


@pytest.mark.parametrize("value", ["--count=0", "--count=11", "--ratio=0", "--ratio=1", "--colour=green"])
def test_a_value_outside_a_fields_bounds_or_choices_is_a_usage_error_naming_the_option(value: str) -> None:
    """ge, le, gt and lt are checked while parsing: exit 2 before any settings are built."""
    result, built = invoke(value)
    assert (result.exit_code, built) == (2, [])
    assert f"Invalid value for '{value.partition('=')[0]}'" in result.output
    # In our words ("must be at least 1, got 0"), not the validation library's ("Input should be ...").
    assert "must be " in result.output
    assert "Input should" not in result.output
    assert "Value error" not in result.output


@pytest.mark.parametrize("value", ["--count=1", "--count=10", "--ratio=0.001", "--ratio=0.999"])
def test_a_value_on_or_inside_the_bounds_is_accepted(value: str) -> None:
    assert invoke(value)[0].exit_code == 0


def test_help_shows_each_fields_help_variable_default_and_bounds() -> None:
    help_text = invoke("--help")[0].output
    shown = ["How many.", "MINIMESS_COUNT", "x<=10", "How much. (must be > 0 and < 1)", "[default: 0.5]"]
    assert [text for text in shown if text not in help_text] == []
