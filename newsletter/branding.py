"""The organisation's look on our pages and in the signup box: its colour, logo and privacy
notice, checked once at start-up."""

from __future__ import annotations

import re

from newsletter.origins import origin_of

__all__ = ["MIN_CONTRAST", "contrast_with_white", "parse_colour", "parse_web_address"]

# WCAG 2's contrast for normal text: the colour is the background of white button labels.
MIN_CONTRAST = 4.5
_HEX_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def parse_colour(text: str) -> str:
    """``#rgb`` or ``#rrggbb``, as ``#rrggbb`` in lower case, dark enough to carry white text.

    Only hex colours are taken: the value goes into a stylesheet, where anything freer could
    carry more than a colour.
    """
    value = text.strip()
    if not _HEX_COLOUR.fullmatch(value):
        raise ValueError(f"expected a colour such as #0b5cad, got {text!r}")
    digits = value[1:].lower()
    if len(digits) == 3:
        digits = "".join(digit * 2 for digit in digits)
    colour = f"#{digits}"
    contrast = contrast_with_white(colour)
    if contrast < MIN_CONTRAST:
        message = (
            f"{colour} is too light for the white text on buttons (contrast {contrast:.1f}:1, "
            f"at least {MIN_CONTRAST}:1 is needed); choose a darker shade"
        )
        raise ValueError(message)
    return colour


def contrast_with_white(colour: str) -> float:
    """WCAG 2 contrast ratio of ``#rrggbb`` against white."""

    def channel(hex_pair: str) -> float:
        value = int(hex_pair, 16) / 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(colour[index : index + 2]) for index in (1, 3, 5))
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    return 1.05 / (luminance + 0.05)


def parse_web_address(text: str) -> str:
    """An absolute http(s) address, or empty for none."""
    value = text.strip()
    if value and (origin_of(value) is None or any(char in value for char in "\"'<>\\")):
        raise ValueError(f"expected an address starting with https://, got {text!r}")
    return value
