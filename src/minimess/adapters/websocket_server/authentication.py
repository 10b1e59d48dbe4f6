"""Who a client is, decided at the handshake: its token checked against the path, and the grant it brings."""

from __future__ import annotations

import asyncio
import math
import weakref
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from minimess.adapters.websocket_server.rejections import RejectionLog
from minimess.adapters.wire.paths import SubscribeRequest
from minimess.domain.errors import InvalidToken
from minimess.domain.model import Uid
from minimess.domain.permissions import Grant
from minimess.domain.ports import TokenVerifier

log = structlog.get_logger(__name__)

UNAUTHORIZED = 401
FORBIDDEN = 403
# RFC 6750 §3: how a client learns which credentials to send, and that the ones it sent are bad.
CHALLENGE = 'Bearer realm="minimess"'
BAD_TOKEN_CHALLENGE = 'Bearer realm="minimess", error="invalid_token"'
HOW_TO_SEND = "no token: send Authorization: Bearer <token>, or ?token=<token>"
BOTH_WAYS = "a token both in Authorization and in ?token=: send one"


class Authentication:
    """Admits a WebSocket handshake only with a valid token for the path's uid and topics.

    Without a verifier the server is open: every handshake is admitted, and every session may
    use every topic under the uid its path names.
    """

    def __init__(
        self, verifier: TokenVerifier | None, name: str = "hs256", rejections: RejectionLog | None = None
    ) -> None:
        self._verifier = verifier
        # Where refusals are said (the server's, shared with its other refusals).
        self._rejections = RejectionLog() if rejections is None else rejections
        # What the start line calls the scheme in force.
        self.mode = "off" if verifier is None else name
        # The grant of each connection admitted, from its handshake until its handler takes it.
        self._grants: weakref.WeakKeyDictionary[ServerConnection, Grant] = weakref.WeakKeyDictionary()

    def announce(self) -> None:
        """Say at start, loudly, when nobody's identity is checked."""
        if self._verifier is None:
            log.warning(
                "authentication_off",
                detail="no --auth-secret-file: anyone may connect as anyone, on any topic",
            )

    def admit(
        self, connection: ServerConnection, request: Request, subscribe: SubscribeRequest
    ) -> Response | None:
        """None to go on with the upgrade; else a 401 or 403 with a one-line reason.

        The token comes from `Authorization: Bearer` or the `token` query parameter, and is never
        logged nor echoed.
        """
        if self._verifier is None:
            return None
        try:
            token = presented_token(request)
            if token is None:
                return self._refuse(connection, subscribe, UNAUTHORIZED, HOW_TO_SEND, CHALLENGE)
            grant = self._verifier.verify(token)
        except InvalidToken as error:
            return self._refuse(connection, subscribe, UNAUTHORIZED, str(error), BAD_TOKEN_CHALLENGE)
        if grant.uid != subscribe.uid:
            reason = f"the token is for {grant.uid}, not {subscribe.uid}"
            return self._refuse(connection, subscribe, FORBIDDEN, reason)
        for topic in subscribe.topics:
            if not grant.may_subscribe(topic):
                reason = f"the token does not allow subscribing to {topic}"
                return self._refuse(connection, subscribe, FORBIDDEN, reason)
        self._grants[connection] = grant
        return None

    def grant(self, connection: ServerConnection, uid: Uid) -> Grant:
        """The grant `connection` was admitted with (every topic for ever on an open server)."""
        if self._verifier is None:
            return Grant.anything(uid)
        return self._grants.pop(connection)

    def _refuse(
        self,
        connection: ServerConnection,
        subscribe: SubscribeRequest,
        status: int,
        reason: str,
        challenge: str | None = None,
    ) -> Response:
        # The uid the path claims, never the path's query: that may hold the token.
        self._rejections.record(connection, status, reason, uid=str(subscribe.uid))
        response = connection.respond(status, reason + "\n")
        if challenge is not None:
            response.headers["WWW-Authenticate"] = challenge
        return response


def deadline(grant: Grant) -> float:
    """When `grant` expires on the running event loop's clock (`loop.time()`); inf if it never does."""
    left = grant.seconds_left(datetime.now(UTC))
    return math.inf if left is None else asyncio.get_running_loop().time() + left


async def expiry(grant: Grant) -> None:
    """Return when `grant` expires (at once if it has); a grant that never expires never returns.

    One timer per connection: nothing polls.
    """
    left = grant.seconds_left(datetime.now(UTC))
    if left is None:
        await asyncio.Event().wait()
    else:
        await asyncio.sleep(max(left, 0.0))


def presented_token(request: Request) -> str | None:
    """The token the request carries, None if it carries none; InvalidToken if it is ambiguous.

    One way only (RFC 6750 §2): a token both in the header and in the query is refused rather
    than one of them guessed at.
    """
    authorization = request.headers.get_all("Authorization")
    if len(authorization) > 1:
        raise InvalidToken("more than one Authorization header")
    query = urlsplit(request.path).query
    tokens = parse_qs(query, keep_blank_values=True).get("token", [])
    if len(tokens) > 1:
        raise InvalidToken("more than one token parameter")
    if authorization and tokens:
        raise InvalidToken(BOTH_WAYS)
    if authorization:
        scheme, _, token = authorization[0].strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("expected Authorization: Bearer <token>")
        return token.strip()
    return tokens[0] if tokens else None
