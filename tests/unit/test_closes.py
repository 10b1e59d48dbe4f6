"""A connection's close line says the code in force and who closed, from the close frames each side sent."""

from __future__ import annotations

from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from minimess.adapters.websocket_server.closes import HowClosed, how_closed


def open_protocol() -> ServerProtocol:
    return ServerProtocol(state=State.OPEN, max_size=1024)


def client_frame(frame: Frame) -> bytes:
    """A frame as a client sends it: masked."""
    return frame.serialize(mask=True, extensions=[])


def close_frame(code: int, reason: str) -> bytes:
    return client_frame(Frame(Opcode.CLOSE, Close(code, reason).serialize()))


def test_a_client_that_closes_first_closed_it_with_its_code_and_reason() -> None:
    protocol = open_protocol()
    protocol.receive_data(close_frame(1000, "bye"))  # the protocol answers it by itself
    protocol.receive_eof()
    assert protocol.close_sent is not None
    assert how_closed(protocol) == HowClosed(1000, "bye", "client")


def test_a_frame_too_large_is_the_servers_1009_even_when_the_client_never_answers() -> None:
    """websockets' own close_code says 1006 here, and its reason is empty."""
    protocol = open_protocol()
    protocol.receive_data(client_frame(Frame(Opcode.TEXT, b"x" * 2048)))
    protocol.receive_eof()
    closed = how_closed(protocol)
    assert (closed.code, closed.closed_by) == (1009, "server")
    assert type(closed.code) is int  # not CloseCode, whose repr is <CloseCode.MESSAGE_TOO_BIG: 1009>
    assert "1024" in closed.reason
    assert protocol.close_code == CloseCode.ABNORMAL_CLOSURE


def test_a_server_close_the_client_answers_is_the_servers() -> None:
    protocol = open_protocol()
    protocol.send_close(4000, "slow consumer")
    protocol.receive_data(close_frame(4000, "slow consumer"))
    assert how_closed(protocol) == HowClosed(4000, "slow consumer", "server")


def test_no_close_frame_at_all_is_the_network_unless_the_server_cut_it() -> None:
    protocol = open_protocol()
    protocol.receive_eof()
    assert how_closed(protocol) == HowClosed(1006, "", "network")
    assert how_closed(protocol, aborted=True) == HowClosed(1006, "", "server")
