"""Per-person links and the list headers every message to a subscriber carries."""

from __future__ import annotations

from newsletter.people import Person
from newsletter.site import Site
from newsletter.tokens import Purpose, TokenData

__all__ = ["confirm_url", "list_headers", "preferences_url", "unsubscribe_url"]


def unsubscribe_url(site: Site, person: Person) -> str:
    token = site.tokens.make(Purpose.UNSUBSCRIBE, TokenData(person.id, person.token_nonce))
    return site.url(f"/unsubscribe/{token}")


def preferences_url(site: Site, person: Person) -> str:
    """The person's preference centre: their topics, their name, leaving, their data."""
    token = site.tokens.make(Purpose.PREFERENCES, TokenData(person.id, person.token_nonce))
    return site.url(f"/preferences/{token}")


def confirm_url(site: Site, person: Person, consent_event_id: int) -> str:
    data = TokenData(person.id, person.token_nonce, consent_event_id)
    return site.url(f"/confirm/{site.tokens.make(Purpose.CONFIRM, data)}")


def list_headers(site: Site, unsubscribe: str) -> dict[str, str]:
    """RFC 2369 / RFC 8058 headers: one-click unsubscribe as Gmail and Yahoo require."""
    return {
        "List-Unsubscribe": f"<{unsubscribe}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": site.list_id,
    }
