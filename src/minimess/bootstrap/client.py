"""A terminal client's object graph: its link to the server, transcript, display and session."""

from __future__ import annotations

from dependency_injector import containers, providers

from minimess.adapters.terminal import InteractiveDisplay, PrintDisplay, run_interactive, run_printing
from minimess.adapters.websocket_client.backoff import Backoff
from minimess.adapters.websocket_client.credentials import Credentials
from minimess.adapters.websocket_client.link import ServerLink
from minimess.app.chat_client import ChatClient
from minimess.app.settings import ClientSettings
from minimess.app.transcript_files import open_transcript
from minimess.domain.model import Topic, Uid


class ClientContainer(containers.DeclarativeContainer):
    """One terminal client's object graph: link to the server, transcript, display, session."""

    config = providers.Configuration(strict=True)
    settings = providers.Dependency(instance_of=ClientSettings)

    uid = providers.Callable(Uid, settings.provided.uid)
    link = providers.Singleton(
        ServerLink,
        server_url=settings.provided.server,
        uid=uid,
        topics=providers.Callable(
            lambda names: tuple(Topic(name) for name in names), settings.provided.topics
        ),
        backoff=providers.Factory(
            Backoff, first=settings.provided.retry_first, cap=settings.provided.retry_cap
        ),
        ack_timeout=settings.provided.ack_timeout,
        queue_size=settings.provided.queue_size,
        credentials=providers.Factory(
            Credentials, token=settings.provided.token, token_file=settings.provided.token_file
        ),
    )
    # Opened and locked as it is built: `<uid>.mess`, or the next free one (TranscriptInUse, OSError).
    transcript = providers.Singleton(open_transcript, uid=uid, log_file=settings.provided.log_file)
    # --print writes messages to stdout and status to stderr; otherwise an interactive prompt.
    display = providers.Selector(
        config.mode,
        interactive=providers.Singleton(InteractiveDisplay),
        print=providers.Singleton(PrintDisplay),
    )
    run = providers.Selector(
        config.mode, interactive=providers.Object(run_interactive), print=providers.Object(run_printing)
    )
    chat = providers.Singleton(ChatClient, uid=uid, link=link, transcript=transcript, display=display)


def build_client_container(settings: ClientSettings) -> ClientContainer:
    """A container for one client process, configured from its settings."""
    container = ClientContainer(settings=settings)
    container.config.from_dict({"mode": "print" if settings.print_only else "interactive"})
    return container
