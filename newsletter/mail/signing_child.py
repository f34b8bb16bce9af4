"""The signing process's own side: RSA and Ed25519 signatures of digests it is sent.

Run by path (``python signing_child.py``), so it imports nothing of the service: the standard
library and ``cryptography`` only. It reads frames from its standard input and answers each
signing request on its standard output, in the order asked; it ends when its input ends.

Frames in: ``K`` + length (4 bytes) + a private key in PEM (the next key number), or ``S`` +
key number (1 byte) + a SHA-256 digest (32 bytes). Answers: ``+`` + length (2 bytes) + the
signature, or ``-`` + length + what went wrong, in UTF-8.
"""

from __future__ import annotations

import struct
import sys
from typing import BinaryIO

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

LOAD = b"K"
SIGN = b"S"
SIGNED = b"+"
FAILED = b"-"
DIGEST_SIZE = 32

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def sign_digest(key: PrivateKey, digest: bytes) -> bytes:
    """A DKIM signature of ``digest``, the SHA-256 hash of the canonical header fields."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        # RFC 8463: Ed25519 signs the SHA-256 hash itself.
        return key.sign(digest)
    return key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def answer(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack(">H", len(payload)) + payload


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    keys: list[PrivateKey] = []
    while kind := requests.read(1):
        if kind == LOAD:
            (size,) = struct.unpack(">I", requests.read(4))
            loaded = serialization.load_pem_private_key(requests.read(size), password=None)
            assert isinstance(loaded, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey)
            keys.append(loaded)
            continue
        number, digest = requests.read(1)[0], requests.read(DIGEST_SIZE)
        try:
            answers.write(answer(SIGNED, sign_digest(keys[number], digest)))
        except Exception as error:  # told to the service, which signs in its own process
            answers.write(answer(FAILED, str(error).encode()[:1000]))
        answers.flush()


if __name__ == "__main__":
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except Exception:
        # A key it cannot read, or the service gone: the service signs by itself from now on
        # and says so in its log.
        sys.exit(1)
