"""Errors the domain and use cases raise, each naming one broken rule."""


class MinimessError(Exception):
    """Base of every error minimess raises on purpose."""


class InvalidName(MinimessError, ValueError):
    """A uid or topic name breaks the naming rules."""


class TooManyTopics(MinimessError):
    """A connection tried to hold more subscriptions than the server allows."""


class BrokerUnavailable(MinimessError):
    """The broker did not accept a publish (down, or past the publish deadline)."""
