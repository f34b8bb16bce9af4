"""The styles of signup box, as consent proof records them.

The signup form reaches people in four ways: our own page, and three boxes on the
organisation's own article pages that ``newsletter embed`` prints.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["BoxStyle"]


class BoxStyle(StrEnum):
    PAGE = "page"  # our own signup page, /subscribe
    HTML = "html"  # the plain form pasted into the site's pages
    SCRIPT = "script"  # the same form, sent in place by /embed.js
    IFRAME = "iframe"  # /embed in a frame on the site's pages
