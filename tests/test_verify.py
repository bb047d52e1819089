"""Claims against evidence: verdicts, evidence spans, quantities that must agree (the overlap verifier)."""

from __future__ import annotations

import pytest

from rag.answer.facts import missing_names, missing_quantities, quantities
from rag.answer.verify import AnswerChecker, OverlapVerifier, verify_answer

LOGGING = ("Structured logging was the single highest-ROI infrastructure investment we made all year. Moving "
           "from free-text log lines to JSON with consistent field names meant our dashboards, alerts, and "
           "incident investigations all got dramatically better overnight. The migration took one engineer "
           "two weeks.")
POOLING = "Database connection pooling was our biggest blind spot. A simple PgBouncer setup eliminated the issue."


@pytest.mark.parametrize("claim, wanted", [
    ("The migration took three engineers six months.", "contradicted"),
    ("The migration took one engineer two weeks.", "supported"),
    ("Structured logging took four weeks of work.", "contradicted"),
    ("Structured logging needed a new database cluster.", "unsupported"),
])
def test_quantities_must_agree_with_the_evidence(claim, wanted):
    check = OverlapVerifier().check(claim, [POOLING, LOGGING])
    assert check.verdict == wanted, check
    if wanted == "contradicted":
        assert LOGGING[check.conflict.start:check.conflict.end] in ("one engineer", "two weeks", "two")
        assert check.reason.startswith("contradicts: '")


@pytest.mark.parametrize("claim, conflict", [
    ("The migration took three engineers six months.", "one engineer"),
    ("Structured logging was the lowest-ROI investment we made all year.", "highest"),
    ("Moving to JSON logs made dashboards worse overnight.", "better"),
])
def test_the_issues_false_claims_are_contradicted_and_say_by_what(claim, conflict):
    check = OverlapVerifier().check(claim, [LOGGING], cited=[0])
    assert check.verdict == "contradicted" and check.reason == f"contradicts: '{conflict}'"
    assert LOGGING[check.conflict.start:check.conflict.end] == conflict


@pytest.mark.parametrize("claim, passage, conflict", [
    ("PgBouncer did not eliminate the issue.", POOLING, "A simple PgBouncer setup eliminated the issue."),
    ("Connection pooling was never a blind spot.", POOLING, "Database connection pooling was our biggest blind spot."),
    ("The database hit its connection limit.", "During spikes the database never hit its connection limit.", "never"),
    ("The team can't roll back a deploy.", "The team can roll back a deploy in a minute.",
     "The team can roll back a deploy in a minute."),
    ("A simple PgBouncer setup caused the issue.", POOLING, "eliminated"),
])
def test_a_claim_that_says_the_passage_the_other_way_round_is_contradicted(claim, passage, conflict):
    check = OverlapVerifier().check(claim, [passage], cited=[0])
    assert check.verdict == "contradicted" and check.reason == f"contradicts: '{conflict}'"
    assert passage[check.conflict.start:check.conflict.end] == conflict


@pytest.mark.parametrize("claim, passage", [
    ("Scrape the plastic off with a spatula.", "Scrape the plastic off with a spatula, taking care not to damage the "
     "drum."),
    ("Cut around the potato, being careful not to cut the flesh.", "Cut the skin all around the potato."),
    ("PgBouncer never failed under load.", "PgBouncer did not fail under load."),
    ("Not only did PgBouncer eliminate the issue, it was simple.", POOLING),
])
def test_a_not_that_leaves_the_statement_as_it_is_is_no_contradiction(claim, passage):
    assert OverlapVerifier().check(claim, [passage], cited=[0]).verdict != "contradicted"


def test_the_passages_own_sentences_are_supported():
    for claim in ("The migration took one engineer two weeks.",
                  "Structured logging was the single highest-ROI infrastructure investment we made all year."):
        assert OverlapVerifier().check(claim, [LOGGING], cited=[0]).supported


def test_a_supported_claim_points_at_its_sentence():
    check = OverlapVerifier().check("The migration took one engineer two weeks.", [POOLING, LOGGING], cited=[1])
    assert check.citations == (1,)
    (span,) = check.evidence
    assert LOGGING[span.start:span.end] == "The migration took one engineer two weeks."


def test_a_claim_citing_the_wrong_passage_is_moved_to_the_right_one():
    check = OverlapVerifier().check("A simple PgBouncer setup eliminated the issue.", [POOLING, LOGGING], cited=[1])
    assert check.supported and check.citations == (0,)


@pytest.mark.parametrize("text, values", [
    ("It cost $4,000 and 30% less, in 2 days", [(4000, "$"), (30, "%"), (2, "day")]),
    ("three engineers six months", [(3, "engineer"), (6, "month")]),
    ("One of the reasons, half the team", []),
])
def test_quantities(text, values):
    assert [(q.value, q.unit) for q in quantities(text)] == values


@pytest.mark.parametrize("claim, evidence, missing", [
    ("WAC is used when units are intermingled.", "The weighted average cost method is used when ...", []),
    ("The PgBouncer setup held.", "A simple pgbouncer setup eliminated the issue.", []),
    ("WAC is used when units are intermingled.", "It was a car the team used.", ["WAC"]),  # stopwords spell nothing
    ("The SLA was met.", "The service level was met.", ["SLA"]),
    ("MySQL holds it.", "my yellow sql query library", ["MySQL"]),  # only capitals spell a name out
])
def test_an_acronym_is_held_by_its_words_spelled_out(claim, evidence, missing):
    assert missing_names(claim, evidence) == missing


def test_a_figure_of_another_unit_is_missing_not_conflicting():
    missing, conflicting = missing_quantities("It took 3 engineers.", "It took two weeks.")
    assert [q.value for q in missing] == [3] and conflicting == []


def test_streamed_draft_comes_out_only_as_checked_sentences():
    checker = AnswerChecker(OverlapVerifier(), [POOLING, LOGGING])
    shown = []
    draft = ("The migration took one engineer two weeks [2]. It took three engineers six months [2]. "
             "A simple PgBouncer setup eliminated the issue [2].")
    for start in range(0, len(draft), 7):  # as an LLM streams it
        shown += checker.feed(draft[start:start + 7])
    shown += checker.finish()
    assert shown == ["The migration took one engineer two weeks [1].",
                     "A simple PgBouncer setup eliminated the issue [2]."]  # renumbered in order of use
    assert checker.cited == [1, 0]
    assert [c.verdict for c in checker.removed] == ["contradicted"]
    assert checker.evidence == {1: [(LOGGING.index("The migration"), len(LOGGING))],
                                0: [(POOLING.index("A simple"), len(POOLING))]}


def test_a_streamed_list_keeps_its_lines_and_loses_only_the_item_no_source_holds():
    checker = AnswerChecker(OverlapVerifier(), [POOLING, LOGGING])
    draft = ("What changed:\n\n1. A simple PgBouncer setup eliminated the issue [1].\n"
             "2. The migration took three engineers six months [2].\n"
             "3. The migration to structured logging took one engineer two weeks [2].\n\nThat was all.")
    text = ""
    for start in range(0, len(draft), 7):
        text += "".join(checker.spaced(checker.feed(draft[start:start + 7])))
    text += "".join(checker.spaced(checker.finish()))
    assert text == checker.text == ("What changed:\n\n1. A simple PgBouncer setup eliminated the issue [1].\n"
                                    "3. The migration to structured logging took one engineer two weeks [2]."
                                    "\n\nThat was all.")
    assert [c.verdict for c in checker.removed] == ["contradicted"]  # item 2


def _streamed(checker: AnswerChecker, draft: str) -> str:
    text = ""
    for start in range(0, len(draft), 7):
        text += "".join(checker.spaced(checker.feed(draft[start:start + 7])))
    return text + "".join(checker.spaced(checker.finish()))


@pytest.mark.parametrize("draft, shown", [
    # Every item under "What changed:" is removed: the header goes too; the heading whose paragraph stays, stays.
    ("What changed:\n\n1. The migration took three engineers six months [2].\n2. Structured logging needed a new "
     "database cluster [2].\n\n### Pooling\n\nA simple PgBouncer setup eliminated the issue [1].",
     "### Pooling\n\nA simple PgBouncer setup eliminated the issue [1]."),
    # A heading whose only paragraph is removed, at the answer's end.
    ("A simple PgBouncer setup eliminated the issue [1].\n\n### Migration\n\nThe migration took three engineers "
     "six months [2].", "A simple PgBouncer setup eliminated the issue [1]."),
    # One item of two is left: its header stays with it.
    ("What changed:\n\n1. The migration took three engineers six months [2].\n2. A simple PgBouncer setup "
     "eliminated the issue [1].", "What changed:\n\n2. A simple PgBouncer setup eliminated the issue [1]."),
])
def test_a_header_with_nothing_left_under_it_goes(draft, shown):
    assert _streamed(checker := AnswerChecker(OverlapVerifier(), [POOLING, LOGGING]), draft) == checker.text == shown
    verification = verify_answer(draft, [POOLING, LOGGING], OverlapVerifier())
    assert verification.supported_answer == shown
    assert all(s.text in draft for s in verification.sentences)


@pytest.fixture(scope="module")
def tiny_nli(tmp_path_factory):
    """A small BERT NLI classifier saved as a Hugging Face model (labels as NLI models name them)."""
    import shutil

    import transformers

    from rag.embeddings import resolve_model_path

    bundled = resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
    folder = tmp_path_factory.mktemp("tiny-nli")
    config = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, num_labels=3,
                                     id2label={0: "contradiction", 1: "entailment", 2: "neutral"},
                                     label2id={"contradiction": 0, "entailment": 1, "neutral": 2})
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (bundled / name).exists():
            shutil.copy(bundled / name, folder / name)
    return folder


def test_any_cross_encoder_is_exported_once_and_run_without_torch(tiny_nli, make_settings):
    from rag.answer.crossencoder import CONTRADICTED, SUPPORTED, UNSUPPORTED
    from rag.answer.verify import Verifier, load_verifier

    settings = make_settings(verifier_model=str(tiny_nli))
    verifier = load_verifier(settings)
    assert isinstance(verifier, Verifier)
    exported = list((settings.index_dir / "verifier").iterdir())
    assert len(exported) == 1 and {p.name for p in exported[0].iterdir()} >= {"model.onnx", "meta.json",
                                                                               "tokenizer.json"}
    assert verifier.model.columns == [CONTRADICTED, SUPPORTED, UNSUPPORTED]  # NLI labels mapped by name
    probabilities = verifier.model.scores([("The migration took two weeks.", LOGGING), ("a", "b")])
    assert probabilities.shape == (2, 3) and abs(float(probabilities.sum()) - 2.0) < 1e-4
    check = verifier.check("The migration took three engineers six months.", [POOLING, LOGGING])
    assert check.verdict in ("unsupported", "contradicted")  # an untrained head, and the figures disagree
    assert load_verifier(settings).model is verifier.model  # loaded once per process


def test_a_verifier_that_cannot_be_found_says_what_to_set(make_settings, tmp_path):
    from rag.answer.verify import load_verifier
    from rag.errors import VerifierUnavailable

    with pytest.raises(VerifierUnavailable, match="RAG_VERIFIER_MODEL"):
        load_verifier(make_settings(verifier_model=str(tmp_path / "nowhere")))


def test_rag_verify_batch_checks_answers_written_elsewhere(monkeypatch, capsys):
    import io
    import json

    from rag.cli import main

    answer = "The migration took one engineer two weeks. It took three engineers six months [2]."
    lines = [json.dumps({"question": "how long?", "passages": [POOLING, LOGGING], "answer": answer}),
             "not json", json.dumps({"question": "q", "passages": "oops", "answer": "x"})]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["verify", "--batch", "-", "--json"]) == 2  # two bad lines, reported, the rest go on
    first, second, third = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    kept, removed = first["sentences"]
    assert kept["supported"] and kept["verdict"] == "supported" and kept["citations"] == [2]  # unmarked: any
    evidence = kept["evidence"][0]
    assert evidence["passage"] == 2 and LOGGING[evidence["start"]:evidence["end"]].startswith("The migration")
    assert not removed["supported"] and removed["verdict"] == "contradicted"
    assert first["supported_answer"] == "The migration took one engineer two weeks [2]."
    assert "error" in second and "error" in third and "passages" in third["error"]


def test_verify_from_python():
    from rag import verify

    result = verify("A simple PgBouncer setup eliminated the issue [2].", [LOGGING, POOLING])
    assert [s.verdict for s in result.sentences] == ["supported"]
    assert result.supported_answer == "A simple PgBouncer setup eliminated the issue [2]."


def test_verify_as_a_langchain_runnable():
    from langchain_core.documents import Document

    from rag.lc import verify_runnable

    chain = verify_runnable()
    out = chain.invoke({"answer": "A simple PgBouncer setup eliminated the issue. Unicorns wrote the schema.",
                        "passages": [Document(page_content=POOLING), LOGGING]})
    assert [s["verdict"] for s in out["sentences"]] == ["supported", "unsupported"]
    assert out["supported_answer"] == "A simple PgBouncer setup eliminated the issue [1]."
