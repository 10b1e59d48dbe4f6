"""Errors the domain and use cases raise, each naming one broken rule."""


class MinimessError(Exception):
    """Base of every error minimess raises on purpose."""


class InvalidName(MinimessError, ValueError):
    """A uid or topic name breaks the naming rules."""


class TooManyTopics(MinimessError):
    """A connection tried to hold more subscriptions than the server allows."""


class BrokerUnavailable(MinimessError):
    """A publish certainly did not reach the bus: nothing was handed to it."""


class PublishTimeout(MinimessError):
    """A publish was handed to the bus but not confirmed in time: it may or may not be delivered.

    Publishing it again with the same message id is safe: it is delivered at most once.
    """


class IdReused(MinimessError):
    """A client-chosen message id that was already used on another topic."""


class Forbidden(MinimessError):
    """A session's grant does not allow what it asked for (a topic it may not subscribe or publish to)."""


class InvalidToken(MinimessError):
    """A token that proves nothing: absent, malformed, badly signed or expired."""


class CannotAuthenticate(MinimessError):
    """A client cannot prove who it is: the server refused its token, or it has none to send.

    Trying again with the same token cannot help.
    """


class ServerRefused(MinimessError):
    """A server refused a client's handshake for a reason that asking again would not change.

    For example HTTP 400 (too many topics for it) or 404 (not a minimess server's endpoint).
    """
