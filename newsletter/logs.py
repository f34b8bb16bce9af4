"""Log set-up and how people are named in logs: by id, with the address only when asked."""

from __future__ import annotations

import logging
import sys

from flask import Flask

__all__ = ["init_app", "person"]

LOGGER = "newsletter"


def init_app(app: Flask) -> None:
    """One handler on the ``newsletter`` logger (once per process, however many apps)."""
    logger = logging.getLogger(LOGGER)
    logger.setLevel(app.config["LOG_LEVEL"])
    if not any(getattr(handler, "_newsletter", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._newsletter = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def person(subscriber_id: int | None, email: str, include_address: bool) -> str:
    """``subscriber 42``, or with ``NEWSLETTER_LOG_ADDRESSES`` on ``subscriber 42 <a@b.org>``."""
    name = f"subscriber {subscriber_id}" if subscriber_id is not None else "a subscriber"
    return f"{name} <{email}>" if include_address else name
