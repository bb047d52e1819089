"""Near misses: an answer may only quote passages that speak of what the question names."""

from __future__ import annotations

import pytest
from conftest import loaded

from rag import Assistant
from rag.answer.grounding import NameMatcher, compound_names, question_names, sparable

OFFICES = {
    "berlin.md": "# Berlin Office Guide\n\n## Desks\n\nThe Berlin office has 60 desks for about 85 people, "
                 "so desks are booked in Robin the day before.\n",
    "toronto.md": "# Toronto Office Guide\n\n## Parking\n\nStaff who drive can use the Impark garage on "
                  "Pearl Street; parking is reimbursed up to 150 CAD per month.\n",
    "database.md": "# Database Runbook\n\n## Pooling\n\nThe billing service reaches PostgreSQL through "
                   "PgBouncer with default_pool_size set to 40 and a pull request for every change.\n",
    "notifications.md": "# Notifications Runbook\n\n## Overview\n\nnotifications-worker sends email through "
                        "Postmark and runs with worker_concurrency=16 per pod.\n",
}


@pytest.mark.parametrize(("question", "names"), [
    ("Which Redis eviction policy does the auth gateway's session cache use?", ["Redis"]),
    ("What default_pool_size does the worker use, and what is its p95?", ["default_pool_size", "p95"]),
    ("How often do the iPhone and Android apps ship?", ["iPhone", "Android"]),
    ("If we force SSO, what if the IdP goes down?", ["SSO", "IdP"]),
    # Sentence starts, quoted headings, 14-day, 5xx and plain numbers are not names.
    ("What does the 'Unexpected Wins' section of the 14-day guide say? Is it OK that 5xx errors in 2023 go?", []),
    ('"Would a man smell a rose then throw it away?', []),
    # A paper's title asked as a question: capitals mark every word there, acronyms still name things.
    ("MR Diagnosis of Bone Metastases at 3 T: Can STIR Imaging Be Omitted?", ["MR", "STIR"]),
    ("Does Hospital Type Affect Cost and Outcomes of Pediatric Tonsillectomy?", []),
    ("How many desks does the London Office of Acme Corporation have?", ["London", "Office", "Acme", "Corporation"]),
])
def test_question_names(question, names):
    assert question_names(question) == names


def test_words_the_passages_write_as_one_identifier_are_a_name():
    contexts = ["notifications-worker sends email", "The auth_gateway issues tokens"]
    assert compound_names("Does the notifications worker or the auth gateway retry?", contexts) == [
        "notifications-worker", "auth_gateway"]


@pytest.fixture(scope="module")
def matcher(shipped_index):
    from rag import Settings

    return NameMatcher(loaded(Assistant(Settings(index_dir=shipped_index)))[1])


def test_a_name_is_grounded_by_its_spelling_a_longer_form_an_acronym_or_a_synonym(matcher):
    context = "Larger changes go through a pull request. PostgreSQL backs the iOS app in Canada."
    assert matcher.missing(["PR", "Postgres", "postgresql", "iPhone", "Canadian"], context) == []
    assert matcher.missing(["T-cell", "B-cell"], "Mice without T cells learned slower; a cell of B type.") == [
        "B-cell"]


def test_a_long_name_misspelled_by_one_letter_is_grounded_a_short_one_or_a_common_word_is_not(matcher):
    context = ("Talks for the Premier League rights began in 1991; Labor holds Bendigo; GSP per capita ranks "
               "fourth. The stack runs on Zambia's servers.")
    assert matcher.missing(["Primier", "Bedigo", "Bendgio", "GPS", "Slack", "Gambia"], context) == [
        "GPS", "Slack", "Gambia"]


@pytest.mark.parametrize(("question", "spared"), [
    ("Who did Denver beat in the 2015 AFC Championship game?", {"Denver"}),
    ("Which TV network broadcasted Super Bowl 50 in Spanish?", {"TV", "Spanish"}),
    # Part of a longer name: what tells the London Office from the Berlin Office, World War II from World War I.
    ("How many desks are in the London Office of Acme?", {"Acme"}),
    ("What happened to the London Stock Exchange in World War II?", set()),
    ("Which error code does the notifications worker log when Postmark rejects our API key?", set()),  # two names
])
def test_a_name_may_be_missing_only_if_it_stands_alone_among_three_or_more(question, spared):
    assert sparable(question) == spared


def test_a_sibling_of_the_same_kind_does_not_ground_a_name(matcher):
    context = "The Berlin office has 60 desks; Japan trips get a daily allowance; sessions live in Memcached."
    assert matcher.missing(["London", "India", "Redis"], context) == ["London", "India", "Redis"]


def test_near_miss_on_a_name_abstains_and_says_which_name(make_settings, tmp_path):
    folder = tmp_path / "offices"
    folder.mkdir()
    for name, text in OFFICES.items():
        (folder / name).write_text(text)
    assistant = Assistant(make_settings())
    assistant.ingest([folder])
    answer = assistant.ask("How many desks are there in the London office?")
    assert answer.abstained and "none of the passages found mentions London" in answer.notices
    assert answer.near_misses[0].passage.titles == ["Berlin Office Guide"]
    answer = assistant.ask("How many desks are there in the Berlin office?")
    assert not answer.abstained and "60 desks" in answer.text
    answer = assistant.ask("Which pool size does the billing service's PgBouncer use for Postgres?")
    assert not answer.abstained and "default_pool_size set to 40" in answer.text
    # Three names of the question's own, and the passage speaks of two: "API" alone does not make it a near miss.
    answer = assistant.ask("What default_pool_size does PgBouncer use for the API?")
    assert not answer.abstained and "default_pool_size set to 40" in answer.text
    # Two of its own (the worker is the passages' compound): Postmark's passage never mentions the API key.
    answer = assistant.ask("Which error code does the notifications worker log when Postmark rejects our API key?")
    assert answer.abstained and answer.notices == ("none of the passages found mentions API",)
    # Each passage speaks of one of the two names, neither of both: a near miss.
    answer = assistant.ask("What default_pool_size does the notifications worker use?")
    assert answer.abstained and answer.notices == (
        "no passage found mentions default_pool_size and notifications-worker together",)
