"""``/embed.js``, the signup box's optional script, and the address that names its version.

The organisation pastes the box once; the script's address carries a hash of its content, so
browsers may keep it for a year and still get a new version as soon as the box is printed
again (an old address gets the current script, kept only briefly).
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

__all__ = ["script", "script_url"]

SCRIPT = Path(__file__).resolve().parent / "static" / "embed.js"


@cache
def script() -> tuple[bytes, str]:
    """The script's content and its version (the start of its SHA-256)."""
    body = SCRIPT.read_bytes()
    return body, hashlib.sha256(body).hexdigest()[:12]


def script_url(base_url: str) -> str:
    return f"{base_url}/embed.js?v={script()[1]}"
