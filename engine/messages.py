"""Messages from Jinja templates: ``templates/messages/NAME.txt``, each with a ``subject`` and a
``body`` block, written as plain text in plain English.

The plain text is the message: GOV.UK Notify takes it as the body of a generic template, SMTP
sends it with an HTML part made from it here (paragraphs, bullet lists, nothing clever), and a
letter for printing is the same text on a page with the council's heading.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, select_autoescape

from .errors import ConfigError


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str


def long_date(day: date | str | None) -> str:
    """``Friday 13 March 2026``, the way GOV.UK writes dates (a step's inputs hold ISO text)."""
    if day is None or day == "":
        return ""
    if isinstance(day, str):
        day = date.fromisoformat(day)
    return f"{day:%A} {day.day} {day:%B %Y}"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


class Messages:
    def __init__(self, templates_dir: Path, council: str, portal_url: str | None = None):
        """``portal_url``: where a family signs in to the online service; every template sees it as
        ``portal_url`` (None when there is no online service), so a family's message can point there."""
        folder = templates_dir / "messages"
        self.folder = folder
        self.council = council
        self.portal_url = portal_url
        self._env = Environment(
            loader=FileSystemLoader(str(folder)),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self._env.filters["long_date"] = long_date
        self._env.filters["plural"] = plural
        self._env.globals["portal_url"] = portal_url

    def exists(self, template: str) -> bool:
        return (self.folder / f"{template}.txt").is_file()

    def render(self, template: str, context: dict[str, Any]) -> Rendered:
        try:
            tpl = self._env.get_template(f"{template}.txt")
        except TemplateNotFound:
            raise ConfigError(f"no message template {self.folder / (template + '.txt')}") from None
        ctx = tpl.new_context({"council": self.council, **context})
        # Rendering the whole template once fills ctx.blocks with each block's stack over the
        # template's parents ("extends"); [0] is the most derived.
        for _ in tpl.root_render_func(ctx):
            pass
        if "subject" not in ctx.blocks or "body" not in ctx.blocks:
            raise ConfigError(f"{self.folder / (template + '.txt')}: a message needs a 'subject' and a 'body' block")
        subject = " ".join("".join(ctx.blocks["subject"][0](ctx)).split())
        body = "".join(ctx.blocks["body"][0](ctx))
        return Rendered(subject, _tidy(body))

    def html(self, rendered: Rendered) -> str:
        """The HTML part of an email: the same words, as paragraphs and lists."""
        return _page(rendered.subject, _paragraphs(rendered.text), self.council, letter=False)

    def letter(self, rendered: Rendered, to_name: str | None, on: date, address: str | None = None) -> str:
        """A printable letter (A4), for a contact written to by post: their name and address, the date."""
        lines = [to_name or "", *(address or "").splitlines()]
        to = "<br>".join(html.escape(line.strip()) for line in lines if line.strip())
        head = f'<p class="to">{to}</p><p class="date">{html.escape(long_date(on))}</p>'
        return _page(rendered.subject, head + _paragraphs(rendered.text), self.council, letter=True)


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


def _paragraphs(text: str) -> str:
    out: list[str] = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        if lines and all(line.startswith("- ") for line in lines):
            items = "".join(f"<li>{html.escape(line[2:])}</li>" for line in lines)
            out.append(f"<ul>{items}</ul>")
        else:
            out.append("<p>" + "<br>".join(html.escape(line) for line in lines) + "</p>")
    return "\n".join(out)


def _page(title: str, body: str, council: str, *, letter: bool) -> str:
    size = "@page { size: A4; margin: 2.5cm 2cm; }" if letter else ""
    return (
        '<!DOCTYPE html>\n<html lang="en-GB"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        f"<style>{size} body {{ font-family: Arial, 'Helvetica Neue', sans-serif; font-size: 12pt; "
        "line-height: 1.5; color: #0b0c0c; max-width: 40em; } h1 { font-size: 16pt; } "
        ".council { font-weight: bold; }</style></head><body>"
        f'<p class="council">{html.escape(council)}</p><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n'
    )
