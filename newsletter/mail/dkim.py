"""DKIM signatures (RFC 6376) on finished messages: RSA-SHA256, and Ed25519 (RFC 8463) beside it.

dkimpy folds the field and verifies in the tests; its own RSA is pure Python (about 6 ms a
signature, four times the cost of building and sending a digest message), so the signing
itself is ``cryptography``'s (about 0.3 ms, outside the interpreter lock). A ``Signer``
parses its keys once and is built once per campaign. Per message only the body hash (each
person's body differs), the canonical form of the person's own header fields and the
signature are computed: the fields every message of a campaign shares (From, Subject,
List-Id, the MIME fields…) are canonicalised once and remembered.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import time
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils
from dkim import fold
from dkim.canonicalization import correct_empty_body, strip_trailing_lines

from newsletter.cpus import elsewhere, other_cpus
from newsletter.site import DkimKeys, Site

__all__ = [
    "BodyHash",
    "DkimKeyError",
    "SIGNED_HEADERS",
    "Signer",
    "dns_record",
    "load_ed25519_key",
    "load_rsa_key",
    "new_rsa_key",
    "relaxed_body",
    "relaxed_field",
    "relaxed_lines",
    "txt_strings",
    "valid_selector",
]

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
RSA_BITS = 2048
# Receivers ignore signatures by shorter keys (RFC 8301).
RSA_MIN_BITS = 1024
HEADER_NAME = b"DKIM-Signature"
# A header field starts on every line that does not begin with white space (RFC 5322, 2.2.3).
FIELD_START = re.compile(b"\r\n(?![\t ])")
LINE_BREAK = re.compile(b"\r?\n")
WSP_RUN = re.compile(b"[\t ]+")
# Enough for the shared fields of a few campaigns' messages at once, and for each worker's
# person-own fields to pass through without pushing them out.
SHARED_FIELDS_REMEMBERED = 512
# The pieces of a body that every message of a campaign shares: a digest's versions (one per
# mix of topics) have a few dozen; what is not used soon is forgotten first.
SHARED_PIECES_REMEMBERED = 1024
# Relaxed body canonicalisation (RFC 6376, 3.4.4), dkimpy's steps with cheaper patterns: its
# `[\t ]+` -> " " rewrites every single space of a 15 kB digest (0.45 ms a message, more than
# the RSA signature); these touch only the runs that change.
TRAILING_WSP = re.compile(b"[\t ]+\r\n")
# Two or more spaces, once tabs are spaces: a pattern that starts with a literal is searched
# for at C speed, where one that may start at any space is tried at every space of a body.
SPACE_RUNS = re.compile(b"  +")


# A selector is one or more DNS labels (RFC 6376, 3.1).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
SELECTOR = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def valid_selector(selector: str) -> bool:
    return SELECTOR.fullmatch(selector) is not None


def txt_strings(value: str) -> str:
    """A TXT record's value as DNS zone files want it: quoted strings of at most 255 bytes."""
    return " ".join(f'"{value[start : start + 255]}"' for start in range(0, len(value), 255))


class DkimKeyError(ValueError):
    """A key file holds no usable DKIM key."""


@functools.lru_cache(maxsize=SHARED_FIELDS_REMEMBERED)
def relaxed_field(field: bytes) -> tuple[bytes, bytes]:
    """One header field (``Name: value``, perhaps folded, without its final CRLF) as its
    lower-case name and its relaxed canonical form (RFC 6376, 3.4.2), ``name:value\r\n``."""
    return _relaxed_field(field)


def _relaxed_field(field: bytes) -> tuple[bytes, bytes]:
    name, _, value = field.partition(b":")
    name = name.lower().rstrip()
    # dkimpy's steps: unfold, one space for each run of WSP, then strip what is left around;
    # most fields are one line with single spaces, which only the strip changes.
    if b"\n" in value or b"\t" in value or b"  " in value:
        value = WSP_RUN.sub(b" ", LINE_BREAK.sub(b"", value))
    value = value.strip()
    return name, name + b":" + value + b"\r\n"


def relaxed_lines(body: bytes) -> bytes:
    """``body`` (CRLF line ends) with each line in the relaxed form (RFC 6376, 3.4.4): the
    whole rule but the last step, which drops empty lines at the body's end."""
    if b" \r\n" in body or b"\t\r\n" in body:
        body = TRAILING_WSP.sub(b"\r\n", body)
    body = body.replace(b"\t", b" ")
    if b"  " in body:
        body = SPACE_RUNS.sub(b" ", body)
    return body


def relaxed_body(body: bytes) -> bytes:
    """``body`` (CRLF line ends) in the relaxed canonical form, as dkimpy makes it."""
    canonical: bytes = correct_empty_body(strip_trailing_lines(relaxed_lines(body)))
    return canonical


@functools.lru_cache(maxsize=SHARED_PIECES_REMEMBERED)
def _relaxed_shared(piece: bytes) -> bytes:
    return relaxed_lines(piece)


class BodyHash:
    """The body hash (bh=) of a body given piece by piece, as the pieces are joined.

    The relaxed rule works line by line, so a piece that ends at a line end is canonical on
    its own: a piece marked shared (the same bytes in every message of a campaign: styles,
    articles, the footer) is canonicalised once and remembered, and only the person's own
    pieces each time. A piece that stops mid-line waits for the rest of its line."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._open = b""
        self._last = b""

    def add(self, piece: bytes, shared: bool = False) -> None:
        if self._open:
            piece, shared = self._open + piece, False
        if not piece.endswith(b"\r\n"):
            self._open = piece
            return
        self._open = b""
        self._last = _relaxed_shared(piece) if shared else relaxed_lines(piece)
        self._hash.update(self._last)

    def value(self) -> bytes:
        """The base64 hash. The body must end with a line that is not empty (a MIME body's
        closing delimiter does), so that the rule's last step has nothing to drop."""
        if self._open:
            # The rule ends a body's last line with CRLF when it has none.
            self.add(b"\r\n")
        if self._last == b"\r\n" or self._last.endswith(b"\r\n\r\n"):
            raise ValueError("a body hashed in pieces must not end with an empty line")
        return base64.b64encode(self._hash.digest())


def load_rsa_key(data: bytes) -> rsa.RSAPrivateKey:
    """An unencrypted RSA private key in PEM, of at least 1024 bits."""
    key = _load_pem(data)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DkimKeyError("not an RSA private key")
    if key.key_size < RSA_MIN_BITS:
        raise DkimKeyError(f"the RSA key has {key.key_size} bits; at least {RSA_MIN_BITS}")
    return key


def load_ed25519_key(data: bytes) -> ed25519.Ed25519PrivateKey:
    """An unencrypted Ed25519 private key in PEM (``openssl genpkey -algorithm ed25519``)."""
    key = _load_pem(data)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise DkimKeyError("not an Ed25519 private key")
    return key


def _load_pem(data: bytes) -> object:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise DkimKeyError("the key is encrypted; it must be stored without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        raise DkimKeyError("not a private key in PEM format") from None


def new_rsa_key() -> bytes:
    """A new RSA-2048 private key in PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def dns_record(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    """The TXT record's value that publishes ``key``'s public half."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        kind = "ed25519"
    else:
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        kind = "rsa"
    return f"v=DKIM1; k={kind}; p={base64.b64encode(public).decode('ascii')}"


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
        others = other_cpus()
        if others:
            return elsewhere(others).run(lambda: self._sign_here(digest))
        return self._sign_here(digest)

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
        _, canonical = _relaxed_field(HEADER_NAME + b": " + folded)
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
