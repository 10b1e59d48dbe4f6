"""Command-line options derived from settings classes: an option's default, range and help live on its field.

A field becomes `--field-name` (or `--<metadata flag>`), read from `MINIMESS_FIELD_NAME` too (or
another prefix's variable, or its `envvar` metadata), with the field's default and its `help`
metadata. Its value is parsed, and its converter and validator run, when the option is parsed,
from a flag, a variable or a --config file alike: a bad value is a usage error that says where it
came from, in words of our own. A field's validator therefore sees its value alone (the instance
is None); a check across fields belongs in the class's `__attrs_post_init__`. A bool
field is a `--name/--no-name` flag; a tuple field is a repeatable option whose value is named by
its `metavar` metadata; `default_text` metadata says a computed default in words. A field whose
type is itself a settings class contributes that class's options.
"""

from __future__ import annotations

import enum
import inspect
import math
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, cast

import attrs
import typer

ENV_PREFIX = "MINIMESS_"


def option_name(field: attrs.Attribute[Any]) -> str:
    """The Python name of a field's option (its flag with `_` for `-`)."""
    return str(field.metadata.get("flag", field.name))


def parameters(settings_class: type, env_prefix: str = ENV_PREFIX) -> list[inspect.Parameter]:
    """One keyword-only parameter per option of `settings_class`, in field order."""
    return [_parameter(field, env_prefix) for field in _leaf_fields(settings_class)]


def value_kinds(settings_class: type) -> dict[str, type]:
    """What each option's value is, by Python name: bool, int, float, str or list (of str)."""
    kinds: dict[str, type] = {}
    for field in _leaf_fields(settings_class):
        annotation, _default = _cli_type(field)
        named = [kind for kind in (bool, int, float) if annotation in (kind, kind | None)]
        is_list = annotation == list[str] | None
        kinds[option_name(field)] = named[0] if named else list if is_list else str
    return kinds


def secret_option_names(settings_class: type) -> list[str]:
    """The Python names of the options whose values are secrets (fields kept out of repr)."""
    return [option_name(field) for field in _leaf_fields(settings_class) if not field.repr]


def build(settings_class: type, values: Mapping[str, Any]) -> Any:
    """An instance of `settings_class` from parsed option values (missing ones keep their defaults)."""
    arguments: dict[str, Any] = {}
    for field in attrs.fields(settings_class):
        if _is_group(field):
            arguments[field.name] = build(field.type, values)
            continue
        value = values.get(option_name(field))
        if value is None:
            continue
        if isinstance(value, enum.Enum):
            value = value.value
        arguments[field.name] = tuple(value) if isinstance(value, list) else value
    return settings_class(**arguments)


def describe(error: Exception, settings_class: type) -> str:
    """One line for a refused value: attrs' validators name the field, the user knows the option."""
    message = str(error.args[0]) if error.args else str(error)
    for field in _leaf_fields(settings_class):
        prefix = repr(field.name) + " "
        if message.startswith(prefix):
            return f"invalid {_flag(field)}: {message.removeprefix(prefix)}"
    return message


def refusal(ctx: typer.Context, name: str, flags: list[str], envvar: Any, message: str) -> str:
    """Option `name`'s value refused for `message`, naming its flag, or its variable if it came from there."""
    source = ctx.get_parameter_source(name)
    given = source is not None and source.name == "ENVIRONMENT" and isinstance(envvar, str)
    where = envvar if given else flags[0] if flags else name
    # A converter's message may name what it refuses already: `invalid uid 'a/b': ...`.
    return f"{where}: {message}" if message.startswith("invalid ") else f"invalid {where}: {message}"


def _leaf_fields(settings_class: type) -> list[attrs.Attribute[Any]]:
    """The fields that are options, with those of nested settings classes in their place."""
    attrs.resolve_types(settings_class)
    fields: list[attrs.Attribute[Any]] = []
    for field in attrs.fields(settings_class):
        fields += _leaf_fields(field.type) if _is_group(field) else [field]
    return fields


def _is_group(field: attrs.Attribute[Any]) -> bool:
    """Whether a field holds a nested settings class rather than one option."""
    return isinstance(field.type, type) and attrs.has(field.type)


def _flag(field: attrs.Attribute[Any]) -> str:
    return "--" + option_name(field).replace("_", "-")


def _parameter(field: attrs.Attribute[Any], env_prefix: str) -> inspect.Parameter:
    name = option_name(field)
    annotation, default = _cli_type(field)
    closed = {check.compare_op: check.bound for check in _bounds(field) if check.compare_op in ("<=", ">=")}
    flag = _flag(field)
    help_text = str(field.metadata.get("help", "")) + _open_bounds_text(field)
    metavar = None
    if field.type is bool:
        # Both spellings, so that a flag given in the environment or a config file can be turned off.
        flag = f"{flag}/--no-{flag.removeprefix('--')}"
    elif isinstance(field.default, tuple):
        metavar = f"<{field.metadata.get('metavar', 'str')}>"
        if "repeatable" not in help_text:
            help_text += " (repeatable)"
    show_default: bool | str = field.type is not bool
    if "default_text" in field.metadata:
        show_default = str(field.metadata["default_text"])
    option = typer.Option(
        flag,
        *field.metadata.get("aliases", ()),
        parser=_parser(annotation),
        envvar=str(field.metadata.get("envvar", env_prefix + name.upper())),
        help=help_text,
        metavar=metavar,
        # Closed bounds are click's ranges (shown in --help); open ones are checked on parsing.
        min=closed.get(">="),
        max=closed.get("<="),
        callback=_checker(field),
        show_default=show_default,
    )
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[annotation, option]
    )


def _cli_type(field: attrs.Attribute[Any]) -> tuple[Any, Any]:
    """The type the command line parses a field as, and its default there."""
    default: Any = field.default
    if default is attrs.NOTHING:
        return field.type, ...  # no default: a required option
    if "default_text" in field.metadata:
        # Computed when the settings are built (e.g. from the machine): left out, the field's own.
        return cast(Any, field.type) | None, None
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        default = default.factory()
    choices = field.metadata.get("choices")
    if choices is not None:
        names = choices() if callable(choices) else choices
        kind = enum.Enum(field.name.title().replace("_", ""), {choice: choice for choice in names}, type=str)  # type: ignore[misc]
        return kind, kind(default)
    if isinstance(default, tuple):
        return list[str] | None, None
    if field.type in (int, float, bool, str, int | None, float | None):
        return field.type, default
    return str | None, default


def _bounds(field: attrs.Attribute[Any]) -> list[Any]:
    """The number validators of a field (attrs' ge, gt, le, lt), alone, within a list or optional."""
    validator = field.validator
    if validator is None:
        return []
    validator = getattr(validator, "validator", validator)  # within attrs.validators.optional
    inner = getattr(validator, "_validators", (validator,))
    return [check for check in inner if hasattr(check, "compare_op") and hasattr(check, "bound")]


def _open_bounds(field: attrs.Attribute[Any]) -> list[Any]:
    return [
        check for check in _bounds(field) if check.compare_op in ("<", ">") and check.bound != float("inf")
    ]


def _open_bounds_text(field: attrs.Attribute[Any]) -> str:
    bounds = [f"{check.compare_op} {check.bound:g}" for check in _open_bounds(field)]
    return f" (must be {' and '.join(bounds)})" if bounds else ""


# What each bound says when a value is past it.
_BOUND_WORDS = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than"}
# What a flag's value may be, in a variable: click's words for true and false.
_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off", "")
# A whole number as a command line writes it: ASCII digits, a sign, `_` between digits (as int() takes).
_WHOLE = re.compile(r"[+-]?[0-9]+(?:_[0-9]+)*")


def _parser(annotation: Any) -> Callable[[Any], Any] | None:
    """How an option's text becomes its value, refusing in our words (typer's would be pydantic's)."""
    if annotation in (int, int | None):
        return _whole_number
    if annotation in (float, float | None):
        return _number
    if annotation is bool:
        return _truth
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _choice([member.value for member in annotation])
    return None


def _whole_number(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    # int() takes any script's digits (`١٢`); a number on a command line is written in ASCII.
    if not _WHOLE.fullmatch(text):
        raise typer.BadParameter(f"must be a whole number, got {value!r}")
    return int(text)


def _number(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        if not text.isascii():
            raise ValueError(text)
        return float(text)
    except ValueError:
        raise typer.BadParameter(f"must be a number, got {value!r}") from None


def _shown(number: float) -> str:
    """A number as written: a whole one in full (1000001, not 1e+06), any other as Python writes it."""
    if isinstance(number, int) or (math.isfinite(number) and number == int(number)):
        return str(int(number))
    return repr(number)


def _truth(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise typer.BadParameter(f"must be true or false (1 or 0, yes or no, on or off), got {value!r}")


def _choice(choices: list[str]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = value.value if isinstance(value, enum.Enum) else value
        if text not in choices:
            raise typer.BadParameter(f"must be one of {', '.join(choices)}, got {text!r}")
        return str(text)

    return parse


def _checker(field: attrs.Attribute[Any]) -> Callable[[Any], Any]:
    """A parse-time check of one option's value: the field's bounds, converter and validator."""

    def check(value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            for bound in _bounds(field):
                if not bound.compare_func(value, bound.bound):
                    words = f"{_BOUND_WORDS[bound.compare_op]} {_shown(bound.bound)}"
                    if math.isinf(bound.bound):
                        words = "a finite number"
                    raise typer.BadParameter(f"must be {words}, got {_shown(value)}")
        converted = tuple(value) if isinstance(value, list) else value
        try:
            if field.converter is not None:
                converted = cast(Callable[[Any], Any], field.converter)(converted)
            pattern = getattr(field.validator, "pattern", None)  # attrs' matches_re, said plainly
            if isinstance(pattern, re.Pattern) and not pattern.fullmatch(str(converted)):
                raise ValueError(f"must match {pattern.pattern}, got {converted!r}")
            if field.validator is not None:
                field.validator(None, field, converted)
        except (ValueError, TypeError) as error:
            message = str(error.args[0]) if error.args else str(error)
            # attrs' own validators start with the field's name; the user knows the option.
            raise typer.BadParameter(message.removeprefix(repr(field.name) + " ")) from None
        return value

    return check
