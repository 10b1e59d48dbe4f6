"""The `minimess` command line: `minimess serve`, `client`, `token` and `bench`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import attrs
import typer

from minimess.app.settings import ClientSettings, TokenSettings
from minimess.app.transcript import TranscriptInUse
from minimess.bench import command as bench_command
from minimess.bench.settings import BenchSettings
from minimess.bootstrap.settings import ServeSettings
from minimess.domain.errors import CannotAuthenticate, ServerRefused
from minimess.entrypoints import config_file, help_screens, options
from minimess.entrypoints.log_settings import LogSettings

# Only the settings are imported here, for the options. What a command runs (its object graph, the
# logging setup) is imported inside it: --help, --version and every Tab of shell completion run this
# program too, and the server, the terminal UI, Kafka and the bench would cost them seconds.

F = TypeVar("F", bound=Callable[..., None])
T = TypeVar("T")

# The client's exit status when the server refuses its token or its request: retrying would not help.
EXIT_NOT_AUTHENTICATED = 3

app = typer.Typer(
    name="minimess",
    help="A real-time messaging server: WebSocket clients, topics and fan-out.",
    cls=help_screens.Group,
    # Bare `minimess` prints the help and exits 0 (see _root), as asking for it does.
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=True,
    # Plain help, as click writes it: Rich's boxed tables cut an option's name or variable to fit
    # their columns (`--max-message-byt…` on 80 columns or in a pipe); click's wraps only the help.
    rich_markup_mode=None,
)
# The environment variables of `minimess bench`'s options: MINIMESS_BENCH_SUBSCRIBERS and so on.
BENCH_ENV_PREFIX = "MINIMESS_BENCH_"


def _derive_options(
    *groups: type, extra: tuple[inspect.Parameter, ...] = (), env_prefix: str = options.ENV_PREFIX
) -> Callable[[F], F]:
    """Give a command the options of `groups`' fields (see minimess.entrypoints.options)."""

    def decorate(command: F) -> F:
        params = [parameter for group in groups for parameter in options.parameters(group, env_prefix)]
        command.__signature__ = inspect.Signature([*params, *extra])  # type: ignore[attr-defined]
        return command

    return decorate


_SHORTHANDS = (
    inspect.Parameter(
        "verbose",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[bool, typer.Option("--verbose", "-v", help="Log at debug level.")],
    ),
    inspect.Parameter(
        "quiet",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[
            bool, typer.Option("--quiet", "-q", help="Log warnings and errors only (and the start line).")
        ],
    ),
)


# What a serve config file may set, and print-config prints: every option the settings derive.
_SERVE_KEYS = {**options.value_kinds(ServeSettings), **options.value_kinds(LogSettings)}
_SERVE_SECRETS = (*options.secret_option_names(ServeSettings), *options.secret_option_names(LogSettings))

_CONFIG = (
    inspect.Parameter("context", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context),
    inspect.Parameter(
        "config",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Path | None,
            typer.Option(
                "--config",
                envvar="MINIMESS_CONFIG",
                # Eager: read before the other options, whose defaults it gives.
                is_eager=True,
                callback=config_file.loader(_SERVE_KEYS),
                help="A TOML file of option values, keyed by the options without --: port = 9000,"
                ' trusted-proxy = ["10.0.0.0/8"]. Flags and MINIMESS_* variables win over it.',
                show_default=False,
            ),
        ],
    ),
    inspect.Parameter(
        "print_config",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[
            bool,
            typer.Option(
                "--print-config",
                help="Print the effective settings as a --config file, each with its source (flag, env,"
                " file, default), and exit without serving.",
            ),
        ],
    ),
)


@app.command(cls=help_screens.Command)
@_derive_options(ServeSettings, LogSettings, extra=(*_SHORTHANDS, *_CONFIG))
def serve(**values: Any) -> None:
    """Run a minimess server until SIGINT or SIGTERM."""
    if values["verbose"] and values["quiet"]:
        typer.echo("minimess serve: --verbose and --quiet exclude each other", err=True)
        raise typer.Exit(2)
    logging = _settings("serve", LogSettings, values)
    settings = _settings("serve", ServeSettings, values)
    if values["print_config"]:
        typer.echo(config_file.render(values["context"], _SERVE_KEYS, _SERVE_SECRETS, values["config"]))
        return
    # Here, once the settings are checked and --print-config answered: neither needs the server.
    import os
    import sys

    from minimess.adapters.jwt_tokens import SecretFileError
    from minimess.bootstrap import worker
    from minimess.bootstrap.runtime import LoopUnavailable, run_server
    from minimess.bootstrap.server import build_container
    from minimess.entrypoints.log_setup import configure_logging

    level = "debug" if values["verbose"] else "warning" if values["quiet"] else logging.log_level
    configure_logging(level, logging.log_format)
    role = worker.WorkerRole.from_environment(os.environ)
    if role is not None:
        worker.follow_supervisor()
    if role is None and settings.worker_count > 1:
        for refusal in (
            worker.checked_admin_port(settings, settings.worker_count),
            worker.checked_message_size(settings, settings.worker_count),
        ):
            if refusal is not None:
                typer.echo(f"minimess serve: {refusal}", err=True)
                raise typer.Exit(2)
        from minimess.bootstrap.supervisor import serve_workers

        # Each worker is this same command line, told its role in its environment.
        raise typer.Exit(serve_workers(settings, sys.argv[1:]))
    try:
        container = build_container(settings, role)
        server = container.server()
    except SecretFileError as error:
        typer.echo(f"minimess serve: invalid --auth-secret-file: {error}", err=True)
        raise typer.Exit(2) from None
    try:
        if role is not None:
            lost = getattr(container.broker(), "lost", None)
            raise typer.Exit(worker.run_worker(server, lost, settings.loop))
        run_server(server, settings.loop)
    except LoopUnavailable as error:
        typer.echo(f"minimess serve: --loop {settings.loop}: {error}", err=True)
        raise typer.Exit(2) from None
    except OSError as error:
        address = f"{settings.server.host}:{settings.server.port}"
        typer.echo(f"minimess serve: cannot serve on {address}: {error.strerror or error}", err=True)
        raise typer.Exit(1) from None


@app.command(cls=help_screens.Command)
@_derive_options(ClientSettings)
def client(**values: Any) -> None:
    """Chat from the terminal: sub, attach, type; every message is appended to <uid>.mess."""
    settings = _settings("client", ClientSettings, values)
    import asyncio

    from minimess.bootstrap.client import build_client_container
    from minimess.entrypoints.log_setup import configure_logging

    if settings.retry_cap < settings.retry_first:
        settings = attrs.evolve(settings, retry_cap=settings.retry_first)
    configure_logging("warning", "console")
    container = build_client_container(settings)
    try:
        transcript = container.transcript()
    except TranscriptInUse as error:
        typer.echo(f"minimess client: {error}; give another --log-file", err=True)
        raise typer.Exit(2) from None
    except OSError as error:
        # The transcript's path: open_transcript's OSErrors all name it.
        typer.echo(f"minimess client: cannot write {error.filename}: {error.strerror or error}", err=True)
        raise typer.Exit(2) from None
    try:
        asyncio.run(container.run()(container.chat(), container.link()))
    except (CannotAuthenticate, ServerRefused) as error:
        typer.echo(f"minimess client: {error}", err=True)
        raise typer.Exit(EXIT_NOT_AUTHENTICATED) from None
    except Exception as error:
        # A fault of the client's own: one line the user can report, not a traceback over the chat.
        # Written with backslash escapes: the error may quote text that cannot be printed as it is.
        what = f"{type(error).__name__}: {error}".encode("utf-8", "backslashreplace").decode()
        typer.echo(f"minimess client: unexpected error: {what}", err=True)
        raise typer.Exit(1) from None
    finally:
        transcript.close()


@app.command(cls=help_screens.Command)
@_derive_options(TokenSettings)
def token(**values: Any) -> None:
    """Print a token for a server started with --auth-secret-file (for development and scripts)."""
    settings = _settings("token", TokenSettings, values)
    from minimess.adapters.jwt_tokens import SecretFileError
    from minimess.bootstrap.tokens import mint_token

    try:
        typer.echo(mint_token(settings))
    except SecretFileError as error:
        typer.echo(f"minimess token: invalid --secret-file: {error}", err=True)
        raise typer.Exit(2) from None


def _settings(command: str, settings_class: type[T], values: dict[str, Any]) -> T:
    """Settings from option values; a value no validator accepts is a usage error (exit 2)."""
    try:
        return cast(T, options.build(settings_class, values))
    except (ValueError, TypeError) as error:
        typer.echo(f"minimess {command}: {options.describe(error, settings_class)}", err=True)
        raise typer.Exit(2) from None


_BENCH_REPORTING = (
    inspect.Parameter(
        "json_path",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option("--json", envvar=BENCH_ENV_PREFIX + "JSON", help=bench_command.JSON_HELP),
        ],
    ),
    inspect.Parameter(
        "log_dir",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Path | None,
            typer.Option(envvar=BENCH_ENV_PREFIX + "LOG_DIR", help=bench_command.LOG_DIR_HELP),
        ],
    ),
)


@app.command(cls=help_screens.Command)
@_derive_options(BenchSettings, extra=_BENCH_REPORTING, env_prefix=BENCH_ENV_PREFIX)
def bench(**values: Any) -> None:
    """Measure fan-out throughput, latency, CPU and memory per connection, against a bare baseline."""
    settings = _settings("bench", BenchSettings, values)
    status = bench_command.bench(settings, values["json_path"], values["log_dir"])
    if status:
        raise typer.Exit(status)


def _print_version(asked: bool) -> None:
    if asked:
        import importlib.metadata

        typer.echo(f"minimess {importlib.metadata.version('minimess')}")
        raise typer.Exit()


@app.callback(cls=help_screens.Group, invoke_without_command=True)
def _root(
    context: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """minimess: real-time messaging over WebSocket."""
    if context.invoked_subcommand is None:
        typer.echo(context.get_help())


def main() -> None:
    # One name however it is started (`python -m minimess` too): in the usage lines, and for shell
    # completion, whose variable (_MINIMESS_COMPLETE) and function are named after it.
    app(prog_name="minimess")
