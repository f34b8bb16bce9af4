"""DKIM keys: loading and checking them, making a new one, and the DNS record that
publishes one."""

from __future__ import annotations

import base64
import re

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

__all__ = [
    "DkimKeyError",
    "dns_record",
    "load_ed25519_key",
    "load_rsa_key",
    "new_rsa_key",
    "txt_strings",
    "valid_selector",
]

RSA_BITS = 2048
# Receivers ignore signatures by shorter keys (RFC 8301).
RSA_MIN_BITS = 1024

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
