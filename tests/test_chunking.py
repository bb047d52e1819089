"""Chunking: paragraph passages, sentence-boundary splits within the window, duplicate grouping."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SHIPPED_CORPUS

from rag.answer.citations import answer_units
from rag.chunking import chunk_posts, group_duplicates, max_chars, split_long
from rag.corpus import load_paths
from rag.embeddings import resolve_model_path, token_counter
from rag.text import normalize, sentence_spans, sentence_units
from rag.types import Paragraph, Post


@pytest.fixture(scope="module")
def count_tokens():
    return token_counter(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2"))


def post(title, *texts, section=""):
    return Post(title, "", f"{title}.md", tuple(Paragraph(t, section) for t in texts))


def test_short_paragraph_is_one_passage(count_tokens):
    assert split_long("One sentence. Two sentences.", count_tokens, 256) == ["One sentence. Two sentences."]


def test_a_papers_abbreviations_do_not_end_its_sentences():
    text = ("Smith et al. (2019) saw IL-6 rise in 45% of patients (Fig. 2). The effect was larger in men, "
            "i.e. 60 vs. 40 patients. Dr. Jones gave approx. 5 mg in the U.S. Army trials. The dose was safe.")
    assert sentence_units(text) == [
        "Smith et al. (2019) saw IL-6 rise in 45% of patients (Fig. 2).",
        "The effect was larger in men, i.e. 60 vs. 40 patients.",
        "Dr. Jones gave approx. 5 mg in the U.S. Army trials.", "The dose was safe."]
    assert [text[a:b] for a, b in sentence_spans(text)] == sentence_units(text)


def test_titles_saints_and_months_do_not_end_a_sentence():
    text = ("He was baptised at St. Mary Magdalene's Church near Sandringham. Gen. Grant reached Mt. Vernon in "
            "Sept. 1865 with his staff. The war was over.")
    assert sentence_units(text) == [
        "He was baptised at St. Mary Magdalene's Church near Sandringham.",
        "Gen. Grant reached Mt. Vernon in Sept. 1865 with his staff.", "The war was over."]
    named = ("The telegram came from President Lyndon B. Johnson on 5 June. The problem is in the class P. Roman "
             "numerals return at Super Bowl L. The league said so.")
    assert sentence_units(named) == [
        "The telegram came from President Lyndon B. Johnson on 5 June.", "The problem is in the class P.",
        "Roman numerals return at Super Bowl L.", "The league said so."]


def test_a_written_answers_lines_are_units_of_their_own():
    answer = ("Here is how to reset it:\n\n1. Unplug the router from the wall. Wait ten seconds.\n"
              "2. Hold the reset button\n* Durum\nThe lights turn green after a minute.")
    units = [answer[a:b] for a, b in sentence_spans(answer, lines=True)]
    assert units == ["Here is how to reset it:", "1. Unplug the router from the wall.", "Wait ten seconds.",
                     "2. Hold the reset button", "* Durum", "The lights turn green after a minute."]
    # An answer's units keep what stood before them, so the kept answer keeps its lines.
    assert answer_units(answer) == list(zip(units, [" ", "\n\n", " ", "\n", "\n", "\n"]))
    # Prose read from documents keeps its sentences whole across a line break; a list's number starts its item.
    assert sentence_units(answer)[:2] == ["Here is how to reset it:\n\n1.", "Unplug the router from the wall."]


def test_long_paragraph_splits_at_sentence_boundaries_within_the_window(count_tokens):
    sentences = [f"Sentence number {i} describes the rollout of service {i} in some detail." for i in range(60)]
    pieces = split_long(" ".join(sentences), count_tokens, 256)
    assert len(pieces) > 1
    assert all(count_tokens(p) <= 256 for p in pieces)
    assert all(p.endswith(".") and p[0].isupper() for p in pieces)  # whole sentences only
    assert " ".join(pieces) == " ".join(sentences)  # nothing lost or reordered


def test_one_overlong_sentence_splits_at_words(count_tokens):
    sentence = " ".join(["word"] * 700) + "."
    pieces = split_long(sentence, count_tokens, 64)
    assert all(count_tokens(p) <= 64 for p in pieces)
    assert " ".join(pieces) == sentence


def test_passages_never_cross_posts_and_keep_sections(count_tokens):
    chunks = chunk_posts([post("A", "First.", "Second.", section="Intro"), post("B", "Third.")], count_tokens, 256)
    assert [(c.text, c.source.title, c.source.section, c.source.position) for c in chunks] == [
        ("First.", "A", "Intro", 0), ("Second.", "A", "Intro", 1), ("Third.", "B", "", 0)]


def test_identical_paragraphs_become_one_passage_with_every_source(count_tokens):
    chunks = chunk_posts([
        post("A", "We cut costs by half.", "Only in A."),
        post("B", "We  cut costs\u00a0by half."),           # other whitespace
        post("C", "We cut costs by half.", section="Money"),
    ], count_tokens, 256)
    groups = group_duplicates(chunks)
    assert [(text, [(s.title, s.section) for s in sources]) for _, text, sources in groups] == [
        ("We cut costs by half.", [("A", ""), ("B", ""), ("C", "Money")]),
        ("Only in A.", [("A", "")]),
    ]


def test_normalization_folds_unicode_forms_quotes_and_spaces():
    assert normalize("We’re  “done” — ﬁnally") == normalize("We're \"done\" - finally")
    assert normalize("done") != normalize("Done")


def test_shipped_corpus_groups_repeated_paragraphs(count_tokens):
    posts = load_paths([SHIPPED_CORPUS], 5_000_000, Path.cwd()).posts
    chunks = chunk_posts(posts, count_tokens, 256)
    groups = group_duplicates(chunks)
    assert (len(chunks), len(groups)) == (36, 25)
    cost = next(sources for _, text, sources in groups if text.startswith("Our cost optimization"))
    assert len({s.title for s in cost}) == 4


@pytest.mark.parametrize("run", ["a" * 200_000, "ab-" * 70_000, "QmFzZTY0" * 25_000])
def test_a_run_with_no_whitespace_is_cut_within_the_length_cap_and_the_window(count_tokens, run):
    # "a" * n is a single unknown word piece, so the token count alone would keep it whole.
    text = f"Before the blob. {run} After the blob."
    pieces = split_long(text, count_tokens, 256)
    assert all(len(p) <= max_chars(256) and count_tokens(p) <= 256 for p in pieces)
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")  # every character kept, in order
    assert pieces[0] == "Before the blob." and pieces[-1].endswith("After the blob.")
    chunks = chunk_posts([post("Blob", text)], count_tokens, 256)
    assert [c.text for c in chunks] == pieces and max(len(c.text) for c in chunks) <= max_chars(256)


def test_ordinary_prose_never_meets_the_length_cap(count_tokens):
    posts = load_paths([SHIPPED_CORPUS], 10**7, SHIPPED_CORPUS).posts
    for text in [paragraph.text for post_ in posts for paragraph in post_.paragraphs]:
        assert len(text) <= max_chars(count_tokens(text))
