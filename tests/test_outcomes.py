"""One outcome vocabulary: the README's words are the samples' words, and old words read as new ones."""

from __future__ import annotations

import re
from pathlib import Path

from loadbench import outcomes
from loadbench.metrics.sample import OUTCOMES, Sample

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_names_every_outcome_a_sample_can_have() -> None:
    text = README.read_text()
    start = text.index("counted by outcome:")
    words = re.sub(r"\([^()]*\)", "", text[start:text.index(". A ramp-down", start)])  # not the explanations
    listed = re.findall(r"`([a-z_]+)`", words)
    assert ["ok", *listed] == list(OUTCOMES) == list(outcomes.SAMPLE_OUTCOMES)


def test_old_words_read_as_todays() -> None:
    assert outcomes.canonical("connect_error") == outcomes.CONNECTION_ERROR == "connection_error"
    assert outcomes.canonical("stream_break") == outcomes.STREAM_CUT == "stream_cut"
    assert outcomes.canonical("http_error") == "http_error"
    assert outcomes.canonical("client_gone") == "client_gone"  # a word of the log, not an old one
    assert outcomes.is_failure("stream_break") and not outcomes.is_failure("ok")
    assert not outcomes.is_failure("dropped")  # the generator's own word, never the target's failure


def test_an_old_sample_line_reads_with_todays_word() -> None:
    old = {"seq": 1, "worker": "w", "type": "default", "target": "t", "phase": "measure",
           "intended_unix_ns": 5, "outcome": "stream_break", "status": 200}
    assert Sample.from_dict(old).outcome == "stream_cut"
    assert Sample.from_dict({**old, "outcome": "timeout"}).outcome == "timeout"


def test_the_tree_in_the_docstring_lists_every_word() -> None:
    doc = outcomes.__doc__ or ""
    words = {v for k, v in vars(outcomes).items() if k.isupper() and isinstance(v, str)}
    assert words and all(re.search(rf"── {w}\b|^    {w}\b", doc, re.M) for w in words)
