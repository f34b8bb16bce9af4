"""Domain errors raised by services and turned into pages or CLI messages by their callers."""

from __future__ import annotations

__all__ = ["LinkNoLongerValid", "NotFound", "ServiceError"]


class ServiceError(Exception):
    """Base of the errors a service raises on purpose."""


class NotFound(ServiceError, LookupError):
    """The thing asked for does not exist."""


class LinkNoLongerValid(ServiceError, ValueError):
    """A genuine link whose subscriber is gone or whose purpose has passed."""
