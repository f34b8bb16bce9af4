"""Rendering email templates in a sandbox, with CSS inlined for mail clients.

Names and article text are data: the sandbox and autoescaping keep ``{{ config }}`` typed into
a form or a feed from ever being evaluated, and templates see only what they are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment

from newsletter.resources import resource_path

__all__ = ["EmailRenderer", "RenderedEmail"]


@dataclass(frozen=True)
class RenderedEmail:
    text: str
    html: str


class EmailRenderer:
    """Renders ``NAME.txt`` and ``NAME.html`` from ``templates/email/``."""

    def __init__(self, folder: Path | None = None) -> None:
        self.env = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(folder or resource_path("templates") / "email"),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        # Media queries (dark mode, narrow screens) cannot be inlined, so the style tag stays.
        self._inliner = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False)

    def render(self, name: str, context: dict[str, Any]) -> RenderedEmail:
        text = self.env.get_template(f"{name}.txt").render(context)
        html = self.env.get_template(f"{name}.html").render(context)
        return RenderedEmail(text=text.strip() + "\n", html=self.inline(html))

    def inline(self, html: str) -> str:
        return str(self._inliner.inline(html))
