"""DKIM signatures (RFC 6376) on finished messages: RSA-SHA256, and Ed25519 (RFC 8463) beside it.

dkimpy folds the field and verifies in the tests; its own RSA is pure Python (about 6 ms a
signature, four times the cost of building and sending a digest message), so the signing
itself is ``cryptography``'s (about 0.25 ms, outside the interpreter lock). A ``Signer``
parses its keys once (``dkim_keys``) and is built once per campaign. Per message only the
body hash, the canonical form of the person's own header fields (``dkim_relaxed`` remembers
the shared ones) and the signature are computed.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils
from dkim import fold

from newsletter.cpus import off_this_core
from newsletter.mail.dkim_keys import load_ed25519_key, load_rsa_key
from newsletter.mail.dkim_relaxed import (
    FIELD_START,
    BodyHash,
    relaxed_body,
    relaxed_field,
    unremembered_field,
)
from newsletter.site import DkimKeys, Site

__all__ = ["SIGNED_HEADERS", "Signer"]

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
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

    @property
    def algorithm(self) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return b"ed25519-sha256"
        return b"rsa-sha256"

    def sign(self, digest: bytes) -> bytes:
        # A send's workers are kept to one CPU (``newsletter.cpus``); the RSA signature, a
        # quarter of a millisecond without the interpreter lock, is made on the others.
        return off_this_core(lambda: self._sign_here(digest))

    def _sign_here(self, digest: bytes) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            # RFC 8463: Ed25519 signs the SHA-256 hash of the canonical headers.
            return self.key.sign(digest)
        return self.key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


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
        _, canonical = unremembered_field(HEADER_NAME + b": " + folded)
        return cls(key, folded, canonical[:-2])

    def sign(self, signed: bytes, body_hash: bytes, now: bytes) -> bytes:
        """The field for a message whose signed header fields (canonical) are ``signed``."""
        own = b"; t=" + now + b"; bh=" + body_hash + b"; b="
        # The signature's own field is hashed last, with b= empty and no final CRLF; its
        # folds (CRLF and one space) unfold to the single spaces of the canonical form.
        digest = hashlib.sha256(signed + self.canonical + own).digest()
        signature = fold(base64.b64encode(self.key.sign(digest)), namelen=2)
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
                signature,
                b"\r\n",
            ]
        )


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
        head, _, body = data.partition(b"\r\n\r\n")
        # A name listed once in h= signs the field's last occurrence (RFC 6376, 5.4.2): later
        # fields of the same name overwrite earlier ones here.
        fields = dict(relaxed_field(field) for field in FIELD_START.split(head))
        signed = b"".join([fields[name] for name in SIGNED_HEADERS if name in fields])
        if body_hash is None:
            hashed = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
        else:
            hashed = body_hash.value()
        now = str(int(time.time())).encode("ascii")
        return b"".join([field.sign(signed, hashed, now) for field in self._fields]) + data
