"""The headers that every message of one campaign shares beyond sender and subject: where
replies go (``Reply-To``) and which stream a complaint belongs to (Gmail's ``Feedback-ID``).

A campaign is one digest, or the stream of confirmation emails. Gmail's feedback loop counts
"report spam" presses per field of ``Feedback-ID: a:b:c:SenderId``, reading from the right:
the sender identifier (5 to 15 characters, the same on all our mail), then the organisation,
then the campaign. It trusts the header only under a DKIM signature of the sender's domain,
which covers it (``mail.dkim``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from newsletter.mail.dkim import Signer
from newsletter.mail.wire import AlternativeTemplate
from newsletter.site import Site

__all__ = ["CONFIRMATION", "campaign_template", "digest_campaign", "feedback_id"]

CONFIRMATION = "confirmation"
# Gmail's limits for the right-most field.
SENDER_ID_LENGTH = range(5, 16)
SLUG_LENGTH = 40
# A field may hold nothing that starts another (":") or needs encoding.
NOT_SLUG = re.compile(r"[^a-z0-9]+")


def digest_campaign(digest_id: int) -> str:
    """The campaign field of digest ``digest_id``'s messages (and of staff's test sends)."""
    return f"digest-{digest_id}"


def _slug(text: str, fallback: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = NOT_SLUG.sub("-", ascii_text.lower()).strip("-")[:SLUG_LENGTH].strip("-")
    return slug or fallback


def _sender_id(site: Site) -> str:
    """The sender's domain in ASCII, or, when Gmail would not take it as it is, a stable
    12-character digest of it."""
    domain = site.sender_domain_ascii
    if len(domain) in SENDER_ID_LENGTH:
        return domain
    return hashlib.sha256(domain.encode("ascii")).hexdigest()[:12]


def feedback_id(site: Site, campaign: str) -> str:
    """``Feedback-ID`` for one campaign of this site's mail."""
    organisation = _slug(site.organisation, "newsletter")
    return f"{campaign}:{organisation}:{_sender_id(site)}"


def campaign_template(
    site: Site, subject: str, campaign: str, signer: Signer | None
) -> AlternativeTemplate:
    """The part of a campaign's messages that is the same for everyone, headers included."""
    return AlternativeTemplate(
        site.sender,
        subject,
        headers={"Feedback-ID": feedback_id(site, campaign)},
        signer=signer,
        reply_to=site.reply_to,
    )
