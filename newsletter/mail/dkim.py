"""DKIM signatures (RFC 6376) on finished messages: RSA-SHA256, and Ed25519 (RFC 8463) beside it.

dkimpy folds the field and verifies in the tests; its own RSA is pure Python (about 6 ms a
signature, four times the cost of building and sending a digest message), so the signing
itself is ``cryptography``'s (about 0.25 ms). A ``Signer`` parses its keys once
(``dkim_keys``) and is built once per campaign. Per message only the body hash, the
canonical form of the person's own header fields (``mail.wire`` makes the shared ones
canonical once per campaign) and the signature are computed. A send's workers ask the
signing processes for the signature (``signing_process``) and collect it when the message
goes out; everything else signs where it runs.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim import fold

from newsletter.mail.dkim_keys import load_ed25519_key, load_rsa_key
from newsletter.mail.dkim_relaxed import (
    FIELD_START,
    BodyHash,
    relaxed_body,
    relaxed_field,
)
from newsletter.mail.signing_child import PrivateKey, sign_digest
from newsletter.mail.signing_process import Pending, for_this_thread
from newsletter.site import DkimKeys, Site

__all__ = ["SIGNED_HEADERS", "SignedLater", "Signer", "canonical_fields"]

# What Gmail and Yahoo need covered for a one-click unsubscribe to count, plus what a reader
# sees and where their answer goes, and Feedback-ID, which Gmail trusts only when signed. A
# name listed but absent from a message is signed as absent: nobody can add it later.
SIGNED_HEADERS = (
    b"from",
    b"reply-to",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"feedback-id",
    b"mime-version",
    b"content-type",
)
HEADER_NAME = b"DKIM-Signature"


@dataclass(frozen=True)
class _Key:
    selector: bytes
    key: PrivateKey

    @property
    def algorithm(self) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return b"ed25519-sha256"
        return b"rsa-sha256"

    @cached_property
    def pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def request(self, digest: bytes) -> Pending:
        """The signature of ``digest``: asked of the thread's signing process when it has
        one (a send's worker, see ``signing_process``), else made here."""
        process = for_this_thread()
        if process is None:
            return Pending.made(sign_digest(self.key, digest))
        return process.request(self.pem, digest, lambda: sign_digest(self.key, digest))


@dataclass(frozen=True)
class _Field:
    """One key's DKIM-Signature field: the tags that never change, folded and canonical
    once; per message only t=, bh= and b= are added."""

    key: _Key
    folded: bytes
    canonical: bytes

    @classmethod
    def for_key(cls, key: _Key, domain: bytes) -> _Field:
        tags = [
            (b"v", b"1"),
            (b"a", key.algorithm),
            (b"c", b"relaxed/relaxed"),
            (b"d", domain),
            (b"s", key.selector),
            (b"h", b" : ".join(SIGNED_HEADERS)),
        ]
        folded = fold(b"; ".join(b"=".join(tag) for tag in tags), namelen=len(HEADER_NAME))
        _, canonical = relaxed_field(HEADER_NAME + b": " + folded)
        return cls(key, folded, canonical[:-2])

    def request(self, signed: bytes, body_hash: bytes, now: bytes) -> Pending:
        """Ask for the signature of a message whose signed header fields (canonical) are
        ``signed``."""
        own = b"; t=" + now + b"; bh=" + body_hash + b"; b="
        # The signature's own field is hashed last, with b= empty and no final CRLF; its
        # folds (CRLF and one space) unfold to the single spaces of the canonical form.
        return self.key.request(hashlib.sha256(signed + self.canonical + own).digest())

    def field(self, body_hash: bytes, now: bytes, signature: bytes) -> bytes:
        # b= goes last, on lines of its own: folding it changes nothing that was signed.
        return b"".join(
            [
                HEADER_NAME,
                b": ",
                self.folded,
                b";\r\n t=",
                now,
                b"; bh=",
                body_hash,
                b";\r\n b=\r\n ",
                _folded_value(base64.b64encode(signature)),
                b"\r\n",
            ]
        )


def _folded_value(value: bytes) -> bytes:
    """A tag value without spaces on lines of 70 characters after their leading space (a
    verifier drops the folds: white space in b= is ignored)."""
    return b"\r\n ".join([value[at : at + 70] for at in range(0, len(value), 70)])


class SignedLater:
    """A message whose signatures have been asked for; :attr:`data` waits for them."""

    __slots__ = ("_asked", "_body_hash", "_data", "_now")

    def __init__(
        self, data: bytes, body_hash: bytes, now: bytes, asked: list[tuple[_Field, Pending]]
    ) -> None:
        self._data = data
        self._body_hash = body_hash
        self._now = now
        self._asked = asked

    @property
    def data(self) -> bytes:
        """The message with its DKIM-Signature fields in front."""
        fields = [
            field.field(self._body_hash, self._now, pending.result())
            for field, pending in self._asked
        ]
        return b"".join(fields) + self._data


def canonical_fields(fields: Iterable[bytes]) -> dict[bytes, bytes]:
    """Header fields (each without its CRLF) by lower-case name, in relaxed form. A name
    listed once in h= signs the field's last occurrence (RFC 6376, 5.4.2): later fields of
    the same name overwrite earlier ones."""
    return dict(relaxed_field(field) for field in fields)


class Signer:
    """Signs finished messages for one domain, with an RSA key and perhaps an Ed25519 key,
    each published under its own selector; the keys are parsed once."""

    def __init__(
        self,
        domain: str,
        selector: str,
        rsa_key: rsa.RSAPrivateKey,
        ed25519: tuple[str, ed25519.Ed25519PrivateKey] | None = None,
    ) -> None:
        self.domain = domain.encode("ascii")
        keys = [_Key(selector.encode("ascii"), rsa_key)]
        if ed25519 is not None:
            keys.append(_Key(ed25519[0].encode("ascii"), ed25519[1]))
        self._fields = [_Field.for_key(key, self.domain) for key in keys]

    @classmethod
    def for_site(cls, site: Site) -> Signer | None:
        """The site's signer, or None when no DKIM key is set."""
        keys: DkimKeys | None = site.dkim
        if keys is None:
            return None
        second = None
        if keys.ed25519_pem is not None and keys.ed25519_selector is not None:
            second = (keys.ed25519_selector, load_ed25519_key(keys.ed25519_pem))
        domain = site.sender_domain.encode("idna").decode("ascii")
        return cls(domain, keys.selector, load_rsa_key(keys.rsa_pem), second)

    def sign(self, data: bytes, body_hash: BodyHash | None = None) -> bytes:
        """``data`` (a message with CRLF line ends) with its DKIM-Signature fields in front;
        ``body_hash``, when given, has been fed the body as it was assembled."""
        return self.sign_later(data, body_hash).data

    def sign_later(
        self,
        data: bytes,
        body_hash: BodyHash | None = None,
        fields: Mapping[bytes, bytes] | None = None,
    ) -> SignedLater:
        """As :meth:`sign`, the signatures made while the caller goes on (by a send's
        worker: while it sends the message before this one). ``fields``, when given, are
        the header's fields in relaxed form by lower-case name, the last of each name."""
        head, _, body = data.partition(b"\r\n\r\n")
        if fields is None:
            fields = canonical_fields(FIELD_START.split(head))
        signed = b"".join([fields[name] for name in SIGNED_HEADERS if name in fields])
        if body_hash is None:
            hashed = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
        else:
            hashed = body_hash.value()
        now = str(int(time.time())).encode("ascii")
        asked = [(field, field.request(signed, hashed, now)) for field in self._fields]
        return SignedLater(data, hashed, now, asked)
