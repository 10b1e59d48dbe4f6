"""The `--config` TOML file: its keys are a command's options, read as their defaults and written back.

A key is an option's flag without the leading `--` (`max-message-bytes = 1000`); a repeatable
option takes a list (`trusted-proxy = ["10.0.0.0/8"]`). The file's values go where click looks for
defaults (`default_map`), so a flag and a MINIMESS_* variable still win over them. An unknown key,
a value of the wrong type or one the option refuses is a usage error naming the file and the key.
"""

from __future__ import annotations

import enum
import json
import math
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import typer

# How --print-config names where a value came from, by the name of click's ParameterSource.
SOURCES = {"COMMANDLINE": "flag", "ENVIRONMENT": "env", "DEFAULT_MAP": "file", "DEFAULT": "default"}
# What a value of each kind of option must be in the file, said as the error says it.
WANTED = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    list: "a list of strings",
    str: "a string",
}


class ConfigFileError(Exception):
    """A config file that cannot be used, said in one line that names the file (and the key)."""


def key_of(name: str) -> str:
    """The config file key of an option's Python name."""
    return name.replace("_", "-")


def read(path: Path, ctx: typer.Context, kinds: Mapping[str, type]) -> dict[str, Any]:
    """The option values `path` gives, by Python name, checked against the options `kinds` names.

    `kinds` gives each option's kind of value (minimess.entrypoints.options.value_kinds).
    """
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as error:
        raise ConfigFileError(f"cannot read {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigFileError(f"{path}: not TOML: {error}") from None
    params = {param.name: param for param in ctx.command.params if param.name in kinds}
    values: dict[str, Any] = {}
    for key, value in document.items():
        name = key.replace("-", "_")
        param = params.get(name)
        if param is None or "_" in key:
            hint = f" (did you mean '{key_of(name)}'?)" if param is not None else ""
            raise ConfigFileError(f"{path}: unknown key '{key}'{hint}")
        value = _checked_type(path, key, kinds[name], value)
        try:
            param.process_value(ctx, value)
        except typer.BadParameter as error:
            raise ConfigFileError(f"{path}: key '{key}': {error.message}") from None
        values[name] = value
    return values


def _checked_type(path: Path, key: str, kind: type, value: Any) -> Any:
    """Refuse a value TOML typed otherwise than the option (click alone would take `port = "80"`)."""
    if kind is list:
        ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not ok:
        raise ConfigFileError(f"{path}: key '{key}' must be {WANTED[kind]}, got {toml_value(value)}")
    return value


def render(ctx: typer.Context, names: Collection[str], secret: Collection[str], config: Path | None) -> str:
    """The values of the options `names` as a config file, each with where it came from.

    A secret is left out (a comment says where it was set); an option without a value is a comment.
    """
    lines = ["# minimess serve --print-config: the effective settings, each with its source."]
    for param in ctx.command.params:
        if param.name not in names:
            continue
        name = param.name
        key, value = key_of(name), ctx.params.get(name)
        given = ctx.get_parameter_source(name)
        source = SOURCES.get(given.name if given is not None else "DEFAULT", "default")
        if source == "env" and getattr(param, "envvar", None):
            source = f"env {param.envvar}"
        elif source == "file":
            source = f"file {config}"
        if param.multiple:
            value = list(value or ())
        if isinstance(value, enum.Enum):
            value = value.value
        if value is None:
            lines.append(f"# {key}: not set ({source})")
        elif name in secret:
            lines.append(f"# {key}: set, not shown ({source})")
        else:
            lines.append(f"{key} = {toml_value(value)}  # {source}")
    return "\n".join(lines)


def toml_value(value: Any) -> str:
    """`value` as TOML: a string, a number, a bool or a list of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, str):
        # JSON's string escapes are TOML's basic string escapes; TOML also wants DEL escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    return json.dumps(str(value), ensure_ascii=False)


def loader(kinds: Mapping[str, type]) -> Any:
    """The --config option's callback: read the file, before the other options, into their defaults."""

    def load(ctx: typer.Context, path: Path | None) -> Path | None:
        if path is None or ctx.resilient_parsing:
            return path
        try:
            values = read(path, ctx, kinds)
        except ConfigFileError as error:
            typer.echo(f"minimess {ctx.info_name}: {error}", err=True)
            raise typer.Exit(2) from None
        ctx.default_map = {**(ctx.default_map or {}), **values}
        return path

    return load
