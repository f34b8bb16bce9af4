"""One rule for control characters: refused in form fields, spaces in headers, dropped from
stored request headers."""

from __future__ import annotations

from email.header import decode_header, make_header

import pytest

from newsletter.controls import has_controls, is_control, replace_controls
from newsletter.mail.headers import address_field, one_line, unstructured
from newsletter.validation import InvalidValue, clean_email, clean_name

# CR, LF, NUL, tab, DEL, NEL (a C1 control), the Unicode line and paragraph separators, and
# a lone surrogate (which cannot be written as UTF-8).
CONTROLS = ["\r", "\n", "\0", "\t", "\x7f", "\x85", "\u2028", "\u2029", "\ud800"]
# A zero-width non-joiner (Persian names), a zero-width joiner (emoji), a right-to-left mark,
# a no-break space and an ordinary accented letter: text, not controls.
TEXT = ["\u200c", "\u200d", "\u200f", "\u00a0", "é"]


@pytest.mark.parametrize("char", CONTROLS)
def test_controls_are_controls(char: str) -> None:
    assert is_control(char)
    assert has_controls(f"Ada{char}Lovelace")
    assert replace_controls(f"Ada{char}Lovelace") == "AdaLovelace"
    assert replace_controls(f"Ada{char}Lovelace", " ") == "Ada Lovelace"


@pytest.mark.parametrize("char", TEXT)
def test_text_is_not(char: str) -> None:
    assert not is_control(char)
    assert not has_controls(f"Ada{char}Lovelace")
    assert replace_controls(f"Ada{char}Lovelace") == f"Ada{char}Lovelace"


@pytest.mark.parametrize("char", CONTROLS)
def test_form_fields_refuse_them(char: str) -> None:
    with pytest.raises(InvalidValue, match="not allowed"):
        clean_name(f"Ada{char}Lovelace", "First name")
    with pytest.raises(InvalidValue, match="not allowed"):
        clean_email(f"ada{char}@example.org")


def test_form_fields_keep_joiners_that_names_need() -> None:
    assert clean_name("Mohammad\u200cReza", "First name") == "Mohammad\u200cReza"


@pytest.mark.parametrize("char", CONTROLS)
def test_header_fields_turn_them_into_spaces(char: str) -> None:
    assert one_line(f"Ada{char}Lovelace") == "Ada Lovelace"
    field = address_field(f"Ada{char}Lovelace", "ada@example.org")
    assert field == "Ada Lovelace <ada@example.org>"
    # Every header field can be written out: no surrogate survives to fail the encoding.
    unstructured(f"Résumé{char}of the week").encode("ascii")


def test_header_fields_keep_joiners_that_names_need() -> None:
    field = address_field("Mohammad\u200cReza", "m@example.org")
    phrase = field.rsplit(" <", 1)[0]
    assert str(make_header(decode_header(phrase))) == "Mohammad\u200cReza"
