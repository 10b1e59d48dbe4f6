"""Tokens and topic permissions on a real `minimess serve --auth-secret-file`, over real sockets.

Who may connect as whom is decided at the handshake (401 without a valid token, 403 for another
uid or a topic the token does not allow); on the connection, `sub` and `pub` are held to the
token's lists; the connection closes with 4001 when the token expires.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.frames import Close, Opcode

from minimess.adapters.jwt_tokens import HS256Tokens
from minimess.domain.model import Uid
from minimess.domain.permissions import patterns
from tests.integration.client_process import TerminalClient, run_client
from tests.integration.server_process import ServerProcess
from tests.integration.wire import (
    RawClient,
    close_code,
    logged,
    next_frame,
    send_frame,
    subscribe_path,
    unique,
)
from tests.timeouts import scaled

SECRET = b"integration-test-secret-of-48-bytes-0123456789ab"
HOUR = timedelta(hours=1)
# Long enough for a handshake on a loaded machine, short enough to wait for in a test.
EXPIRING_IN = timedelta(seconds=3)
# A client process takes seconds to start on a loaded machine: its first token must outlive that.
CLIENT_EXPIRING_IN = timedelta(seconds=scaled(10))
RETRY = ("--retry-first", "0.2", "--retry-cap", "1")


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth") / "secret"
    path.write_bytes(SECRET + b"\n")
    return path


@pytest.fixture(scope="module")
def server(secret_file: Path) -> Iterator[ServerProcess]:
    """One server with authentication on (ticks off), shared by the module."""
    # At debug: connections opened and closed are logged there.
    process = ServerProcess("-v", "--tick", "0", "--auth-secret-file", str(secret_file)).start()
    yield process
    process.stop()


def token(uid: str, lifetime: timedelta = HOUR, **lists: list[str]) -> str:
    return HS256Tokens(SECRET).mint(
        Uid(uid),
        lifetime,
        subscribe=patterns(lists["subscribe"]) if "subscribe" in lists else None,
        publish=patterns(lists["publish"]) if "publish" in lists else None,
    )


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def connect_as(
    server: ServerProcess, uid: str, *topics: str, headers: dict[str, str] | None = None, query: str = ""
) -> tuple[ClientConnection, dict[str, Any]]:
    """Connect on `/id:uid/topic:...` with these headers and query; the connection and its first frame."""
    url = server.url(subscribe_path(uid, *topics) + query)
    connection = await connect(url, open_timeout=scaled(10), additional_headers=headers)
    return connection, await next_frame(connection)


async def refusal(
    server: ServerProcess, uid: str, *topics: str, headers: dict[str, str] | None = None, query: str = ""
) -> tuple[int, str, str | None]:
    """The status, body and WWW-Authenticate header of a handshake that must be refused."""
    url = server.url(subscribe_path(uid, *topics) + query)
    with pytest.raises(InvalidStatus) as refused:
        await connect(url, open_timeout=scaled(10), additional_headers=headers)
    response = refused.value.response
    return response.status_code, response.body.decode(), response.headers.get("WWW-Authenticate")


async def publish_to_self(
    connection: ClientConnection, topic: str, body: str, ref: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Publish on a topic the connection holds; its ack and its message, whichever came first."""
    await send_frame(connection, type="pub", topic=topic, body=body, ref=ref)
    frames = {frame["type"]: frame for frame in [await next_frame(connection), await next_frame(connection)]}
    assert set(frames) == {"ack", "message"}, frames
    assert frames["ack"]["ref"] == ref
    return frames["ack"], frames["message"]


async def test_the_start_line_names_the_scheme(server: ServerProcess) -> None:
    (listening,) = server.wait_logged("server_listening")
    assert listening["auth"] == "hs256"
    assert not server.logged_so_far("authentication_off")


async def test_a_server_without_a_secret_says_it_is_open(start_server: Callable[..., ServerProcess]) -> None:
    """`auth=off` in the start line and a warning of its own; anyone connects as anyone."""
    open_server = start_server("--tick", "0")
    (listening,) = open_server.wait_logged("server_listening")
    assert listening["auth"] == "off"
    (warning,) = open_server.wait_logged("authentication_off")
    assert warning["level"] == "warning"
    assert "anyone may connect as anyone" in warning["detail"]
    connection, first = await connect_as(open_server, "whoever", "any:topic")
    assert first["type"] == "success"
    await connection.close()


async def test_bearer_header_and_token_parameter_both_connect(server: ServerProcess) -> None:
    alice = unique("alice")
    by_header, first = await connect_as(server, alice, "news", headers=bearer(token(alice)))
    assert (first["type"], first["uid"], first["topics"]) == ("success", alice, ["news"])
    await by_header.close()
    by_query, first = await connect_as(server, alice, query=f"?token={token(alice)}")
    assert (first["type"], first["uid"]) == ("success", alice)
    await by_query.close()


async def test_a_token_in_both_the_header_and_the_query_is_401(server: ServerProcess) -> None:
    """One way only (RFC 6750 §2): the server does not pick one of two credentials."""
    alice = unique("alice")
    status, body, challenge = await refusal(
        server, alice, headers=bearer(token(alice)), query=f"?token={token(alice)}"
    )
    assert (status, body) == (401, "a token both in Authorization and in ?token=: send one\n")
    assert challenge == 'Bearer realm="minimess", error="invalid_token"'


async def test_no_token_is_401_with_a_bearer_challenge(server: ServerProcess) -> None:
    status, body, challenge = await refusal(server, unique("alice"))
    assert status == 401
    assert body == "no token: send Authorization: Bearer <token>, or ?token=<token>\n"
    assert challenge == 'Bearer realm="minimess"'


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        pytest.param(
            lambda uid: jwt.encode({"sub": uid, "exp": 2**33}, b"x" * 32), "bad token signature", id="sig"
        ),
        pytest.param(lambda uid: token(uid, lifetime=-HOUR), "token expired", id="expired"),
        pytest.param(lambda uid: "not.a.token", "malformed token", id="malformed"),
        pytest.param(
            lambda uid: jwt.encode({"sub": uid, "exp": 2**33, "publish": "news"}, SECRET),
            "malformed token: 'publish' is not a list of topic patterns",
            id="claim-type",
        ),
    ],
)
async def test_a_bad_signature_an_expired_or_a_malformed_token_is_401(
    server: ServerProcess, make_token: Any, reason: str
) -> None:
    alice = unique("alice")
    status, body, challenge = await refusal(server, alice, headers=bearer(make_token(alice)))
    assert (status, body) == (401, reason + "\n")
    assert challenge == 'Bearer realm="minimess", error="invalid_token"'


async def test_a_token_for_alice_cannot_connect_as_bob(server: ServerProcess) -> None:
    """The path's uid is who the client claims to be; the token's `sub` is who it is."""
    alice, bob = unique("alice"), unique("bob")
    for how in ({"headers": bearer(token(alice))}, {"query": f"?token={token(alice)}"}):
        status, body, _ = await refusal(server, bob, **how)
        assert (status, body) == (403, f"the token is for {alice}, not {bob}\n")


async def test_a_url_topic_the_token_does_not_allow_is_403(server: ServerProcess) -> None:
    alice = unique("alice")
    allowed = token(alice, subscribe=[f"{alice}:*", "news"])
    status, body, _ = await refusal(server, alice, f"{alice}:inbox", "sport", headers=bearer(allowed))
    assert (status, body) == (403, "the token does not allow subscribing to sport\n")
    connection, first = await connect_as(server, alice, f"{alice}:inbox", "news", headers=bearer(allowed))
    assert first["topics"] == [f"{alice}:inbox", "news"]
    await connection.close()


async def test_sub_and_pub_outside_the_token_are_forbidden_with_their_ref_and_the_rest_works(
    server: ServerProcess,
) -> None:
    """Forbidden frames change nothing; the connection stays and its allowed topics keep working."""
    alice, bob = unique("alice"), unique("bob")
    own, room = f"{alice}:inbox", unique("room")
    limited = token(alice, subscribe=[f"{alice}:*", room], publish=[room])
    connection, _ = await connect_as(server, alice, headers=bearer(limited))
    spy, _ = await connect_as(server, bob, "news", headers=bearer(token(bob)))
    async with connection, spy:
        await send_frame(connection, type="sub", topic="news", ref="s-1")
        assert await next_frame(connection) == {
            "type": "error",
            "code": "forbidden",
            "reason": "not allowed to subscribe to news",
            "ref": "s-1",
        }
        await send_frame(connection, type="sub", topic="news", since={"epoch": "x", "offset": 0}, ref="s-2")
        assert (await next_frame(connection)).items() >= {"code": "forbidden", "ref": "s-2"}.items()
        await send_frame(connection, type="pub", topic="news", body="spoof", ref="p-1")
        assert await next_frame(connection) == {
            "type": "error",
            "code": "forbidden",
            "reason": "not allowed to publish on news",
            "ref": "p-1",
        }
        await send_frame(connection, type="sub", topic=own, ref="s-3")
        assert (await next_frame(connection)).items() >= {"type": "subscribed", "topic": own}.items()
        await send_frame(connection, type="pub", topic=own, body="to myself", ref="p-2")
        assert (await next_frame(connection)).items() >= {"code": "forbidden", "ref": "p-2"}.items()
        await send_frame(connection, type="sub", topic=room, ref="s-4")
        assert (await next_frame(connection))["type"] == "subscribed"
        ack, message = await publish_to_self(connection, room, "hello", "p-3")
        assert (message["id"], message["from"], message["body"]) == (ack["id"], alice, "hello")
        # The spoofed publish never reached news: bob's next message there is bob's own.
        _, message = await publish_to_self(spy, "news", "bob's own", "b-1")
        assert message["body"] == "bob's own"


async def test_the_connection_closes_with_4001_when_the_token_expires(server: ServerProcess) -> None:
    alice = unique("alice")
    connection, first = await connect_as(server, alice, headers=bearer(token(alice, lifetime=EXPIRING_IN)))
    assert first["type"] == "success"
    assert await close_code(connection, within=EXPIRING_IN.total_seconds() + 10) == 4001
    assert connection.close_reason == "token expired"
    await logged(server, "token_expired", uid=alice)


async def test_after_expiry_nothing_a_client_sends_is_acted_on_though_it_ignores_the_close(
    start_server: Callable[..., ServerProcess], secret_file: Path
) -> None:
    """A client that never answers the 4001 close frame cannot publish until the close timeout."""
    server = start_server("-v", "--tick", "0", "--auth-secret-file", str(secret_file), "--close-timeout", "2")
    alice, bob, room = unique("alice"), unique("bob"), unique("room")
    spy, _ = await connect_as(server, bob, room, headers=bearer(token(bob)))
    deaf = await RawClient.connect(server, alice, headers=bearer(token(alice, lifetime=EXPIRING_IN)))
    try:
        # Before expiry its publishes go through.
        await deaf.send_text(json.dumps({"type": "pub", "topic": room, "body": "before", "ref": "p-0"}))
        assert (await next_frame(spy)).items() >= {"type": "message", "body": "before"}.items()
        async with asyncio.timeout(scaled(EXPIRING_IN.total_seconds() + 10)):
            async for frame in deaf.frames():
                if frame.opcode is Opcode.CLOSE:
                    break
        assert Close.parse(bytes(frame.data)).code == 4001
        for n in range(3):
            await deaf.send_text(
                json.dumps({"type": "pub", "topic": room, "body": f"after {n}", "ref": f"p-{n}"})
            )
        # Whatever it sent was read before the server gave up waiting for its close frame.
        await logged(server, "client_disconnected", within=10)
    finally:
        deaf.close()
    # Nothing of it reached the room: bob's next message there is his own.
    await send_frame(spy, type="pub", topic=room, body="bob's own", ref="b-1")
    frames = [await next_frame(spy), await next_frame(spy)]
    assert {frame["type"] for frame in frames} == {"ack", "message"}, frames
    assert [frame["body"] for frame in frames if frame["type"] == "message"] == ["bob's own"]
    await spy.close()


async def test_a_token_is_never_logged(server: ServerProcess) -> None:
    """Neither a refused nor an admitted one, from the header or from the query string."""
    alice = unique("alice")
    secrets = [token(alice), token(alice), token(unique("mallory")), token(alice, lifetime=-HOUR)]
    connection, _ = await connect_as(server, alice, headers=bearer(secrets[0]))
    await connection.close()
    connection, _ = await connect_as(server, alice, query=f"?token={secrets[1]}")
    await connection.close()
    await refusal(server, alice, query=f"?token={secrets[2]}")
    await refusal(server, alice, headers=bearer(secrets[3]))
    await logged(server, "client_disconnected", count=2, within=10)
    await logged(server, "request_rejected", uid=alice, count=2)
    text = json.dumps(server.events)
    for secret in secrets:
        for part in secret.split("."):
            assert part not in text


async def test_minimess_token_mints_a_token_the_server_accepts(
    server: ServerProcess, secret_file: Path
) -> None:
    """`minimess token` signs with the same secret file; its lists and lifetime reach the claims."""
    alice = unique("alice")
    command = [sys.executable, "-m", "minimess", "token", "--uid", alice, "--subscribe", f"{alice}:*"]
    command += ["--publish", "news", "--ttl", "90s", "--secret-file", str(secret_file)]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=scaled(30), check=True
    )
    minted = done.stdout.strip()
    claims = jwt.decode(minted, SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["subscribe"], claims["publish"]) == (alice, [f"{alice}:*"], ["news"])
    assert claims["exp"] - claims["iat"] == 90
    assert abs(claims["exp"] - (datetime.now(UTC) + timedelta(seconds=90)).timestamp()) < scaled(30)
    connection, first = await connect_as(server, alice, f"{alice}:x", headers=bearer(minted))
    assert first["type"] == "success"
    await connection.close()


# --- the terminal client ----------------------------------------------------------------------------


def test_the_terminal_client_connects_with_a_token_file_and_after_4001_with_the_rotated_one(
    server: ServerProcess, tmp_path: Path
) -> None:
    """The file is read again on reconnecting: a fresh token there is what the next connection uses."""
    alice = unique("alice")
    token_file = tmp_path / "token"
    token_file.write_text(token(alice, lifetime=CLIENT_EXPIRING_IN) + "\n")
    client = TerminalClient(tmp_path / "work", alice, server.url(""), "--token-file", str(token_file), *RETRY)
    try:
        client.start()
        client.expect(rf"^\* connected to [^\n]* as {alice}\b")
        token_file.write_text(token(alice) + "\n")
        client.expect_status(
            "disconnected (the token expired)", within=CLIENT_EXPIRING_IN.total_seconds() + 10
        )
        client.expect(rf"^\* connected to [^\n]* as {alice}\b")
        server.wait_logged("client_connected", count=2, uid=alice)
    finally:
        client.stop()


def test_the_terminal_client_with_a_refused_token_says_why_and_exits(
    server: ServerProcess, tmp_path: Path
) -> None:
    """No retrying a 401: the server's reason, what to do, and exit 3."""
    alice = unique("alice")
    client = TerminalClient(tmp_path, alice, server.url(""), "--token", token(alice, lifetime=-HOUR), *RETRY)
    try:
        client.start()
        client.expect(
            r"^minimess client: the server refused the token: HTTP 401: token expired;"
            r" get a fresh token \(minimess token\) and start the client again$"
        )
        assert client.wait_exit() == 3
        assert "retrying" not in client.screen
        assert len(server.logged_so_far("request_rejected", uid=alice)) == 1
    finally:
        client.stop()


def test_the_printing_client_for_another_uid_exits_3_with_the_403_reason(
    server: ServerProcess, tmp_path: Path
) -> None:
    """MINIMESS_TOKEN is read too; a token for someone else is a 403, not retried."""
    alice, bob = unique("alice"), unique("bob")
    result = run_client(
        tmp_path, ["--uid", bob, "--server", server.url(""), "--print"], env={"MINIMESS_TOKEN": token(alice)}
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"minimess client: the server refused the token: HTTP 403: the token is for {alice}, not {bob};"
        " this token does not allow this uid or these topics: use another token, uid or topics"
    )
    assert "Traceback" not in result.stderr
