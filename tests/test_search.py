"""Search on the shipped case studies: paraphrased questions find the right posts in the top 5."""

from __future__ import annotations

import pytest
from conftest import SHIPPED_CORPUS  # noqa: F401  (the shipped fixture indexes it)

RESILIENT = "Building Resilient Systems with Desktop App Frameworks and Remix"
ANGULAR = "From Monolithic Apps to Angular: A Authentication Systems Journey"
CQRS = "Your First 3 Days with CQRS Patterns: A Survival Guide"
PROMPT = "Your First 14 Days with Prompt Engineering: A Survival Guide"
AGENTS = "Revisiting AI Agent Orchestration After 5 Month in Production"

# Paraphrased on purpose: none of these copies the wording of the passage it should find.
PARAPHRASES = [
    ("Which cheap, unexciting changes reduced the cloud bill?", {RESILIENT, CQRS, PROMPT, AGENTS}),
    ("Why did the database fall over when traffic surged?", {CQRS, AGENTS}),
    ("How did several engineers coding together at one screen affect bugs?", {RESILIENT, AGENTS}),
    ("What made logs machine-readable and improved alerting?", {RESILIENT, CQRS}),
    ("How do they make sure a postmortem leads to real follow-up?", {RESILIENT, CQRS}),
    ("How was shipping code separated from turning a feature on for users?", {ANGULAR}),
    ("How was the new release gradually exposed to more production users?", {ANGULAR}),
    ("Did they build their own monitoring or purchase a product?", {CQRS, AGENTS}),
    ("How are failures classified so customers get useful messages?", {CQRS}),
    ("How much faster did builds get after pruning third-party packages?", {CQRS}),
    ("How much notice do API clients get before a breaking change?", {PROMPT}),
    ("How did making checkout usable with screen readers change conversions?", {PROMPT}),
    ("What testing between services prevented integration breakages?", {PROMPT}),
    ("How did they classify shortcuts in the codebase versus deliberate trade-offs?", {PROMPT, AGENTS}),
    ("Where do engineers look first when an outage begins?", {AGENTS}),
    ("Which decision caused the most arguments between teams about login tokens?", {AGENTS}),
    ("Why did load tests in the pre-production environment mislead them?", {RESILIENT, PROMPT}),
]


@pytest.mark.parametrize("question, expected", PARAPHRASES, ids=[q[:40] for q, _ in PARAPHRASES])
def test_paraphrased_question_finds_every_post_that_says_it(shipped, question, expected):
    top = shipped.search(question, k=5).hits
    assert expected in [set(h.passage.titles) for h in top], [h.passage.text[:60] for h in top]


def test_results_are_ranked_unique_and_scored(shipped):
    hits = shipped.search("engineering lessons", k=25).hits
    assert len(hits) == 25  # every unique passage, each once
    assert len({h.passage.id for h in hits}) == 25
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)


def test_k_larger_than_the_index_returns_what_there_is(shipped):
    assert len(shipped.search("costs", k=100).hits) == 25
