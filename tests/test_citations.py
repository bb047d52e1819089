"""Citation checking on hostile drafts (pure functions, no model)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rag.answer.citations import find_markers, parse_marker, support
from rag.answer.verify import AnswerChecker, OverlapVerifier


def check(draft: str, passages: list[str], min_support: float) -> SimpleNamespace:
    """A whole draft through the sentence-by-sentence checker, with the word-overlap judge."""
    checker = AnswerChecker(OverlapVerifier(min_support), passages)
    checker.feed(draft)
    checker.finish()
    return SimpleNamespace(text=checker.text, cited=checker.cited, unsupported=[c.text for c in checker.removed])

PASSAGES = [
    "Database connection pooling was our biggest blind spot. A simple PgBouncer setup eliminated the issue.",
    "Structured logging moved free-text log lines to JSON with consistent field names. "
    "The migration took one engineer two weeks.",
    "Feature flags decoupled deployment from release.",
]


@pytest.mark.parametrize("marker, numbers", [
    ("[1]", [1]), ("[1, 3]", [1, 3]), ("[1-2]", [1, 2]), ("[2–3]", [2, 3]),
    ("[0]", []), ("[999]", []), ("[1-999]", [1, 2, 3]), ("[3-1]", []), ("[1-99999999999]", [1, 2, 3]),
])
def test_parse_marker(marker, numbers):
    assert parse_marker(marker, 3) == numbers


def test_markers_in_code_are_not_citations():
    text = "Use `items[0]` here [1].\n```\nx = a[2]\n```\nDone [2]."
    assert [m.group(0) for m in find_markers(text)] == ["[1]", "[2]"]


def test_supported_sentences_keep_markers_renumbered_by_first_use():
    checked = check("Structured logging moved log lines to JSON [2]. PgBouncer fixed connection pooling [1]. "
                    "The logging migration took two weeks [2].", PASSAGES, 0.5)
    assert checked.text == ("Structured logging moved log lines to JSON [1]. PgBouncer fixed connection pooling [2]. "
                            "The logging migration took two weeks [1].")
    assert checked.cited == [1, 0] and checked.unsupported == []


@pytest.mark.parametrize("bad", ["[0]", "[999]", "[1-999]"])
def test_markers_pointing_nowhere_are_dropped(bad):
    checked = check(f"PgBouncer fixed connection pooling {bad}.", PASSAGES, 0.5)
    assert checked.text == "PgBouncer fixed connection pooling [1]."
    assert checked.cited == [0]


def test_marker_on_an_unsupported_sentence_is_dropped_with_the_sentence():
    checked = check("PgBouncer fixed connection pooling [1]. The company was founded on Mars in 1850 [1].",
                    PASSAGES, 0.5)
    assert checked.text == "PgBouncer fixed connection pooling [1]."
    assert checked.unsupported == ["The company was founded on Mars in 1850."]


def test_wrong_marker_is_moved_to_the_passage_that_says_it():
    checked = check("Feature flags decoupled deployment from release [1].", PASSAGES, 0.5)
    assert checked.text == "Feature flags decoupled deployment from release [1]." and checked.cited == [2]


def test_no_markers_at_all():
    checked = check("Feature flags decoupled deployment from release. Mars colonies use COBOL.", PASSAGES, 0.5)
    assert checked.text == "Feature flags decoupled deployment from release [1]."
    assert checked.unsupported == ["Mars colonies use COBOL."]


def test_marker_opening_the_next_sentence_belongs_to_the_one_before():
    checked = check("Feature flags decoupled deployment from release. [3] PgBouncer fixed pooling. [1]", PASSAGES, 0.5)
    assert checked.text == "Feature flags decoupled deployment from release [1]. PgBouncer fixed pooling [2]."


def test_empty_and_marker_only_drafts_cite_nothing():
    assert check("", PASSAGES, 0.5).cited == []
    assert check("[1] [2]", PASSAGES, 0.5).cited == []


def test_support_is_the_share_of_content_words():
    assert support("PgBouncer eliminated the issue", PASSAGES[0]) == 1.0
    assert support("Kubernetes eliminated the issue", PASSAGES[0]) == pytest.approx(2 / 3)
    assert support("optimizing", "optimization") == 1.0
