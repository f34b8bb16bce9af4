"""Mail transports against real things: a maildir read by Python's mailbox module, the console,
and aiosmtpd servers (plain, failing, with AUTH, with STARTTLS and implicit TLS)."""

from __future__ import annotations

import mailbox
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from newsletter.mail.transports import (
    ConnectionFailure,
    ConsoleTransport,
    MaildirTransport,
    PermanentFailure,
    SMTPTransport,
    TemporaryFailure,
    transport_from_url,
)
from newsletter.mail.urls import MailURL, parse_mail_url
from tests.support.smtp import SMTPServer, free_port

SENDER = "news@example.org"


def message(
    subject: str = "Hello", body: str = "First line\n.a line that starts with a dot\n"
) -> EmailMessage:
    built = EmailMessage()
    built["From"] = f"News <{SENDER}>"
    built["To"] = "Ada <ada@example.org>"
    built["Subject"] = subject
    built["Message-ID"] = f"<{subject.replace(' ', '-')}@example.org>"
    built.set_content(body)
    return built


def smtp(url: str) -> SMTPTransport:
    transport = transport_from_url(url)
    assert isinstance(transport, SMTPTransport)
    return transport


# --- maildir and console --------------------------------------------------------------------


def test_maildir_writes_standard_eml_files(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    transport = transport_from_url(f"maildir://{outbox}")
    assert isinstance(transport, MaildirTransport)
    connection = transport.connect()
    connection.send(message("One"), SENDER, ["ada@example.org"])
    connection.send(message("Two"), SENDER, ["grace@example.org"])
    connection.close()

    files = sorted((outbox / "new").iterdir())
    assert len(files) == 2
    assert all(file.suffix == ".eml" for file in files)
    assert list((outbox / "tmp").iterdir()) == []

    box = mailbox.Maildir(outbox, create=False)
    read = sorted(box, key=lambda item: str(item["Subject"]))
    assert [str(item["Subject"]) for item in read] == ["One", "Two"]
    assert read[0]["Delivered-To"] == "ada@example.org"
    assert read[0]["Return-Path"] == f"<{SENDER}>"
    payload = read[0].get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert b".a line that starts with a dot" in payload


def test_maildir_that_cannot_be_created_is_a_connection_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConnectionFailure, match="cannot create maildir"):
        MaildirTransport(blocker / "outbox").connect()


def test_console_prints_each_message(capsys: pytest.CaptureFixture[str]) -> None:
    transport = transport_from_url("console://")
    assert isinstance(transport, ConsoleTransport)
    connection = transport.connect()
    connection.send(message("Printed"), SENDER, ["ada@example.org"])
    connection.close()
    out = capsys.readouterr().out
    assert f"--- message from {SENDER} to ada@example.org ---" in out
    assert "Subject: Printed" in out
    assert "First line" in out
    assert out.rstrip().endswith("--- end of message ---")
    assert "\r" not in out


# --- SMTP -----------------------------------------------------------------------------------


def test_smtp_send_arrives_intact(smtp_server: SMTPServer) -> None:
    connection = smtp(smtp_server.url).connect()
    connection.send(message(), SENDER, ["ada@example.org"])
    connection.close()
    [received] = smtp_server.received
    assert received.sender == SENDER
    assert received.recipients == ["ada@example.org"]
    assert received.message["Subject"] == "Hello"
    body = received.message.get_content().replace("\r\n", "\n")
    # The dot that starts a line was doubled on the wire and undone by the server.
    assert body == "First line\n.a line that starts with a dot\n"


def test_temporary_refusal_at_rcpt(smtp_server: SMTPServer) -> None:
    smtp_server.handler.rcpt_reply = lambda address: (
        "451 4.3.0 Try again later" if address == "busy@example.org" else None
    )
    connection = smtp(smtp_server.url).connect()
    with pytest.raises(TemporaryFailure) as raised:
        connection.send(message(), SENDER, ["busy@example.org"])
    assert raised.value.code == 451
    # The transaction was reset; the same connection carries on with the next message.
    connection.send(message("Next"), SENDER, ["ada@example.org"])
    connection.close()
    assert [item.message["Subject"] for item in smtp_server.received] == ["Next"]


@pytest.mark.parametrize(
    ("reply", "hard"),
    [
        ("550 5.1.1 No such user here", True),
        ("553 5.1.3 Bad destination mailbox address syntax", True),
        ("552 5.2.2 Mailbox full", False),
        ("554 5.7.1 Relay access denied", False),
    ],
)
def test_permanent_refusal_at_rcpt(smtp_server: SMTPServer, reply: str, hard: bool) -> None:
    smtp_server.handler.rcpt_reply = lambda _address: reply
    connection = smtp(smtp_server.url).connect()
    with pytest.raises(PermanentFailure) as raised:
        connection.send(message(), SENDER, ["gone@example.org"])
    connection.close()
    assert raised.value.code == int(reply[:3])
    assert raised.value.hard_bounce is hard
    assert smtp_server.received == []


def test_refusal_after_data(smtp_server: SMTPServer) -> None:
    smtp_server.handler.data_reply = lambda _rcpts: "554 5.7.1 Message rejected as spam"
    connection = smtp(smtp_server.url).connect()
    with pytest.raises(PermanentFailure) as raised:
        connection.send(message(), SENDER, ["ada@example.org"])
    assert raised.value.hard_bounce is False
    smtp_server.handler.data_reply = lambda _rcpts: "452 4.3.1 Insufficient system storage"
    with pytest.raises(TemporaryFailure):
        connection.send(message(), SENDER, ["ada@example.org"])
    connection.close()


def test_connection_refused() -> None:
    connection = smtp(f"smtp://127.0.0.1:{free_port()}?timeout=5").connect()
    with pytest.raises(ConnectionFailure, match="cannot connect to 127.0.0.1"):
        connection.send(message(), SENDER, ["ada@example.org"])
    connection.close()


def test_server_stopped_between_messages(smtp_server: SMTPServer) -> None:
    connection = smtp(smtp_server.url).connect()
    connection.send(message("Before"), SENDER, ["ada@example.org"])
    smtp_server.stop()
    with pytest.raises(ConnectionFailure):
        connection.send(message("During"), SENDER, ["ada@example.org"])
    smtp_server.start()
    connection.send(message("After"), SENDER, ["ada@example.org"])
    connection.close()
    assert [item.message["Subject"] for item in smtp_server.received] == ["Before", "After"]


# --- servers of our own: recording the session, AUTH, TLS -----------------------------------


@dataclass
class Recorder:
    """Records each accepted message with the client connection it came over."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((str(session.peer), envelope.content))
        return "250 OK"


class PipeliningRecorder(Recorder):
    """A Recorder whose server offers PIPELINING."""

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


def authenticator(
    _server: Any, _session: Any, _envelope: Any, _mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (b"news", b"s3cret p@ss")
    # handled=False lets aiosmtpd answer a failure with 535 itself.
    return AuthResult(success=ok, handled=False)


@contextmanager
def serving(handler: Recorder, **options: Any) -> Iterator[int]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def test_one_connection_carries_many_messages() -> None:
    recorder = Recorder()
    with serving(recorder) as port:
        connection = smtp(f"smtp://127.0.0.1:{port}?timeout=5").connect()
        for number in range(3):
            connection.send(message(f"Message {number}"), SENDER, ["ada@example.org"])
        connection.close()
        connection.close()  # closing twice is harmless
        second = smtp(f"smtp://127.0.0.1:{port}?timeout=5").connect()
        second.send(message("Another connection"), SENDER, ["ada@example.org"])
        second.close()
    peers = [peer for peer, _data in recorder.messages]
    assert len(peers) == 4
    assert len(set(peers[:3])) == 1
    assert peers[3] != peers[0]


def test_login_with_user_and_password() -> None:
    recorder = Recorder()
    with serving(recorder, authenticator=authenticator, auth_require_tls=False) as port:
        connection = smtp(f"smtp://news:s3cret%20p%40ss@127.0.0.1:{port}?timeout=5").connect()
        connection.send(message(), SENDER, ["ada@example.org"])
        connection.close()
    assert len(recorder.messages) == 1


def test_wrong_password_is_a_connection_failure() -> None:
    recorder = Recorder()
    with serving(recorder, authenticator=authenticator, auth_require_tls=False) as port:
        connection = smtp(f"smtp://news:wrong@127.0.0.1:{port}?timeout=5").connect()
        with pytest.raises(ConnectionFailure) as raised:
            connection.send(message(), SENDER, ["ada@example.org"])
        connection.close()
    assert raised.value.code == 535
    assert recorder.messages == []


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return Certificate(cert, key)


@pytest.fixture
def trusted(certificate: Certificate, monkeypatch: pytest.MonkeyPatch) -> Certificate:
    """Make the test certificate trusted, as a real one signed by a known CA would be."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert))
    return certificate


def test_starttls_with_login(trusted: Certificate) -> None:
    recorder = Recorder()
    options = {
        "tls_context": trusted.server_context(),
        "require_starttls": True,
        "authenticator": authenticator,
        "auth_required": True,
    }
    with serving(recorder, **options) as port:
        url = f"smtp+starttls://news:s3cret%20p%40ss@127.0.0.1:{port}?timeout=5"
        connection = smtp(url).connect()
        connection.send(message(), SENDER, ["ada@example.org"])
        connection.close()

        # The same server refuses plain SMTP, and a client that does not log in.
        for refused in [
            f"smtp://127.0.0.1:{port}?timeout=5",
            f"smtp+starttls://127.0.0.1:{port}?timeout=5",
        ]:
            plain = smtp(refused).connect()
            with pytest.raises(ConnectionFailure) as raised:
                plain.send(message(), SENDER, ["ada@example.org"])
            plain.close()
            assert raised.value.code == 530
    assert len(recorder.messages) == 1


def test_starttls_refuses_an_untrusted_certificate(
    certificate: Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    recorder = Recorder()
    with serving(recorder, tls_context=certificate.server_context()) as port:
        connection = smtp(f"smtp+starttls://127.0.0.1:{port}?timeout=5").connect()
        with pytest.raises(ConnectionFailure, match="CERTIFICATE_VERIFY_FAILED"):
            connection.send(message(), SENDER, ["ada@example.org"])
        connection.close()
    assert recorder.messages == []


@pytest.mark.parametrize("pipelining", [False, True])
def test_implicit_tls_carries_many_messages_on_one_connection(
    trusted: Certificate, pipelining: bool
) -> None:
    # The connection is checked for a close before each message; over TLS, with or without
    # pipelining, it is kept for all of them.
    recorder = PipeliningRecorder() if pipelining else Recorder()
    with serving(recorder, ssl_context=trusted.server_context()) as port:
        connection = smtp(f"smtps://127.0.0.1:{port}?timeout=5").connect()
        for number in range(3):
            connection.send(message(f"Message {number}"), SENDER, ["ada@example.org"])
        connection.close()
    peers = [peer for peer, _data in recorder.messages]
    assert len(peers) == 3
    assert len(set(peers)) == 1


# --- URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.org", MailURL("smtp", "mail.example.org", 25)),
        ("smtp+starttls://mail.example.org", MailURL("smtp+starttls", "mail.example.org", 587)),
        ("smtps://mail.example.org", MailURL("smtps", "mail.example.org", 465)),
        (
            "smtp+starttls://news%40example.org:p%3Ass%2Fw@mail.example.org:2525?timeout=7.5",
            MailURL(
                "smtp+starttls",
                "mail.example.org",
                2525,
                username="news@example.org",
                password="p:ss/w",
                timeout=7.5,
            ),
        ),
        ("SMTPS://Mail.Example.org:10465", MailURL("smtps", "mail.example.org", 10465)),
        ("maildir:///var/spool/newsletter", MailURL("maildir", path=Path("/var/spool/newsletter"))),
        ("console://", MailURL("console")),
    ],
)
def test_mail_urls(url: str, expected: MailURL) -> None:
    assert parse_mail_url(url) == expected


def test_timeout_comes_from_the_url_or_the_setting() -> None:
    assert SMTPTransport(parse_mail_url("smtp://h?timeout=3"), 30).timeout == 3
    assert SMTPTransport(parse_mail_url("smtp://h"), 12).timeout == 12
