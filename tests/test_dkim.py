"""DKIM: every message the service sends is signed, checked by dkimpy's own verifier against
the test's keys (its DNS lookup answers with the test's record), on both databases."""

from __future__ import annotations

import base64
import hashlib
import stat
from collections.abc import Callable
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from dkim import rfc822_parse
from dkim.canonicalization import Relaxed
from flask import Flask

from newsletter import ConfigError
from newsletter.app_db import session_factory
from newsletter.mail.dkim import Signer
from newsletter.mail.dkim_keys import dns_record, load_ed25519_key, load_rsa_key, new_rsa_key
from newsletter.mail.dkim_relaxed import FIELD_START, BodyHash, relaxed_body, relaxed_field
from newsletter.mail.pieces import Pieces, wire_text
from newsletter.web.dispatch import get_dispatcher
from tests.conftest import post_signup
from tests.sending_support import add_articles_and_digest, add_subscribers
from tests.support.smtp import SMTPServer

DOMAIN = "example.org"  # the sender's, news@example.org in tests/conftest.py
SELECTOR = "news2026"
ED25519_SELECTOR = "news2026e"


@pytest.fixture(scope="module")
def rsa_pem() -> bytes:
    return new_rsa_key()


@pytest.fixture(scope="module")
def ed25519_pem() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture
def key_files(tmp_path: Path, rsa_pem: bytes, ed25519_pem: bytes) -> tuple[Path, Path]:
    rsa_file, ed25519_file = tmp_path / "dkim.pem", tmp_path / "dkim-ed25519.pem"
    rsa_file.write_bytes(rsa_pem)
    ed25519_file.write_bytes(ed25519_pem)
    return rsa_file, ed25519_file


@pytest.fixture
def signing_app(
    make_app: Callable[..., Flask], smtp_server: SMTPServer, key_files: tuple[Path, Path]
) -> Flask:
    return make_app(
        MAIL_URL=smtp_server.url,
        DKIM_KEY_FILE=str(key_files[0]),
        DKIM_SELECTOR=SELECTOR,
        DKIM_ED25519_KEY_FILE=str(key_files[1]),
        DKIM_ED25519_SELECTOR=ED25519_SELECTOR,
    )


def dns_for(pem: bytes, ed25519_key: bool = False) -> Callable[..., bytes | None]:
    """dkimpy's DNS lookup, answering for our selector and domain only."""
    key = load_ed25519_key(pem) if ed25519_key else load_rsa_key(pem)
    record = dns_record(key).encode()
    selector = ED25519_SELECTOR if ed25519_key else SELECTOR

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == f"{selector}._domainkey.{DOMAIN}.".encode() else None

    return lookup


def assert_signed(data: bytes, rsa_pem: bytes, ed25519_pem: bytes) -> None:
    assert dkim.verify(data, dnsfunc=dns_for(rsa_pem))
    # RFC 8463: the Ed25519 signature is the second DKIM-Signature field.
    assert dkim.DKIM(data).verify(idx=1, dnsfunc=dns_for(ed25519_pem, ed25519_key=True))
    second = dkim.DKIM(data)
    assert second.verify(idx=1, dnsfunc=dns_for(ed25519_pem, ed25519_key=True))
    assert second.signature_fields[b"a"] == b"ed25519-sha256"
    assert second.signature_fields[b"s"] == ED25519_SELECTOR.encode()
    signature = dkim.DKIM(data)
    assert signature.verify(dnsfunc=dns_for(rsa_pem))
    assert signature.signature_fields[b"d"] == DOMAIN.encode()
    assert signature.signature_fields[b"c"] == b"relaxed/relaxed"
    assert signature.signature_fields[b"a"] == b"rsa-sha256"
    signed = set(signature.include_headers)
    for name in (b"from", b"to", b"subject", b"date", b"message-id", b"list-id"):
        assert name in signed
    for name in (b"list-unsubscribe", b"list-unsubscribe-post", b"mime-version", b"content-type"):
        assert name in signed


def test_a_sent_digest_is_signed_and_a_changed_unsubscribe_link_breaks_it(
    signing_app: Flask, smtp_server: SMTPServer, rsa_pem: bytes, ed25519_pem: bytes
) -> None:
    with session_factory(signing_app).begin() as session:
        add_subscribers(session, 3)
        digest_id = add_articles_and_digest(session)
    result = signing_app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)])
    assert result.exit_code == 0, result.output
    assert len(smtp_server.received) == 3
    for received in smtp_server.received:
        assert_signed(received.data, rsa_pem, ed25519_pem)
    first = smtp_server.received[0]
    link = first.message["List-Unsubscribe"].encode()
    assert link in first.data
    forged = first.data.replace(link, b"<https://elsewhere.example.net/unsubscribe>")
    assert not dkim.verify(forged, dnsfunc=dns_for(rsa_pem))
    assert not dkim.DKIM(forged).verify(idx=1, dnsfunc=dns_for(ed25519_pem, ed25519_key=True))


def test_a_confirmation_is_signed(
    signing_app: Flask, smtp_server: SMTPServer, rsa_pem: bytes, ed25519_pem: bytes
) -> None:
    assert post_signup(signing_app.test_client()).status_code == 303
    get_dispatcher(signing_app).drain()
    [received] = smtp_server.received
    assert received.recipients == ["ada@example.org"]
    assert_signed(received.data, rsa_pem, ed25519_pem)
    assert not dkim.verify(
        received.data.replace(b"Subject: Please", b"Subject: Do"), dnsfunc=dns_for(rsa_pem)
    )


def test_reply_to_and_feedback_id_are_signed(
    make_app: Callable[..., Flask], smtp_server: SMTPServer, key_files: tuple[Path, Path]
) -> None:
    # Gmail trusts Feedback-ID only under the sender's signature; Reply-To is where a
    # reader's answer goes, so nobody on the way may change or add it.
    app = make_app(
        MAIL_URL=smtp_server.url,
        DKIM_KEY_FILE=str(key_files[0]),
        DKIM_SELECTOR=SELECTOR,
        REPLY_TO="Press office <office@example.org>",
    )
    assert post_signup(app.test_client()).status_code == 303
    get_dispatcher(app).drain()
    [received] = smtp_server.received
    rsa_pem = key_files[0].read_bytes()
    signature = dkim.DKIM(received.data)
    assert signature.verify(dnsfunc=dns_for(rsa_pem))
    assert {b"reply-to", b"feedback-id"} <= set(signature.include_headers)
    for header, forged in (
        (b"Reply-To: Press office", b"Reply-To: Pressed office"),
        (b"Feedback-ID: confirmation", b"Feedback-ID: digest-9"),
    ):
        assert header in received.data
        changed = received.data.replace(header, forged)
        assert not dkim.verify(changed, dnsfunc=dns_for(rsa_pem))


def test_a_test_send_of_a_preview_is_signed(
    signing_app: Flask, smtp_server: SMTPServer, rsa_pem: bytes, ed25519_pem: bytes
) -> None:
    with session_factory(signing_app).begin() as session:
        digest_id = add_articles_and_digest(session)
    result = signing_app.test_cli_runner().invoke(
        args=["digest", "preview", str(digest_id), "--to", "editor@example.net"]
    )
    assert result.exit_code == 0, result.output
    [received] = smtp_server.received
    assert received.message["Subject"].startswith("[TEST] ")
    assert_signed(received.data, rsa_pem, ed25519_pem)


def test_without_a_key_nothing_is_signed(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    assert post_signup(app.test_client()).status_code == 303
    get_dispatcher(app).drain()
    [received] = smtp_server.received
    assert b"DKIM-Signature" not in received.data


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"DKIM_KEY_FILE": "{missing}", "DKIM_SELECTOR": SELECTOR},
            "NEWSLETTER_DKIM_KEY_FILE: cannot read {missing}: No such file or directory",
        ),
        (
            {"DKIM_KEY_FILE": "{folder}", "DKIM_SELECTOR": SELECTOR},
            "NEWSLETTER_DKIM_KEY_FILE: cannot read {folder}: Is a directory",
        ),
        (
            {"DKIM_KEY_FILE": "{garbage}", "DKIM_SELECTOR": SELECTOR},
            "NEWSLETTER_DKIM_KEY_FILE: {garbage}: not a private key in PEM format",
        ),
        (
            {"DKIM_KEY_FILE": "{ed25519}", "DKIM_SELECTOR": SELECTOR},
            "NEWSLETTER_DKIM_KEY_FILE: {ed25519}: not an RSA private key",
        ),
        (
            {
                "DKIM_KEY_FILE": "{rsa}",
                "DKIM_SELECTOR": SELECTOR,
                "DKIM_ED25519_KEY_FILE": "{rsa}",
                "DKIM_ED25519_SELECTOR": ED25519_SELECTOR,
            },
            "NEWSLETTER_DKIM_ED25519_KEY_FILE: {rsa}: not an Ed25519 private key",
        ),
        (
            {
                "DKIM_KEY_FILE": "{rsa}",
                "DKIM_SELECTOR": SELECTOR,
                "DKIM_ED25519_KEY_FILE": "{ed25519}",
            },
            "NEWSLETTER_DKIM_ED25519_SELECTOR: needed with NEWSLETTER_DKIM_ED25519_KEY_FILE",
        ),
        (
            {
                "DKIM_KEY_FILE": "{rsa}",
                "DKIM_SELECTOR": SELECTOR,
                "DKIM_ED25519_KEY_FILE": "{ed25519}",
                "DKIM_ED25519_SELECTOR": SELECTOR,
            },
            "NEWSLETTER_DKIM_ED25519_SELECTOR: must differ from NEWSLETTER_DKIM_SELECTOR; "
            "each key is published under a selector of its own",
        ),
        (
            {"DKIM_ED25519_KEY_FILE": "{ed25519}", "DKIM_ED25519_SELECTOR": ED25519_SELECTOR},
            "NEWSLETTER_DKIM_KEY_FILE: needed with NEWSLETTER_DKIM_ED25519_KEY_FILE",
        ),
        (
            {"DKIM_KEY_FILE": "{rsa}"},
            "NEWSLETTER_DKIM_SELECTOR: needed with NEWSLETTER_DKIM_KEY_FILE",
        ),
        (
            {"DKIM_SELECTOR": SELECTOR},
            "NEWSLETTER_DKIM_KEY_FILE: needed with NEWSLETTER_DKIM_SELECTOR",
        ),
        (
            {"DKIM_KEY_FILE": "{rsa}", "DKIM_SELECTOR": "news 2026"},
            "NEWSLETTER_DKIM_SELECTOR: expected a DNS name such as news2026, got 'news 2026'",
        ),
    ],
)
def test_a_bad_key_setting_stops_start_up_with_one_line(
    make_app: Callable[..., Flask],
    tmp_path: Path,
    key_files: tuple[Path, Path],
    settings: dict[str, str],
    message: str,
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    paths = {
        "missing": str(tmp_path / "missing.pem"),
        "folder": str(tmp_path),
        "garbage": str(garbage),
        "rsa": str(key_files[0]),
        "ed25519": str(key_files[1]),
    }
    filled = {name: value.format(**paths) for name, value in settings.items()}
    with pytest.raises(ConfigError) as raised:
        make_app(**filled)
    assert str(raised.value) == message.format(**paths)
    assert "\n" not in str(raised.value)


def test_generate_writes_a_private_key_and_prints_its_record(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    app = make_app(SENDER="News <news@news.example.org>")
    out = tmp_path / "keys" / "dkim.pem"
    out.parent.mkdir()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["dkim", "generate", "--selector", "s1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = load_rsa_key(out.read_bytes())
    assert key.key_size == 2048
    [line] = [line for line in result.output.splitlines() if "._domainkey." in line]
    name, _, strings = line.partition(" IN TXT ")
    assert name == "s1._domainkey.news.example.org."
    parts = strings.split('" "')
    assert len(parts) == 2  # a 2048-bit key's record is longer than one string may be
    assert all(len(part.strip('"')) <= 255 for part in parts)
    assert "".join(part.strip('"') for part in parts) == dns_record(key)
    assert dns_record(key).startswith("v=DKIM1; k=rsa; p=")
    # The key written is one the service starts with.
    signing = make_app(
        SENDER="News <news@news.example.org>", DKIM_KEY_FILE=str(out), DKIM_SELECTOR="s1"
    )
    assert signing.config["DKIM_KEYS"].rsa_pem == out.read_bytes()


def test_generate_never_overwrites_a_key(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    out = tmp_path / "dkim.pem"
    out.write_bytes(b"the key in use")
    result = (
        make_app()
        .test_cli_runner()
        .invoke(args=["dkim", "generate", "--selector", "s1", "--out", str(out)])
    )
    assert result.exit_code == 1
    assert result.output == f"Error: {out} exists; choose another --out or remove it first\n"
    assert out.read_bytes() == b"the key in use"


def test_generate_refuses_a_bad_selector(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    out = tmp_path / "dkim.pem"
    result = (
        make_app()
        .test_cli_runner()
        .invoke(args=["dkim", "generate", "--selector", "-bad", "--out", str(out)])
    )
    assert result.exit_code == 1
    assert "--selector: expected a DNS name" in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n\r\n",
        b"a  b\t\tc \t d \r\n\r\n\r\n",
        b"line with trailing space \r\nand tab\t\r\n \r\n\t\r\nend",
        b'=\r\n  <td style=3D"x">  two  spaces</td>\r\n',
        b" lone leading space\r\n",
        b"\t\r\n \t \r\nx\t \ty\r\n",
        b"no runs at all, single spaces only\r\n",
    ],
)
def test_the_body_is_canonicalised_as_dkimpy_does_it(body: bytes) -> None:
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


# Header blocks as they come, CRLF line ends, no blank line: folded values, tabs, runs of
# spaces, odd case, a name given twice, an empty value; and a change to a signed value.
AWKWARD_HEADS = [
    (b"From: News <news@example.org>\r\nTo: a@example.org\r\nSubject: Plain", b"Plain"),
    (b"SUBJECT:   Runs  of   spaces\t\tand tabs \t \r\nFROM:news@example.org", b"Runs"),
    (b"Subject: folded\r\n  over\r\n\tthree lines\r\nTo: <a@example.org>", b"three"),
    (b"To: first@example.org\r\nSubject: one\r\nTo: second@example.org\r\nSubject: 2", b"2"),
    (b"List-Unsubscribe: \r\n <https://news.example.org/u/x>\r\nList-Id:", b"u/x"),
    (b"Date: Fri, 04 Dec 2026 19:13:52 +0000\r\nMessage-ID:  <m.1@example.org>  ", b"m.1"),
]


@pytest.mark.parametrize(("head", "signed_value"), AWKWARD_HEADS)
def test_header_fields_are_canonicalised_as_dkimpy_does_it(
    head: bytes, signed_value: bytes
) -> None:
    theirs = Relaxed.canonicalize_headers(rfc822_parse(head + b"\r\n\r\n")[0])
    ours = [relaxed_field(field) for field in FIELD_START.split(head)]
    assert ours == [(name, name + b":" + value) for name, value in theirs]


@pytest.mark.parametrize(("head", "signed_value"), AWKWARD_HEADS)
def test_a_signature_over_awkward_headers_verifies_and_a_change_breaks_it(
    head: bytes, signed_value: bytes, rsa_pem: bytes
) -> None:
    signer = Signer(DOMAIN, SELECTOR, load_rsa_key(rsa_pem))
    data = signer.sign(head + b"\r\n\r\nThe  body\t \r\n\r\n")
    assert dkim.verify(data, dnsfunc=dns_for(rsa_pem))
    # The value changed is the last one of its name: the one h= covers.
    at = data.rindex(signed_value)
    changed = data[:at] + b"X" + data[at + 1 :]
    assert not dkim.verify(changed, dnsfunc=dns_for(rsa_pem))


def whole_body_hash(body: bytes) -> bytes:
    return base64.b64encode(hashlib.sha256(Relaxed.canonicalize_body(body)).digest())


@pytest.mark.parametrize(
    "pieces",
    [
        [(b"--b\r\n", True), (b"a  b\t\r\n", True), (b"own \r\n", False), (b"--b--\r\n", True)],
        # Seams in the middle of a line, with white space on both sides of them.
        [(b"Hello ", True), (b" Ada  ", False), (b"\t, welcome\r\n", True), (b"end\r\n", True)],
        [(b"", True), (b"x", False), (b"", True), (b"  \r\n\r\n", True), (b"last\r\n", False)],
        [(b"no line end at all", True)],
    ],
)
def test_a_body_hashed_in_pieces_has_the_hash_of_the_whole(
    pieces: list[tuple[bytes, bool]],
) -> None:
    for _ in range(2):  # the second time, the shared pieces come from what was remembered
        hashed = BodyHash()
        for piece, shared in pieces:
            hashed.add(piece, shared)
        assert hashed.value() == whole_body_hash(b"".join(piece for piece, _ in pieces))


@pytest.mark.parametrize("ending", [b"text\r\n\r\n", b"\r\n", b" \t\r\n"])
def test_a_body_hashed_in_pieces_refuses_an_empty_last_line(ending: bytes) -> None:
    hashed = BodyHash()
    hashed.add(b"first line\r\n", shared=True)
    hashed.add(ending)
    with pytest.raises(ValueError, match="empty line"):
        hashed.value()


def test_pieces_filled_for_the_wire_join_to_the_encoded_text() -> None:
    markers = {"name": "slotXnameend", "link": "slotXlinkend"}
    rendered = "Dear slotXnameend,\nyour  link: slotXlinkend\n" + "Long line " * 20 + "\n"
    pieces = Pieces.cut(rendered, markers)
    values = {"name": "Zoë  Ibáñez", "link": "https://news.example.org/p/" + "x" * 90}
    parts = pieces.fill_wire(values)
    assert b"".join(parts) == wire_text(pieces.fill_encoded(values))
    assert all(part.endswith(b"\r\n") for part in parts if part)
    assert pieces.fill_wire(values)[0] is parts[0]  # the literals are made once
