"""Checking that a provider's bounce webhook really comes from the provider.

- Amazon SNS (SES notifications) signs with an X.509 certificate it publishes at an address
  in the message; SignatureVersion 1 is RSA with SHA-1, 2 is RSA with SHA-256. The
  certificate (and a subscription's confirmation) is fetched only over HTTPS from
  ``sns.<region>.amazonaws.com``: a message naming any other address is refused unread.
- Mailgun signs ``timestamp + token`` with HMAC-SHA256 under the account's signing key.
- SendGrid signs ``timestamp + body`` with ECDSA (P-256, SHA-256); the account shows the
  public key as base64 DER.

Every comparison of secrets runs in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

__all__ = [
    "Fetch",
    "SNS_HOST",
    "fetch_https",
    "load_sendgrid_key",
    "mailgun_signature_valid",
    "sendgrid_signature_valid",
    "sns_address_allowed",
    "sns_signature_valid",
]

#: A function that GETs an address and returns the body: the SNS certificate and
#: subscription confirmations. Tests pass their own.
Fetch = Callable[[str], bytes]

SNS_HOST = re.compile(r"sns\.[a-z]{2}(-[a-z]+)+-\d\.amazonaws\.com")
FETCH_TIMEOUT = 10
FETCH_LIMIT = 64 * 1024

_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)


def sns_address_allowed(url: str) -> bool:
    """Whether ``url`` is an HTTPS address on an SNS host (``sns.<region>.amazonaws.com``)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    host = parts.hostname or ""
    return (
        parts.scheme == "https"
        and port in (None, 443)
        and not parts.username
        and SNS_HOST.fullmatch(host) is not None
    )


def fetch_https(url: str) -> bytes:
    """GET an SNS address (checked by the caller), at most 64 KiB, with a timeout."""
    if not sns_address_allowed(url):
        raise ValueError(f"not an SNS address: {url!r}")
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as response:  # noqa: S310
        body: bytes = response.read(FETCH_LIMIT + 1)
    if len(body) > FETCH_LIMIT:
        raise ValueError("the answer is too long")
    return body


def _sns_string_to_sign(message: Mapping[str, Any]) -> bytes | None:
    kind = message.get("Type")
    fields: tuple[str, ...]
    if kind == "Notification":
        fields = _NOTIFICATION_FIELDS
    elif kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        fields = _SUBSCRIPTION_FIELDS
    else:
        return None
    text = ""
    for name in fields:
        value = message.get(name)
        if value is None:
            if name == "Subject":
                continue  # the one optional field
            return None
        if not isinstance(value, str):
            return None
        text += f"{name}\n{value}\n"
    # JSON can carry a lone surrogate ("\ud800"), which no real message holds: it is kept as
    # it is, so the signature cannot match, rather than failing to encode.
    return text.encode("utf-8", "surrogatepass")


def sns_signature_valid(message: Mapping[str, Any], fetch: Fetch) -> bool:
    """Whether an SNS message carries a valid signature by an SNS certificate."""
    algorithm: hashes.HashAlgorithm
    version = message.get("SignatureVersion")
    if version == "1":
        algorithm = hashes.SHA1()  # noqa: S303 -- SNS's SignatureVersion 1 is defined so
    elif version == "2":
        algorithm = hashes.SHA256()
    else:
        return False
    cert_url = message.get("SigningCertURL")
    signed = _sns_string_to_sign(message)
    signature = message.get("Signature")
    if not isinstance(cert_url, str) or signed is None or not isinstance(signature, str):
        return False
    if not sns_address_allowed(cert_url):
        return False
    try:
        raw_signature = base64.b64decode(signature, validate=True)
        certificate = x509.load_pem_x509_certificate(fetch(cert_url))
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        key.verify(raw_signature, signed, padding.PKCS1v15(), algorithm)
    except (InvalidSignature, ValueError, OSError, binascii.Error):
        return False
    return True


def mailgun_signature_valid(signing_key: str, timestamp: str, token: str, signature: str) -> bool:
    """Mailgun's webhook signature: HMAC-SHA256 of timestamp and token, in hex."""
    expected = hmac.new(
        signing_key.encode("utf-8"),
        f"{timestamp}{token}".encode("utf-8", "surrogatepass"),  # a lone "\ud800" from JSON
        hashlib.sha256,
    ).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))


def load_sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key as its settings page shows it (base64 DER), or PEM."""
    try:
        if "BEGIN PUBLIC KEY" in text:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise ValueError("not an ECDSA public key (base64 DER, as SendGrid shows it)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an ECDSA public key (base64 DER, as SendGrid shows it)")
    return key


def sendgrid_signature_valid(
    key: ec.EllipticCurvePublicKey, signature: str, timestamp: str, body: bytes
) -> bool:
    """SendGrid's signed event webhook: ECDSA over the timestamp and the raw body."""
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, timestamp.encode("utf-8") + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error, UnicodeEncodeError):
        return False
    return True
