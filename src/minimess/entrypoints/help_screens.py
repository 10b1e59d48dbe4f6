"""How the commands show their options: no value named for a flag in --help; a refused value in one line."""

from __future__ import annotations

from typing import Any

import typer
import typer.core

from minimess.entrypoints.options import refusal


def _without_flag_metavars(params: list[Any]) -> list[Any]:
    for param in params:
        # Typer names a flag's type (`<bool>`) where a value would go; a flag takes none.
        if isinstance(param, typer.core.TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


class Command(typer.core.TyperCommand):
    """A command whose --help shows no value for its flags (--help itself included), and that
    refuses a bad option value in one line naming the flag or the variable it came from."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _without_flag_metavars(super().get_params(ctx))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except typer.BadParameter as error:
            # Only a value refused (a missing option is a subclass, and keeps click's usage text).
            param = error.param
            if type(error) is not typer.BadParameter or not isinstance(param, typer.core.TyperOption):
                raise
            refused = refusal(ctx, str(param.name), param.opts, param.envvar, error.message)
            typer.echo(f"minimess {ctx.info_name}: {refused}", err=True)
            raise typer.Exit(2) from None


class Group(typer.core.TyperGroup):
    """The `minimess` group, whose --help shows no value for --version, --help and the completion flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _without_flag_metavars(super().get_params(ctx))
