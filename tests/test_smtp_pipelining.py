"""SMTP PIPELINING (RFC 2920) and CHUNKING (RFC 3030) against real servers over real sockets:
aiosmtpd with and without PIPELINING, the asyncio server of tests.support with both, one that
answers only at the end of each pipelined group, and servers that follow a script, for what
each failure means for the message."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from newsletter.mail import smtp_pipelined
from newsletter.mail.transports import (
    ConnectionFailure,
    PermanentFailure,
    SendError,
    SMTPTransport,
    TemporaryFailure,
    UncertainDelivery,
    transport_from_url,
)
from tests.support.smtp import ChunkingServer, MailServer, SMTPServer
from tests.support.smtp_responder import Offer

SENDER = "news@example.org"
MESSAGE = b"Subject: Hello\r\nTo: ada@example.org\r\n\r\n.a line that starts with a dot\r\n"

SERVERS: dict[str, Callable[[], MailServer]] = {
    "aiosmtpd lock-step": lambda: SMTPServer(pipelining=False),
    "aiosmtpd pipelining": SMTPServer,
    "chunking": ChunkingServer,
    "chunking, answers held to the end of each group": lambda: ChunkingServer(hold=True),
    "pipelining, answers held to the end of each group": lambda: ChunkingServer(
        hold=True, offer=Offer(chunking=False)
    ),
}


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[MailServer]:
    started = SERVERS[request.param]()
    started.start()
    yield started
    started.stop()


def smtp(url: str) -> SMTPTransport:
    transport = transport_from_url(url)
    assert isinstance(transport, SMTPTransport)
    return transport


def subjects(server: MailServer) -> list[str]:
    return [str(item.message["Subject"]) for item in server.received]


def message(subject: str) -> bytes:
    return MESSAGE.replace(b"Hello", subject.encode())


# --- every kind of server --------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"Subject: dots\r\n\r\n.\r\n..\r\n.end\r\nmiddle . dot\r\n",
        b"X-First: .\r\n\r\nno dot starts a line\r\n",
        b"Subject: no final line end\r\n\r\n.last",
    ],
)
def test_bytes_arrive_exactly_whatever_their_dots(server: MailServer, data: bytes) -> None:
    connection = smtp(server.url).connect()
    connection.send(data, SENDER, ["ada@example.org"])
    connection.send(data, SENDER, ["grace@example.org"])
    connection.close()
    expected = data if data.endswith(b"\r\n") else data + b"\r\n"
    assert [item.data.replace(b"\r\n", b"\n") for item in server.received] == [
        expected.replace(b"\r\n", b"\n")
    ] * 2
    assert [item.recipients for item in server.received] == [
        ["ada@example.org"],
        ["grace@example.org"],
    ]


def stages() -> list[tuple[str, str]]:
    """Each server with each stage it has: with CHUNKING, BDAT carries the message, no DATA."""
    return [
        (kind, stage)
        for kind in SERVERS
        for stage in ["mail", "rcpt", "data", "end of data"]
        if not (stage == "data" and kind.startswith("chunking"))
    ]


@pytest.mark.parametrize(("server", "stage"), stages(), indirect=["server"])
@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("451 4.3.0 try again later", TemporaryFailure),
        ("552 5.3.4 message refused", PermanentFailure),
        ("421 4.3.2 closing down", ConnectionFailure),
    ],
)
def test_a_refusal_at_each_stage_fails_that_message_and_the_next_goes_through(
    server: MailServer, stage: str, reply: str, error: type[SendError]
) -> None:
    refuse: Callable[[str], str | None] = lambda value: reply if "refused" in value else None  # noqa: E731
    if stage == "mail":
        # Every MAIL names the same sender: the first is refused, the rest accepted.
        mails = iter([reply])
        server.handler.mail_reply = lambda _sender: next(mails, None)
    elif stage == "rcpt":
        server.handler.rcpt_reply = refuse
    elif stage == "data":
        server.handler.data_command_reply = refuse
    else:
        server.handler.data_reply = refuse
    connection = smtp(server.url).connect()
    with pytest.raises(error) as raised:
        connection.send(message("Refused"), SENDER, ["refused@example.org"])
    assert raised.value.code == int(reply[:3])
    connection.send(message("Next"), SENDER, ["ada@example.org"])
    connection.send(message("Another"), SENDER, ["grace@example.org"])
    connection.close()
    assert subjects(server) == ["Next", "Another"]


def test_some_recipients_refused_still_delivers_to_the_rest(server: MailServer) -> None:
    server.handler.rcpt_reply = lambda address: (
        "550 5.1.1 No such user" if address.startswith("gone") else None
    )
    connection = smtp(server.url).connect()
    connection.send(MESSAGE, SENDER, ["gone@example.org", "ada@example.org"])
    with pytest.raises(PermanentFailure) as raised:
        connection.send(MESSAGE, SENDER, ["gone@example.org", "gone2@example.org"])
    assert raised.value.hard_bounce
    connection.close()
    assert [item.recipients for item in server.received] == [["ada@example.org"]]


def test_a_connection_dropped_after_the_data_is_uncertain(server: MailServer) -> None:
    server.handler.drop_after_data = lambda recipients: recipients == ["dropped@example.org"]
    connection = smtp(server.url).connect()
    connection.send(message("Before"), SENDER, ["ada@example.org"])
    with pytest.raises(UncertainDelivery):
        connection.send(message("Dropped"), SENDER, ["dropped@example.org"])
    # The broken session is dropped; the next message opens a new one.
    connection.send(message("After"), SENDER, ["ada@example.org"])
    connection.close()
    assert subjects(server) == ["Before", "After"]


def test_a_session_the_server_ended_while_idle_is_replaced_not_blamed_on_the_message(
    server: MailServer,
) -> None:
    connection = smtp(server.url).connect()
    connection.send(message("Before"), SENDER, ["ada@example.org"])
    # The server goes away and comes back: the idle session is dead.
    server.stop()
    server.start()
    connection.send(message("After"), SENDER, ["ada@example.org"])
    connection.close()
    assert subjects(server) == ["Before", "After"]


def test_an_address_outside_ascii_goes_out_with_smtputf8() -> None:
    server = ChunkingServer()
    server.start()
    try:
        connection = smtp(server.url).connect()
        connection.send(MESSAGE, SENDER, ["jürgen@bücher.de"])
        connection.close()
    finally:
        server.stop()
    assert [item.recipients for item in server.received] == [["jürgen@xn--bcher-kva.de"]]


# --- what a lost answer means: servers that follow a script ----------------------------------

READ = object()  # read the next group of commands (up to DATA, NOOP or the end of a chunk)
READ_DATA = object()  # read the message data after a 354, to its closing dot


@dataclass
class Script:
    """One connection: greet, answer EHLO with ``offer``, then each step in turn (bytes to
    write, READ, READ_DATA, or a function to call), then close."""

    steps: list[object]
    offer: bytes = b"250-script\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
    groups: list[bytes] = field(default_factory=list)


def _read_group(conn: socket.socket, buffer: bytearray) -> bytes:
    while True:
        position = 0
        while (end := buffer.find(b"\r\n", position)) >= 0:
            line = bytes(buffer[position:end]).upper()
            position = end + 2
            if line.startswith(b"BDAT"):
                position += int(line.split()[1])
                if len(buffer) < position:
                    break
            if line.startswith((b"BDAT", b"DATA", b"NOOP", b"QUIT", b"EHLO")):
                group = bytes(buffer[:position])
                del buffer[:position]
                return group
        received = conn.recv(65536)
        if not received:
            return b""
        buffer += received


def _read_data(conn: socket.socket, buffer: bytearray) -> bytes:
    # The line end of DATA counts as the first CRLF of the CRLF "." CRLF that ends the data.
    buffer[:0] = b"\r\n"
    while (end := buffer.find(b"\r\n.\r\n")) < 0:
        received = conn.recv(65536)
        if not received:
            return b""
        buffer += received
    data = bytes(buffer[2 : end + 5])
    del buffer[: end + 5]
    return data


@contextmanager
def scripted(*scripts: Script) -> Iterator[str]:
    """A server taking one connection per script, in turn; yields its mail URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]

    def serve() -> None:
        for script in scripts:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the test ended without this connection
            conn.settimeout(10)
            buffer = bytearray()
            with conn:
                conn.sendall(b"220 script ESMTP\r\n")
                _read_group(conn, buffer)
                conn.sendall(script.offer)
                for step in script.steps:
                    if step is READ:
                        script.groups.append(_read_group(conn, buffer))
                    elif step is READ_DATA:
                        script.groups.append(_read_data(conn, buffer))
                    elif isinstance(step, bytes):
                        conn.sendall(step)
                    else:
                        assert callable(step)
                        step()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"smtp://127.0.0.1:{port}?timeout=5"
    finally:
        thread.join(timeout=10)
        listener.close()


def send_one(script: Script, error: type[SendError] | None) -> None:
    """Send MESSAGE to a server following ``script``, expecting ``error`` (or success)."""
    with scripted(script) as url:
        connection = smtp(url).connect()
        try:
            if error is None:
                connection.send(MESSAGE, SENDER, ["ada@example.org"])
            else:
                with pytest.raises(error):
                    connection.send(MESSAGE, SENDER, ["ada@example.org"])
        finally:
            connection.close()


CHUNKING_ANSWERS = [
    # Once the message went out with its envelope, only a refusal that did arrive is known.
    (b"", UncertainDelivery),
    (b"250 ok\r\n", UncertainDelivery),
    (b"250 ok\r\n250 ok\r\n", UncertainDelivery),
    (b"250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n", None),
    (b"250 ok\r\n250 ok\r\n452 4.3.1 insufficient storage\r\n", TemporaryFailure),
    (b"250 ok\r\n250 ok\r\n554 5.6.0 content refused\r\n", PermanentFailure),
    (b"451 4.3.0 try later\r\n", TemporaryFailure),
    (b"550 5.7.1 sender refused\r\n", PermanentFailure),
    (b"250 ok\r\n550 5.1.1 no such user\r\n", PermanentFailure),
    (b"250 ok\r\n451 4.2.1 mailbox busy\r\n", TemporaryFailure),
    (b"421 4.3.2 closing\r\n", ConnectionFailure),
    (b"250 ok\r\n421 4.3.2 closing\r\n", ConnectionFailure),
    (b"250 ok\r\n250 ok\r\n421 4.3.2 closing\r\n", ConnectionFailure),
]


@pytest.mark.parametrize(("answers", "error"), CHUNKING_ANSWERS)
def test_with_chunking_a_lost_answer_is_uncertain_unless_a_refusal_arrived(
    answers: bytes, error: type[SendError] | None
) -> None:
    script = Script([READ, answers])
    send_one(script, error)
    # One write: the envelope and the whole message, in a chunk of its exact size.
    [group] = script.groups
    assert group == (
        b"MAIL FROM:<news@example.org>\r\nRCPT TO:<ada@example.org>\r\n"
        + b"BDAT %d LAST\r\n" % len(MESSAGE)
        + MESSAGE
    )


PIPELINING = b"250-script\r\n250 PIPELINING\r\n"
STUFFED = MESSAGE.replace(b"\n.", b"\n..") + b".\r\n"
DATA_ANSWERS = [
    # Until the 354 nothing of the message went out: a lost answer costs it nothing.
    ([b""], ConnectionFailure, None),
    ([b"250 ok\r\n250 ok\r\n"], ConnectionFailure, None),
    ([b"250 ok\r\n250 ok\r\n354 go on\r\n", READ_DATA], UncertainDelivery, STUFFED),
    ([b"250 ok\r\n250 ok\r\n354 go on\r\n", READ_DATA, b"250 queued\r\n"], None, STUFFED),
    ([b"250 ok\r\n550 5.1.1 no such user\r\n554 no valid recipients\r\n"], PermanentFailure, None),
    # RFC 2920: a server may accept DATA although no recipient was: the client ends it empty.
    ([b"250 ok\r\n550 5.1.1 no such user\r\n354 go on\r\n", READ_DATA], PermanentFailure, b".\r\n"),
]


@pytest.mark.parametrize(("steps", "error", "data"), DATA_ANSWERS)
def test_with_pipelining_alone_the_message_waits_for_its_354(
    steps: list[object], error: type[SendError] | None, data: bytes | None
) -> None:
    script = Script([READ, *steps], offer=PIPELINING)
    send_one(script, error)
    assert script.groups[0] == (
        b"MAIL FROM:<news@example.org>\r\nRCPT TO:<ada@example.org>\r\nDATA\r\n"
    )
    assert script.groups[1:] == ([data] if data is not None else [])


def test_the_reset_after_a_refusal_goes_out_with_the_next_message() -> None:
    script = Script(
        [READ, b"250 ok\r\n451 4.2.1 busy\r\n554 no valid recipients\r\n", READ]
        + [b"250 reset\r\n250 ok\r\n250 ok\r\n250 queued\r\n"]
    )
    with scripted(script) as url:
        connection = smtp(url).connect()
        with pytest.raises(TemporaryFailure):
            connection.send(MESSAGE, SENDER, ["busy@example.org"])
        connection.send(MESSAGE, SENDER, ["ada@example.org"])
        connection.close()
    assert script.groups[1].startswith(b"RSET\r\nMAIL FROM:<news@example.org>\r\n")


def test_a_421_that_ended_an_idle_session_costs_the_next_message_nothing() -> None:
    said = threading.Event()
    first = Script([READ, b"250 ok\r\n250 ok\r\n250 queued\r\n", b"421 4.4.2 idle\r\n", said.set])
    second = Script([READ, b"250 ok\r\n250 ok\r\n250 queued\r\n", READ])
    with scripted(first, second) as url:
        connection = smtp(url).connect()
        connection.send(message("First"), SENDER, ["ada@example.org"])
        assert said.wait(10)
        connection.send(message("Second"), SENDER, ["ada@example.org"])
        connection.close()
    assert b"Second" in second.groups[0]


def test_after_a_pause_a_noop_checks_the_session_before_a_message_goes_with_its_envelope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(smtp_pipelined, "IDLE_PROBE", 0.0)
    # The first session takes a message, then dies when asked NOOP: the message goes to
    # the second session and is not left unknown.
    first = Script([READ, b"250 ok\r\n250 ok\r\n250 queued\r\n", READ])
    answers = b"250 ok\r\n250 ok\r\n250 queued\r\n"
    second = Script([READ, answers, READ, b"250 ok\r\n", READ, answers])
    with scripted(first, second) as url:
        connection = smtp(url).connect()
        connection.send(message("First"), SENDER, ["ada@example.org"])
        connection.send(message("Second"), SENDER, ["ada@example.org"])
        connection.send(message("Third"), SENDER, ["ada@example.org"])
        connection.close()
    assert first.groups[1] == b"NOOP\r\n"
    assert b"Second" in second.groups[0]
    assert second.groups[1] == b"NOOP\r\n"
    assert b"Third" in second.groups[2]


def test_a_message_the_server_took_before_dying_unanswered_is_uncertain() -> None:
    """Why a lost answer after BDAT is "unknown": the server may well have the message."""
    server = ChunkingServer(hold=True)

    def take_it_then_die(recipients: list[str]) -> bool:
        server.handler.delivered(SENDER, recipients, MESSAGE)
        return True

    server.handler.drop_after_data = take_it_then_die
    server.start()
    try:
        connection = smtp(server.url).connect()
        with pytest.raises(UncertainDelivery):
            connection.send(MESSAGE, SENDER, ["ada@example.org"])
        connection.close()
    finally:
        server.stop()
    assert [item.recipients for item in server.received] == [["ada@example.org"]]
