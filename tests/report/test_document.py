"""The Document exporters: inline marks, nested bullets, pictures held in memory, text columns."""

from __future__ import annotations

from pathlib import Path

from loadbench.report.document import Bullet, Bullets, Document, Para, Png, Svg, Table, to_html, to_markdown

PNG = b"\x89PNG\r\n\x1a\nnot really"


def _doc() -> Document:
    return Document("R <1>", [Para("**ACCEPT** for `a|b` & <c>"), Bullets(["one", Bullet("two", ["2a", "2b"])]),
                              Svg('<svg width="1"></svg>', "a chart"), Png(PNG, "a plot"),
                              Table(["name", "rule", "n", "p"], [["x", "a < b", "1", "–"], ["y", "c", "-2.5", "n/a"]])])


def test_markdown_keeps_the_marks_nests_bullets_and_leaves_in_memory_pictures_out() -> None:
    md = to_markdown(_doc(), Path("."))
    assert md.startswith("# R <1>\n\n**ACCEPT** for `a|b` & <c>\n\n- one\n- two\n  - 2a\n  - 2b\n\n| name |")
    assert "svg" not in md and "a plot" not in md and "| y | c | -2.5 | n/a |" in md


def test_html_turns_marks_into_tags_after_escaping_and_embeds_pictures() -> None:
    page = to_html(_doc())
    assert "<p><strong>ACCEPT</strong> for <code>a|b</code> &amp; &lt;c&gt;</p>" in page
    assert "<li>two<ul><li>2a</li><li>2b</li></ul></li>" in page
    assert '<figure><svg width="1"></svg><figcaption>a chart</figcaption></figure>' in page
    assert page.count("data:image/png;base64,") == 1 and "<title>R &lt;1&gt;</title>" in page
    # a column of words reads left-aligned; figures (and their no-value marks) stay right-aligned
    assert '<th>name</th><th class="text">rule</th><th>n</th><th>p</th>' in page
    assert "max-width:1400px" not in page and "max-width:1400px" in to_html(Document("w", wide=True))
