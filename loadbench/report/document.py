"""A report as a list of blocks, rendered by one small exporter per format (Markdown, HTML).

The run report, the eval scorecard and the A/B report are all Documents. Text may carry two inline
marks, written as in Markdown: ``**strong**`` and ```code```; the Markdown exporter keeps them, the
HTML exporter turns them into ``<strong>`` and ``<code>`` (after escaping everything else).
``Svg`` and ``Png`` are pictures held in memory: the HTML page embeds them, the Markdown report,
which can only link files, leaves them out.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True, slots=True)
class Para:
    text: str


@dataclass(frozen=True, slots=True)
class Bullet:
    """A bullet with sub-bullets under it."""

    text: str
    children: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Bullets:
    items: Sequence[str | Bullet]


@dataclass(frozen=True, slots=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]


@dataclass(frozen=True, slots=True)
class Image:
    path: Path  # absolute; Markdown links it relative to the report, HTML embeds it
    alt: str


@dataclass(frozen=True, slots=True)
class Svg:
    markup: str  # a whole <svg> element, built by the report's own code (never from input text)
    alt: str


@dataclass(frozen=True, slots=True)
class Png:
    data: bytes
    alt: str


Block = Heading | Para | Bullets | Table | Image | Svg | Png


@dataclass(slots=True)
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)
    wide: bool = False  # a page of many-column tables (the scorecard): 1400 px wide, tighter cells

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(_md_cell(h) for h in headers) + " |",
           "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def to_markdown(doc: Document, base_dir: Path) -> str:
    parts = [f"# {doc.title}"]
    for b in doc.blocks:
        if isinstance(b, Heading):
            parts.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            parts.append(b.text)
        elif isinstance(b, Bullets):
            parts.append("\n".join(_md_bullet(item) for item in b.items))
        elif isinstance(b, Table):
            parts.append(markdown_table(b.headers, b.rows))
        elif isinstance(b, Image):
            parts.append(f"![{b.alt}]({b.path.relative_to(base_dir).as_posix()})")
    return "\n\n".join(parts) + "\n"


def _md_bullet(item: str | Bullet) -> str:
    if isinstance(item, str):
        return f"- {item}"
    return "\n".join([f"- {item.text}", *(f"  - {c}" for c in item.children)])


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #ddd;padding-bottom:.3em}h2{margin-top:1.8em;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.3em .7em;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child,.text{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
code{background:#f5f5f5;padding:0 .2em}
"""
_WIDE = "body{max-width:1400px}table{font-size:.88em}th,td{padding:.25em .5em}\n"


def _inline(text: str) -> str:
    """Escaped text with its ``**strong**`` and ```code``` marks as HTML."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


_NUMBER = re.compile(r"^[*`]*[-+−]?[\d.]")  # marks (**, `) aside
_NO_VALUE = ("", "–", "-", "n/a")


def _text_column(cells: Sequence[str]) -> bool:
    """A column of words, not figures: it reads left-aligned (figures line up on the right)."""
    return any(c not in _NO_VALUE and not _NUMBER.match(c) for c in cells)


def _html_bullet(item: str | Bullet) -> str:
    if isinstance(item, str):
        return f"<li>{_inline(item)}</li>"
    children = "".join(f"<li>{_inline(c)}</li>" for c in item.children)
    return f"<li>{_inline(item.text)}" + (f"<ul>{children}</ul>" if children else "") + "</li>"


def _figure(alt: str, picture: str) -> str:
    return f"<figure>{picture}<figcaption>{html.escape(alt)}</figcaption></figure>"


def _png(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return _figure(alt, f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">')


def to_html(doc: Document) -> str:
    """One self-contained page: inline CSS, plots embedded as base64 PNG, no external references."""
    e = html.escape
    t = _inline
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{e(doc.title)}</title><style>{_CSS}{_WIDE if doc.wide else ''}</style></head><body>",
             f"<h1>{e(doc.title)}</h1>"]
    for b in doc.blocks:
        if isinstance(b, Heading):
            level = min(6, b.level)
            parts.append(f"<h{level}>{t(b.text)}</h{level}>")
        elif isinstance(b, Para):
            parts.append(f"<p>{t(b.text)}</p>")
        elif isinstance(b, Bullets):
            parts.append("<ul>" + "".join(_html_bullet(i) for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            cls = [' class="text"' if i and _text_column([row[i] for row in b.rows]) else ""
                   for i in range(len(b.headers))]
            head = "".join(f"<th{c}>{t(h)}</th>" for c, h in zip(cls, b.headers, strict=True))
            body = "".join("<tr>" + "".join(f"<td{c}>{t(v)}</td>" for c, v in zip(cls, row, strict=True)) + "</tr>"
                           for row in b.rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(b, Image):
            parts.append(_png(b.path.read_bytes(), b.alt))
        elif isinstance(b, Png):
            parts.append(_png(b.data, b.alt))
        else:
            parts.append(_figure(b.alt, b.markup))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
