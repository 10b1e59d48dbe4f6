"""The `minimess` command line: `minimess serve`, `minimess client` and `minimess bench`."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Annotated

import typer

from minimess.app.container import build_client_container, build_container
from minimess.app.log_config import LogFormat, configure_logging
from minimess.app.settings import ClientSettings, ServerSettings
from minimess.bench.command import bench

app = typer.Typer(
    name="minimess",
    help="A real-time messaging server: WebSocket clients, topics and fan-out.",
    no_args_is_help=True,
    add_completion=False,
)


class BrokerKind(StrEnum):
    memory = "memory"
    kafka = "kafka"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormatChoice(StrEnum):
    auto = "auto"
    console = "console"
    json = "json"


def _env(name: str) -> str:
    return f"MINIMESS_{name}"


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar=_env("HOST"), help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar=_env("PORT"), min=0, max=65535, help="Port to listen on (0: any free port).")
    ] = 8080,
    broker: Annotated[
        BrokerKind, typer.Option(envvar=_env("BROKER"), help="The bus between servers.")
    ] = BrokerKind.memory,
    tick: Annotated[
        float,
        typer.Option(envvar=_env("TICK"), min=0, help="Seconds between `time` frames; 0 turns them off."),
    ] = 5.0,
    ping_interval: Annotated[
        float,
        typer.Option(
            envvar=_env("PING_INTERVAL"), min=0, help="Seconds between keepalive pings; 0 turns them off."
        ),
    ] = 20.0,
    ping_timeout: Annotated[
        float,
        typer.Option(
            envvar=_env("PING_TIMEOUT"), min=0.001, help="Seconds to wait for a pong before closing."
        ),
    ] = 20.0,
    close_timeout: Annotated[
        float,
        typer.Option(envvar=_env("CLOSE_TIMEOUT"), min=0.001, help="Seconds a closing handshake may take."),
    ] = 5.0,
    max_message_bytes: Annotated[
        int,
        typer.Option(
            envvar=_env("MAX_MESSAGE_BYTES"),
            min=128,
            help="Largest client frame; larger ones close with 1009.",
        ),
    ] = 65536,
    queue_size: Annotated[
        int,
        typer.Option(
            envvar=_env("QUEUE_SIZE"),
            min=1,
            help="Frames a connection may have waiting before it counts as slow.",
        ),
    ] = 1024,
    max_topics: Annotated[
        int, typer.Option(envvar=_env("MAX_TOPICS"), min=1, help="Topics one connection may subscribe to.")
    ] = 100,
    rate_limit: Annotated[
        float,
        typer.Option(
            envvar=_env("RATE_LIMIT"), min=0, help="Frames per second one client may send; 0: no limit."
        ),
    ] = 100.0,
    shutdown_timeout: Annotated[
        float,
        typer.Option(
            envvar=_env("SHUTDOWN_TIMEOUT"), min=0.001, help="Seconds to drain clients on SIGINT/SIGTERM."
        ),
    ] = 10.0,
    node_id: Annotated[
        str | None, typer.Option(envvar=_env("NODE_ID"), help="This server's name; default host:port.")
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            envvar=_env("TRUSTED_PROXY"),
            help="A proxy address or network whose X-Forwarded-For names the client (repeatable).",
        ),
    ] = None,
    kafka_bootstrap: Annotated[
        str, typer.Option(envvar=_env("KAFKA_BOOTSTRAP"), help="--broker kafka: Kafka's host:port list.")
    ] = "localhost:9092",
    kafka_topic: Annotated[
        str,
        typer.Option(envvar=_env("KAFKA_TOPIC"), help="--broker kafka: the Kafka topic all servers share."),
    ] = "minimess.messages",
    kafka_partitions: Annotated[
        int,
        typer.Option(
            envvar=_env("KAFKA_PARTITIONS"), min=1, help="--broker kafka: partitions when creating it."
        ),
    ] = 12,
    publish_timeout: Annotated[
        float,
        typer.Option(envvar=_env("PUBLISH_TIMEOUT"), min=0.001, help="Seconds until a publish is refused."),
    ] = 5.0,
    trace: Annotated[
        bool,
        typer.Option(
            "--trace",
            envvar=_env("TRACE"),
            help="Stamp messages with stage times for a latency breakdown (minimess bench --trace);"
            " costs CPU, for measuring only.",
        ),
    ] = False,
    log_level: Annotated[
        LogLevel, typer.Option(envvar=_env("LOG_LEVEL"), help="Lowest level logged.")
    ] = LogLevel.info,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at debug level.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log warnings and errors only.")] = False,
    log_format: Annotated[
        LogFormatChoice,
        typer.Option(envvar=_env("LOG_FORMAT"), help="console on a terminal, json otherwise, unless set."),
    ] = LogFormatChoice.auto,
) -> None:
    """Run a minimess server until SIGINT or SIGTERM."""
    if verbose and quiet:
        raise typer.BadParameter("--verbose and --quiet exclude each other")
    level = "debug" if verbose else "warning" if quiet else log_level.value
    fmt: LogFormat = log_format.value
    configure_logging(level, fmt)
    try:
        settings = ServerSettings(
            host=host,
            port=port,
            broker=broker.value,
            tick=tick,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_message_bytes=max_message_bytes,
            queue_size=queue_size,
            max_topics=max_topics,
            rate_limit=rate_limit,
            shutdown_timeout=shutdown_timeout,
            node_id=node_id,
            trusted_proxies=tuple(trusted_proxy or ()),
            kafka_bootstrap=kafka_bootstrap,
            kafka_topic=kafka_topic,
            kafka_partitions=kafka_partitions,
            publish_timeout=publish_timeout,
            trace=trace,
        )
    except ValueError as error:
        typer.echo(f"minimess serve: {error}", err=True)
        raise typer.Exit(2) from None
    server = build_container(settings).server()
    try:
        asyncio.run(server.run())
    except OSError as error:
        typer.echo(f"minimess: cannot serve on {host}:{port}: {error.strerror or error}", err=True)
        raise typer.Exit(1) from None


@app.command()
def client(
    uid: Annotated[str, typer.Option(envvar=_env("UID"), help="Who you are: [A-Za-z0-9_.-]{1,64}.")],
    server: Annotated[
        str, typer.Option(envvar=_env("SERVER"), help="The server's ws:// or wss:// URL.")
    ] = "ws://127.0.0.1:8080",
    topic: Annotated[
        list[str] | None,
        typer.Option(envvar=_env("TOPIC"), help="A topic to subscribe to from the start (repeatable)."),
    ] = None,
    log_file: Annotated[
        str | None, typer.Option(envvar=_env("LOG_FILE"), help="The transcript file; default <uid>.mess.")
    ] = None,
    print_only: Annotated[
        bool,
        typer.Option("--print", envvar=_env("PRINT"), help="No prompt: print messages, status to stderr."),
    ] = False,
    retry_first: Annotated[
        float,
        typer.Option(envvar=_env("RETRY_FIRST"), min=0.001, help="Upper bound of the first reconnect delay."),
    ] = 0.5,
    retry_cap: Annotated[
        float, typer.Option(envvar=_env("RETRY_CAP"), min=0.001, help="Upper bound of any reconnect delay.")
    ] = 30.0,
    ack_timeout: Annotated[
        float,
        typer.Option(envvar=_env("ACK_TIMEOUT"), min=0.001, help="Seconds a message may wait for its ack."),
    ] = 10.0,
    queue_size: Annotated[
        int, typer.Option(envvar=_env("QUEUE_SIZE"), min=1, help="Lines kept while disconnected.")
    ] = 100,
) -> None:
    """Chat from the terminal: sub, attach, type; every message is appended to <uid>.mess."""
    try:
        settings = ClientSettings(
            server=server,
            uid=uid,
            topics=tuple(topic or ()),
            log_file=log_file,
            print_only=print_only,
            retry_first=retry_first,
            retry_cap=max(retry_cap, retry_first),
            ack_timeout=ack_timeout,
            queue_size=queue_size,
        )
    except ValueError as error:
        typer.echo(f"minimess client: {error}", err=True)
        raise typer.Exit(2) from None
    configure_logging("warning", "console")
    container = build_client_container(settings)
    transcript = container.transcript()
    try:
        transcript.open()
    except OSError as error:
        typer.echo(f"minimess client: cannot write {transcript.path}: {error.strerror}", err=True)
        raise typer.Exit(2) from None
    try:
        asyncio.run(container.run()(container.chat(), container.link()))
    finally:
        transcript.close()


app.command()(bench)


@app.callback()
def _root() -> None:
    """minimess: real-time messaging over WebSocket."""


def main() -> None:
    app()
