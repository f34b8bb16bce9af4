"""Reading pages as a browser would: inputs with their attributes, and elements by id."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

__all__ = ["Page", "parse_page"]

VOID = {"input", "meta", "link", "br", "img", "hr"}


@dataclass
class Page:
    inputs: dict[str, dict[str, str | None]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    roles: dict[str, list[str]] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    event_handlers: list[str] = field(default_factory=list)

    def value(self, name: str) -> str | None:
        return self.inputs[name].get("value")

    def checked(self, name: str) -> bool:
        return "checked" in self.inputs[name]


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._open: list[tuple[str, str | None, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.page.tags.append(tag)
        self.page.event_handlers += [name for name in attributes if name.startswith("on")]
        if tag == "input" and attributes.get("name"):
            self.page.inputs[str(attributes["name"])] = attributes
        if tag not in VOID:
            self._open.append((tag, attributes.get("id"), attributes.get("role")))
            for _tag, element_id, _role in self._open:
                if element_id is not None:
                    self.page.texts.setdefault(element_id, "")
            role = attributes.get("role")
            if role:
                self.page.roles.setdefault(role, []).append("")

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _tag, element_id, role in self._open:
            if element_id is not None:
                self.page.texts[element_id] += data
            if role is not None:
                self.page.roles[role][-1] += data


def parse_page(html: str) -> Page:
    """The page's inputs (by name), the text of each element with an id, and of each role."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    for key, text in reader.page.texts.items():
        reader.page.texts[key] = " ".join(text.split())
    for role, texts in reader.page.roles.items():
        reader.page.roles[role] = [" ".join(text.split()) for text in texts]
    return reader.page
