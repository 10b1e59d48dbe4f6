"""The settings of the messaging service, the terminal client and `minimess token`: defaults, ranges."""

from __future__ import annotations

import re
from datetime import timedelta

import attrs
from attrs import validators as v

from minimess.app.history import HistoryLimits
from minimess.app.server_url import check_server_url
from minimess.domain.model import Topic, Uid
from minimess.domain.permissions import TopicPattern, patterns


@attrs.frozen(kw_only=True)
class MessagingSettings:
    """What the application service of a server is told."""

    tick: float = attrs.field(
        default=5.0, validator=v.ge(0), metadata={"help": "Seconds between `time` frames; 0 turns them off."}
    )
    max_topics: int = attrs.field(
        default=100, validator=v.ge(1), metadata={"help": "Topics one connection may subscribe to."}
    )
    history_size: int = attrs.field(
        default=1000,
        validator=[v.ge(1), v.le(100_000)],
        metadata={"help": "Recent messages kept per topic, for recovery and repeated publishes."},
    )
    history_ttl: float = attrs.field(
        default=300.0,
        validator=[v.gt(0), v.le(7 * 24 * 3600)],
        metadata={"help": "Seconds a message stays in the history."},
    )
    history_mib: int = attrs.field(
        default=64, validator=v.ge(1), metadata={"help": "MiB all topics' history may take together."}
    )
    recovery_timeout: float = attrs.field(
        default=5.0,
        validator=[v.gt(0), v.le(600)],
        metadata={"help": "Seconds a subscription's recovery may take before it answers recovered false."},
    )

    @property
    def history_limits(self) -> HistoryLimits:
        return HistoryLimits(
            per_topic=self.history_size, ttl=self.history_ttl, total_bytes=self.history_mib * 2**20
        )


@attrs.frozen(kw_only=True)
class ClientSettings:
    """Everything `minimess client` is told by its flags and MINIMESS_* variables."""

    uid: str = attrs.field(metadata={"help": "Who you are: [A-Za-z0-9_.-]{1,64}."})
    server: str = attrs.field(
        default="ws://127.0.0.1:8080", metadata={"help": "The server's ws:// or wss:// URL."}
    )
    topics: tuple[str, ...] = attrs.field(
        default=(),
        converter=tuple,
        metadata={
            "flag": "topic",
            "metavar": "topic",
            "help": "A topic to subscribe to from the start (repeatable).",
        },
    )
    log_file: str | None = attrs.field(
        default=None, metadata={"help": "The transcript file; default <uid>.mess."}
    )
    print_only: bool = attrs.field(
        default=False, metadata={"flag": "print", "help": "No prompt: print messages, status to stderr."}
    )
    # Reconnect backoff: the first delay is at most retry_first, no delay more than retry_cap.
    retry_first: float = attrs.field(
        default=0.5, validator=v.gt(0), metadata={"help": "Seconds the first reconnect waits at most."}
    )
    # Low, so that a client is back soon after its server; Enter or `reconnect` retries at once anyway.
    retry_cap: float = attrs.field(
        default=5.0, validator=v.gt(0), metadata={"help": "Seconds any reconnect waits at most."}
    )
    ack_timeout: float = attrs.field(
        default=10.0, validator=v.gt(0), metadata={"help": "Seconds a message may wait for its ack."}
    )
    queue_size: int = attrs.field(
        default=100,
        validator=v.ge(1),
        # Not MINIMESS_QUEUE_SIZE: that is the server's --queue-size (frames), exported for a server.
        metadata={"help": "Lines kept while disconnected.", "envvar": "MINIMESS_CLIENT_QUEUE_SIZE"},
    )
    token: str | None = attrs.field(
        default=None,
        metadata={"help": "The token to connect with (see minimess token); --token-file keeps it out of ps."},
    )
    token_file: str | None = attrs.field(
        default=None, metadata={"help": "A file holding the token, read again on every connection."}
    )

    @server.validator
    def _server_is_a_websocket_url(self, _attribute: attrs.Attribute[str], url: str) -> None:
        check_server_url(url)

    @uid.validator
    def _uid_is_valid(self, _attribute: attrs.Attribute[str], uid: str) -> None:
        Uid(uid)

    def __attrs_post_init__(self) -> None:
        # Across fields, so here: a field's validator sees its own value alone (entrypoints/options.py).
        if self.token is not None and self.token_file is not None:
            raise ValueError("give --token or --token-file, not both")

    @topics.validator
    def _topics_are_valid(
        self, _attribute: attrs.Attribute[tuple[str, ...]], topics: tuple[str, ...]
    ) -> None:
        for name in topics:
            Topic(name)


# `90s`, `30m`, `1h`, `7d`, or plain seconds; nine digits at most, so that any fits a timedelta.
_DURATION = re.compile(r"([0-9]{1,9})([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """A positive duration written as seconds, or a whole number with s, m, h or d; ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise ValueError(f"invalid duration {text!r}: expected a positive whole number and s, m, h or d")
    return timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])


@attrs.frozen(kw_only=True)
class TokenSettings:
    """What `minimess token` is told: whose token, which topics, for how long, signed with which secret."""

    uid: str = attrs.field(metadata={"help": "Whose token: [A-Za-z0-9_.-]{1,64}."})
    subscribe: tuple[str, ...] = attrs.field(
        default=(),
        converter=tuple,
        metadata={
            "metavar": "pattern",
            "help": "A topic pattern it may subscribe to, * any run of characters (repeatable; none: any).",
        },
    )
    publish: tuple[str, ...] = attrs.field(
        default=(),
        converter=tuple,
        metadata={
            "metavar": "pattern",
            "help": "A topic pattern it may publish on (repeatable; none: any topic).",
        },
    )
    ttl: str = attrs.field(default="1h", metadata={"help": "How long it is valid: 90s, 30m, 1h, 7d."})
    secret_file: str = attrs.field(
        metadata={"help": "The file holding the server's --auth-secret-file secret."}
    )

    @uid.validator
    def _uid_is_valid(self, _attribute: attrs.Attribute[str], uid: str) -> None:
        Uid(uid)

    @subscribe.validator
    @publish.validator
    def _patterns_are_valid(
        self, _attribute: attrs.Attribute[tuple[str, ...]], texts: tuple[str, ...]
    ) -> None:
        patterns(texts)

    @ttl.validator
    def _ttl_is_a_duration(self, _attribute: attrs.Attribute[str], text: str) -> None:
        parse_duration(text)

    @property
    def lifetime(self) -> timedelta:
        return parse_duration(self.ttl)

    @property
    def subscribe_patterns(self) -> tuple[TopicPattern, ...] | None:
        """The subscribe list; None (any topic) when no pattern was given."""
        return patterns(self.subscribe) if self.subscribe else None

    @property
    def publish_patterns(self) -> tuple[TopicPattern, ...] | None:
        """The publish list; None (any topic) when no pattern was given."""
        return patterns(self.publish) if self.publish else None
