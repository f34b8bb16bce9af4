"""Where the shipped folders (templates, migrations) are, in a wheel or in a source checkout."""

from __future__ import annotations

from pathlib import Path

__all__ = ["resource_path"]

PACKAGE = Path(__file__).resolve().parent


def resource_path(name: str) -> Path:
    """``templates`` or ``migrations``: inside the package when installed from a wheel,
    beside it in a source checkout or editable install."""
    for candidate in (PACKAGE / name, PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the {name}/ folder is missing from the installation")
