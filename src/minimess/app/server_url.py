"""What `--server` may be: a ws:// or wss:// URL of a server, and what to give instead of anything else."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

FORM = "expected ws://host[:port] or wss://host[:port]"
PORT = "the port must be a number from 1 to 65535"
# What `scripts/cluster up` prints and a browser would open: a whole connection URL.
_SUBSCRIBE = "/subscribe/"


def check_server_url(url: str) -> None:
    """Raise ValueError, saying what to give instead, unless `url` is ws[s]://host[:port] (a `/` may end it).

    The client appends its own path (the uid and topics) to the URL: one of its own would be
    sent too, and every handshake refused.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        # urlsplit's own words ("Port could not be cast to integer value as ...") are Python's.
        raise ValueError(f"invalid server URL {url!r}: {PORT}; {FORM}") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"invalid server URL {url!r}: {FORM}")
    if port == 0 or "?" in url or "#" in url:
        raise ValueError(f"invalid server URL {url!r}: {FORM}")
    if parts.netloc.endswith(":"):
        # urlsplit reads `host:` as no port at all; the user meant one and left it out.
        raise ValueError(f"invalid server URL {url!r}: {PORT}; {FORM}")
    if parts.path not in ("", "/"):
        base = f"{parts.scheme}://{parts.netloc}"
        raise ValueError(f"invalid server URL {url!r}: it has a path; {_instead(base, parts.path)}")


def _instead(base: str, path: str) -> str:
    """What to give instead of a URL with `path`: the URL without it, and the topics it names."""
    if not path.startswith(_SUBSCRIBE):
        return f"give --server {base} (the client adds the path itself)"
    topics = [
        unquote(segment).removeprefix("topic:").partition("@")[0]
        for segment in path[len(_SUBSCRIBE) :].split("/")
        if segment.startswith("topic:")
    ]
    options = "".join(f" --topic {topic}" for topic in topics if topic)
    return f"give --server {base}{options} (the uid is --uid; the client builds the path itself)"
