"""What a question asks for, read from its words, and which sentences could hold it."""

from __future__ import annotations

import pytest

from rag.answer.answerability import can_answer, wanted


@pytest.mark.parametrize("question, kind", [
    ("How many dollars did right-sizing save?", "quantity"),
    ("which version did they end up running?", "version"),
    ("What API versioning approach did the team settle on?", None),
    ("what was the header called?", "name"),
    ("what's the name of the engineer who built it?", "name"),
    ("Which tool stopped the database from hitting its connection limit?", "name"),
    ("who led it?", "person"),
    ("What did the team who built it learn?", None),  # "who" in a clause asks for no one
    ("Who built the portal and how long did it take?", "quantity"),  # the number is the stricter need
])
def test_the_kind_asked_for_is_read_from_the_question(question, kind):
    assert wanted(question) == kind


@pytest.mark.parametrize("kind, question, sentence, holds", [
    ("version", "which version did they run?", "Our API versioning strategy evolved through three iterations.",
     False),
    ("version", "which version did they run?", "We upgraded to PgBouncer 1.21 last spring.", True),
    ("version", "which version of Windows shipped it?", "It first shipped with Windows Vista.", True),
    ("name", "what was the header called?", "Header-based versioning was too invisible.", False),
    ("name", "what was the header called?", "Clients send an X-Api-Version header.", True),
    ("name", "what's the name of the engineer who built it?", "It took one engineer three sprints to build.",
     False),
    ("person", "who led it?", "We started with internal dogfooding.", False),
    ("person", "who led it?", "The rollout was phased over three months.", False),
    ("person", "who led it?", "The platform team led the rollout.", True),
    ("person", "who produced the album?", "Kanye West produced most of it.", True),
    ("person", "who produced the album?", "Rick Rubin produced it in 1986.", True),
    ("person", "Who built the internal developer portal?", "We built a developer portal with runbook links.",
     False),  # the question's own "developer" is no one
    ("person", "Who built the internal developer portal?", "It took one engineer three sprints to build.", True),
    (None, "what went wrong?", "anything at all", True),
])
def test_a_sentence_without_what_is_asked_for_cannot_answer(kind, question, sentence, holds):
    assert can_answer(kind, sentence, question) is holds
