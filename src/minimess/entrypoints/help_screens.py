"""How the commands show their options in --help: a flag takes no value, so none is named."""

from __future__ import annotations

from typing import Any

import typer.core


def _without_flag_metavars(params: list[Any]) -> list[Any]:
    for param in params:
        # Typer names a flag's type (`<bool>`) where a value would go; a flag takes none.
        if isinstance(param, typer.core.TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


class Command(typer.core.TyperCommand):
    """A command whose --help shows no value for its flags (--help itself included)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _without_flag_metavars(super().get_params(ctx))


class Group(typer.core.TyperGroup):
    """The `minimess` group, whose --help shows no value for --version, --help and the completion flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _without_flag_metavars(super().get_params(ctx))
