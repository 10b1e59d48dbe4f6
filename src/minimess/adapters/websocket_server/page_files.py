"""The browser page's files: read once at start, answered with their type, validator and a strict policy."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from importlib.resources.abc import Traversable
from typing import Final

import attrs
from websockets.datastructures import Headers, MultipleValuesError
from websockets.http11 import Request, Response

# Where the page's files are asked for: /page/<name>; the page itself is also `/`.
PREFIX: Final = "/page/"
INDEX: Final = "index.html"
# A flat directory of plainly named files: no path in a name, so no request reaches another file.
_NAME = re.compile(r"[a-z_]{1,64}\.(html|css|js|svg|png)")
_CONTENT_TYPES: Final = {
    "html": "text/html; charset=utf-8",
    "css": "text/css; charset=utf-8",
    # RFC 9239: text/javascript is the one type for JavaScript; browsers run modules only with it.
    "js": "text/javascript; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
}
# What the page may do, said to the browser: its own scripts, styles and connections only, no inline
# code, no frames around it, and (Trusted Types) no string ever parsed as HTML, so that a message body
# cannot become markup even through a bug in the page.
CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)
SECURITY_HEADERS: Final = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)
# Every answer is checked with the server before use (`no-cache`), and costs a 304 when unchanged:
# an upgraded server's page is never mixed with an old one's scripts from a cache.
CACHE_CONTROL: Final = "no-cache"


@attrs.frozen
class PageFile:
    """One file of the page, as it is sent."""

    body: bytes
    content_type: str
    # A strong validator: the hash of the bytes, so every server of a cluster gives the same one.
    etag: str

    @classmethod
    def of(cls, name: str, body: bytes) -> PageFile:
        digest = hashlib.sha256(body).hexdigest()[:32]
        return cls(body, _CONTENT_TYPES[name.rpartition(".")[2]], f'"{digest}"')


class PageFiles:
    """The page's files by name; `index.html` is the page."""

    def __init__(self, files: Mapping[str, PageFile]) -> None:
        self._files = dict(files)

    @classmethod
    def from_directory(cls, directory: Traversable) -> PageFiles:
        """Every plainly named file of `directory` (package data), read now: serving never reads a disk."""
        return cls(
            {
                entry.name: PageFile.of(entry.name, entry.read_bytes())
                for entry in _served(directory.iterdir())
            }
        )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._files))

    def has_index(self) -> bool:
        return INDEX in self._files

    def answer(self, request: Request, name: str) -> Response | None:
        """The file `name` (200, or 304 when the request's validator matches); None when there is none."""
        file = self._files.get(name)
        if file is None:
            return None
        headers = Headers([("Cache-Control", CACHE_CONTROL), ("ETag", file.etag), *SECURITY_HEADERS])
        if name == INDEX:
            # `/` is the page for a browser and the plain text for anything else (http_endpoints).
            headers["Vary"] = "Accept"
        if _matches(request.headers, file.etag):
            return Response(304, "Not Modified", headers, b"")
        headers["Content-Type"] = file.content_type
        headers["Content-Length"] = str(len(file.body))
        return Response(200, "OK", headers, file.body)


def _served(entries: Iterable[Traversable]) -> Iterable[Traversable]:
    return (entry for entry in entries if entry.is_file() and _NAME.fullmatch(entry.name))


def _matches(headers: Headers, etag: str) -> bool:
    """Whether If-None-Match names `etag` (RFC 9110 §13.1.2: weak comparison, `*` matches any)."""
    try:
        value = headers.get("If-None-Match")
    except MultipleValuesError:
        value = ", ".join(headers.get_all("If-None-Match"))
    if not value:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in value.split(",")}
    return "*" in tags or etag in tags


def accepts_html(headers: Headers) -> bool:
    """Whether the request names text/html in Accept (with q above 0), as browsers do for a page."""
    accept = ",".join(headers.get_all("Accept"))
    for item in accept.split(","):
        media_type, *parameters = (part.strip() for part in item.split(";"))
        if media_type.lower() != "text/html":
            continue
        weights = [parameter[2:] for parameter in parameters if parameter.lower().startswith("q=")]
        try:
            return not weights or float(weights[0]) > 0
        except ValueError:
            return False
    return False
