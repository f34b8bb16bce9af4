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

from newsletter.site import DkimKeys, Site

__all__ = [
    "DkimKeyError",
    "SIGNED_HEADERS",
    "Signer",
    "dns_record",
    "load_ed25519_key",
    "load_rsa_key",
    "new_rsa_key",
    "relaxed_body",
    "relaxed_field",
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


def relaxed_body(body: bytes) -> bytes:
    """``body`` (CRLF line ends) in the relaxed canonical form, as dkimpy makes it."""
    if b" \r\n" in body or b"\t\r\n" in body:
        body = TRAILING_WSP.sub(b"\r\n", body)
    body = body.replace(b"\t", b" ")
    if b"  " in body:
        body = SPACE_RUNS.sub(b" ", body)
    canonical: bytes = correct_empty_body(strip_trailing_lines(body))
    return canonical


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
    algorithm: bytes
    selector: bytes
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

    def sign(self, digest: bytes) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            # RFC 8463: Ed25519 signs the SHA-256 hash of the canonical headers.
            return self.key.sign(digest)
        return self.key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


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
        self._keys = [_Key(b"rsa-sha256", selector.encode("ascii"), rsa_key)]
        if ed25519 is not None:
            self._keys.append(_Key(b"ed25519-sha256", ed25519[0].encode("ascii"), ed25519[1]))

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

    def sign(self, data: bytes) -> bytes:
        """``data`` (a message with CRLF line ends) with its DKIM-Signature fields in front."""
        head, _, body = data.partition(b"\r\n\r\n")
        # A name listed once in h= signs the field's last occurrence (RFC 6376, 5.4.2): later
        # fields of the same name overwrite earlier ones here.
        fields = dict(relaxed_field(field) for field in FIELD_START.split(head))
        signed = b"".join([fields[name] for name in SIGNED_HEADERS if name in fields])
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
        now = str(int(time.time())).encode("ascii")
        return b"".join([self._field(key, signed, body_hash, now) for key in self._keys]) + data

    def _field(self, key: _Key, signed: bytes, body_hash: bytes, now: bytes) -> bytes:
        tags = [
            (b"v", b"1"),
            (b"a", key.algorithm),
            (b"c", b"relaxed/relaxed"),
            (b"d", self.domain),
            (b"s", key.selector),
            (b"t", now),
            (b"h", b" : ".join(SIGNED_HEADERS)),
            (b"bh", body_hash),
            (b"b", b""),
        ]
        unsigned = fold(b"; ".join(b"=".join(tag) for tag in tags), namelen=len(HEADER_NAME))
        # The signature's own field is hashed last, with b= empty and no final CRLF.
        _, own = _relaxed_field(HEADER_NAME + b": " + unsigned)
        signature = base64.b64encode(key.sign(hashlib.sha256(signed + own[:-2]).digest()))
        # b= goes last, on lines of its own: folding it changes nothing that was signed.
        value: bytes = unsigned + b"\r\n " + fold(signature, namelen=2)
        return HEADER_NAME + b": " + value + b"\r\n"
