"""Quote-anchored LLM answers (issue 32, part 1): `[n: "quote"]` checked exactly against passage n, only [n]
shown, the quote highlighted in its source, made-up quotes removed, and a model that ignores the format
checked as before. Every judged sentence says which check decided it."""

from __future__ import annotations

import json
import logging

import pytest
from fake_openai import Action, passages_in, reply

from rag import Assistant, Settings, verify
from rag.answer.prompts import ANSWER_SYSTEM
from rag.answer.quotes import QuoteMarkers, find_verbatim, judge_quotes
from rag.answer.verify import AnswerChecker, OverlapVerifier
from rag.cli import main

pytestmark = pytest.mark.usefixtures("fresh_breakers")  # each test: every endpoint closed
KEY = "sk-quotes-SENTINEL-31"
POOLING = "Database connection pooling was our biggest blind spot"
PASSAGE = (f"{POOLING}. During traffic spikes the database hit its connection limit — and requests queued. "
           "A simple PgBouncer setup eliminated the issue entirely.")


@pytest.fixture
def llm(fake, shipped_index):
    return Assistant(Settings(index_dir=shipped_index, openai_api_key=KEY, openai_base_url=fake.url, answerer="llm",
                              llm_fallback=False, llm_max_retries=0, llm_timeout=5))


def quoting(template: str):
    """A fake LLM that answers `template` with {n} the number of the passage holding POOLING."""

    def action(request: dict) -> Action:
        n = next(n for n, text in passages_in(request).items() if POOLING in text)
        return reply(template.format(n=n))

    return action


def test_quotes_are_found_through_what_a_model_may_change_and_not_through_a_changed_word():
    start, end = find_verbatim("“During traffic spikes the DATABASE hit its connection limit - and requests”", PASSAGE)
    assert PASSAGE[start:end] == "During traffic spikes the database hit its connection limit — and requests"
    start, end = find_verbatim("Database connection pooling ... PgBouncer setup", PASSAGE)
    assert PASSAGE[start:end].startswith(POOLING) and PASSAGE[start:end].endswith("PgBouncer setup")
    assert find_verbatim("Database connection pooling was not our biggest blind spot", PASSAGE) is None
    assert find_verbatim("PgBouncer setup ... Database connection pooling", PASSAGE) is None  # out of order
    assert find_verbatim(" ... ", PASSAGE) is None


def test_honest_quotes_carry_a_sentence_only_when_it_says_no_more_than_they_do():
    quote = QuoteMarkers()
    text = quote.protect(f'Pooling was their biggest blind spot [1: "{POOLING}"].', final=True)
    sentence, quotes = quote.take(text)
    assert sentence == "Pooling was their biggest blind spot [1]." and quotes[0].text == POOLING
    assert judge_quotes("Pooling was their biggest blind spot.", quotes, [PASSAGE]).carries
    assert not judge_quotes("Pooling was not their biggest blind spot.", quotes, [PASSAGE]).carries
    assert not judge_quotes("Pooling was their biggest blind spot in 2019.", quotes, [PASSAGE]).carries
    assert not judge_quotes("Redis pooling was their biggest blind spot.", quotes, [PASSAGE]).carries
    made_up = judge_quotes("Pooling was their biggest blind spot.", [type(quotes[0])(2, POOLING)], [PASSAGE])
    assert made_up.made_up is not None  # passage 2 was never given


def test_the_issues_example_keeps_the_honest_sentence_and_removes_the_made_up_quote(fake, llm):
    fake.then(quoting(f'{POOLING} [{{n}}: "{POOLING}"]. Database connection pooling was not our biggest blind spot '
                      '[{n}: "Database connection pooling was not our biggest blind"].'))
    answer = llm.ask("Why did the database fail during traffic spikes?")
    assert not answer.abstained and answer.text == f"{POOLING} [1]."
    assert [(s.check, s.supported) for s in answer.sentences] == [("quote", True), ("quote", False)]
    assert 'its quote is not in passage' in answer.removed[0].reason and "not our biggest" in answer.removed[0].text
    passage = answer.citations[0].hit.passage.text
    assert [passage[start:end] for start, end in answer.citations[0].evidence] == [POOLING]  # highlighted
    assert "[1: " in ANSWER_SYSTEM.replace('[1: "exact', "[1: ") and "word for word" in ANSWER_SYSTEM


def test_a_made_up_quote_is_removed_even_when_every_word_of_the_sentence_is_in_the_passage():
    passages = [PASSAGE]
    quoted = verify('A simple PgBouncer setup eliminated the issue [1: "PgBouncer eliminated every issue"].',
                    passages, Settings(verifier_model="overlap"))
    assert [(s.check, s.supported) for s in quoted.sentences] == [("quote", False)]
    plain = verify("A simple PgBouncer setup eliminated the issue [1].", passages, Settings(verifier_model="overlap"))
    assert [(s.check, s.supported) for s in plain.sentences] == [("overlap", True)]  # the words alone would pass


def test_quotes_that_do_not_carry_the_sentence_leave_it_to_the_model(shipped_index):
    checked = verify('The team fixed the issue by adding PgBouncer [1: "A simple PgBouncer setup eliminated the '
                     'issue entirely"].', [PASSAGE], Settings(index_dir=shipped_index, verifier_model="reader"))
    sentence = checked.sentences[0]
    assert sentence.check == "model" and sentence.supported
    assert (1, PASSAGE.index("A simple"), len(PASSAGE) - 1) in sentence.evidence  # the quote, highlighted anyway


def test_a_streamed_quote_split_across_pieces_and_holding_a_full_stop_is_checked_whole():
    draft = (f'Pooling was their biggest blind spot [1: "{POOLING}. During traffic spikes"]. A simple PgBouncer '
             'setup eliminated the issue entirely [1].')
    for size in (1, 7, len(draft)):
        checker = AnswerChecker(OverlapVerifier(), [PASSAGE])
        shown = [sentence for i in range(0, len(draft), size) for sentence in checker.feed(draft[i:i + size])]
        shown += checker.finish()
        assert shown == ["Pooling was their biggest blind spot [1].",
                         "A simple PgBouncer setup eliminated the issue entirely [1]."]
        assert [s.check for s in checker.checked] == ["quote", "overlap"]  # the second has no quote


def test_the_models_own_private_characters_cannot_fake_a_quote():
    checker = AnswerChecker(OverlapVerifier(), [PASSAGE])
    checker.feed("A simple PgBouncer setup eliminated the issue entirely\ue0000\ue001 [1]. ")
    checker.finish()
    assert not checker.quotes.found and [s.check for s in checker.checked] == ["overlap"]
    assert "\ue000" not in checker.checked[0].text


def test_a_model_that_ignores_the_format_is_checked_as_before_and_only_the_log_says_so(fake, llm, caplog):
    fake.then(quoting(f"{POOLING} [{{n}}]."))
    with caplog.at_level(logging.INFO, logger="rag"):
        answer = llm.configured(verifier="local").ask("Why did the database fail during traffic spikes?")
    assert answer.text == f"{POOLING} [1]." and answer.sentences[0].check == "model"  # the default verifier
    assert "llm_without_quotes" in caplog.text and answer.notices == () and len(fake.requests) == 1


def test_rag_verify_json_says_which_check_decided(tmp_path, monkeypatch, capsys):
    answer = f'{POOLING} [1: "{POOLING}"]. PgBouncer made it worse [1: "PgBouncer made it worse"].'
    line = json.dumps({"question": "What was the blind spot?", "passages": [PASSAGE], "answer": answer})
    monkeypatch.setenv("RAG_VERIFIER_MODEL", "overlap")
    (tmp_path / "in.jsonl").write_text(line + "\n")
    assert main(["verify", "--batch", str(tmp_path / "in.jsonl")]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[0])
    assert [(s["check"], s["supported"]) for s in result["sentences"]] == [("quote", True), ("quote", False)]
    assert result["supported_answer"] == f"{POOLING} [1]."


def test_the_api_shows_only_markers_and_says_which_check_decided(fake, shipped_index):
    from fastapi.testclient import TestClient

    from rag.server.api import create_app

    honest = f'{POOLING} [{{n}}: "{POOLING}"]. Pooling was not their blind spot [{{n}}: "Pooling was not it"].'
    fake.then(quoting(honest), quoting(honest))
    settings = Settings(index_dir=shipped_index, openai_api_key=KEY, openai_base_url=fake.url, answerer="llm",
                        llm_fallback=False, llm_max_retries=0, llm_timeout=5)
    api = TestClient(create_app(Assistant(settings), loopback=True), base_url="http://localhost")
    asked = api.post("/v1/ask", json={"question": "Why did the database fail during traffic spikes?"}).json()
    assert asked["answer"] == f"{POOLING} [1]."
    assert [(s["check"], s["supported"]) for s in asked["sentences"]] == [("quote", True), ("quote", False)]
    completion = api.post("/v1/chat/completions", json={"model": "rag", "messages": [
        {"role": "user", "content": "Why did the database fail during traffic spikes?"}]}).json()
    assert completion["choices"][0]["message"]["content"].startswith(f"{POOLING} [1].")
    assert '"' not in completion["choices"][0]["message"]["content"].split("Sources:")[0]
    verified = api.post("/v1/verify", json={"passages": [PASSAGE], "answer": f'{POOLING} [1: "{POOLING}"].'}).json()
    assert [s["check"] for s in verified["sentences"]] == ["quote"] and verified["notices"] == []
    assert len(fake.requests) == 2  # two answers; every sentence decided by its quote: no judge request


def test_a_quote_after_the_full_stop_belongs_to_the_sentence_before_it():
    passages = ["Paris is the capital of France.", "Berlin is the capital of Germany."]
    checker = AnswerChecker(OverlapVerifier(), passages)
    draft = ('Paris is the capital of France. [1: "made up words"] Berlin is the capital of Germany. '
             '[2: "Berlin is the capital"][1: "Paris is the capital"]')
    shown = checker.feed(draft) + checker.finish()
    assert shown == ["Berlin is the capital of Germany [1, 2]."]
    assert [(s.check, s.supported) for s in checker.checked] == [("quote", False), ("overlap", True)]
    assert "made up words" in checker.removed[0].reason


def test_a_quote_matches_text_written_with_combining_accents():
    passage = "Le cafe\u0301 au lait co\u00fbtait deux euros \u00e0 I\u0307stanbul."
    start, end = find_verbatim("café au lait coûtait deux euros à İstanbul", passage)
    assert passage[start:end] == passage[len("Le "):-1]


def test_sentences_waiting_behind_one_for_the_judge_keep_their_own_verdicts():
    class Asked:  # a judge that finds every claim it is sent unsupported, and counts them
        def __init__(self):
            self.sent: list[str] = []

        def wants(self, check, verdict, score):
            return check != "quote"

        def rule(self, claims):
            self.sent += [claim.text for claim in claims]
            from rag.answer.judge import Ruling

            return [Ruling("unsupported") for _ in claims]

    judge = Asked()
    checker = AnswerChecker(OverlapVerifier(), [PASSAGE], judge)  # type: ignore[arg-type]
    draft = (f'Pooling was their biggest blind spot [1]. {POOLING} [1: "{POOLING}"]. Requests queued during '
             'traffic spikes [1].')
    shown = checker.feed(draft) + checker.finish()
    assert shown == [f"{POOLING} [1]."]  # the quoted one kept on its quote's word, in its place
    assert judge.sent == ["Pooling was their biggest blind spot.", "Requests queued during traffic spikes."]
    assert [s.check for s in checker.checked] == ["judge", "quote", "judge"]
