"""The configured LLM as judge (issue 32, part 2), against the fake OpenAI-compatible server: one judge request
per answer for the sentences the local check is not sure of, verdicts that count only with a verbatim quote,
and a judge that fails, answers malformed JSON, is slow or hangs leaving the local verdicts, with one line."""

from __future__ import annotations

import json
import time

import pytest
from fake_openai import Action, hang, passages_in, reply, user_message

from rag import Assistant, Settings, verify
from rag.answer.judge import Judge
from rag.cli import main
from rag.errors import UserError

pytestmark = pytest.mark.usefixtures("fresh_breakers")  # each test: every endpoint closed
KEY = "sk-judge-SENTINEL-41"
SPIKES = "the database would hit its connection limit"
PGBOUNCER = "A simple PgBouncer setup eliminated the issue entirely"
PASSAGE = ("Database connection pooling was our biggest blind spot. Under normal load, direct connections worked "
           "fine. But during traffic spikes, the database would hit its connection limit and cascade failures "
           "across all services. A simple PgBouncer setup eliminated the issue entirely.")
DRAFT = "During traffic spikes the database hit its connection limit [{n}]. Redis replaced PgBouncer there [{n}]."


def settings(fake, shipped_index=None, **values) -> Settings:
    # Shared words as the local check: never sure, so every sentence its quote did not decide meets the judge.
    base = dict(openai_api_key=KEY, openai_base_url=fake.url, llm_max_retries=0, llm_timeout=5,
                verifier_model="overlap")
    if shipped_index is not None:
        base.update(index_dir=shipped_index, answerer="llm", llm_fallback=False)
    return Settings(**{**base, **values})


def drafting(request: dict) -> Action:
    """The answer's draft, citing the passage about connection limits."""
    n = next(n for n, text in passages_in(request).items() if SPIKES in text)
    return reply(DRAFT.format(n=n))


def verdicts(*items: dict) -> Action:
    return reply(json.dumps({"verdicts": list(items)}))


def judged(fake) -> list[dict]:
    return [r for r in fake.requests if "You check claims" in json.dumps(r["body"]["messages"][0])]


def test_one_judge_request_decides_the_undecided_sentences_of_an_answer(fake, shipped_index):
    fake.then(drafting, verdicts({"claim": 1, "verdict": "supported", "quote": SPIKES},
                                 {"claim": 2, "verdict": "contradicted", "quote": PGBOUNCER}))
    answer = Assistant(settings(fake, shipped_index)).ask("Why did the database fail during traffic spikes?")
    assert len(judged(fake)) == 1 and len(fake.requests) == 2
    assert answer.text == "During traffic spikes the database hit its connection limit [1]."
    assert [(s.check, s.verdict) for s in answer.sentences] == [("judge", "supported"), ("judge", "contradicted")]
    assert "the LLM judge" in answer.removed[0].reason and PGBOUNCER in answer.removed[0].reason
    cited = answer.citations[0]
    assert [cited.hit.passage.text[a:b] for a, b in cited.evidence] == [SPIKES]  # the judge's quote, highlighted
    claims = user_message(judged(fake)[0])
    assert "1. During traffic spikes the database hit its connection limit." in claims and "2. Redis" in claims


def test_a_judges_verdict_on_a_quote_it_made_up_does_not_count(fake):
    fake.then(verdicts({"claim": 1, "verdict": "contradicted", "quote": "PgBouncer never worked for us"}))
    checked = verify("During traffic spikes the database hit its connection limit [1].", [PASSAGE],
                     settings(fake, verifier="llm", verifier_model="overlap"))
    assert [(s.check, s.supported) for s in checked.sentences] == [("overlap", True)]  # the local verdict stands
    assert checked.notices == ()


@pytest.mark.parametrize("action", [reply("The first claim is supported."), reply('{"verdicts": [{"claim": 9}]}'),
                                    reply('```json\n{"verdicts": "yes"}\n```')], ids=["prose", "fields", "shape"])
def test_malformed_json_leaves_the_local_verdicts_and_says_so_in_one_line(fake, action):
    fake.then(action)
    checked = verify("During traffic spikes the database hit its connection limit [1]. Redis replaced it [1].",
                     [PASSAGE], settings(fake))
    assert [(s.check, s.supported) for s in checked.sentences] == [("overlap", True), ("overlap", False)]
    assert len(checked.notices) == 1 and "checked locally" in checked.notices[0] and KEY not in checked.notices[0]


def test_a_fenced_reply_is_read(fake):
    fake.then(reply("```json\n" + json.dumps({"verdicts": [{"claim": 1, "verdict": "unsupported"}]}) + "\n```"))
    checked = verify("During traffic spikes the database hit its connection limit [1].", [PASSAGE], settings(fake))
    assert [(s.check, s.supported) for s in checked.sentences] == [("judge", False)]


def test_a_hung_judge_keeps_the_whole_answer_within_the_llm_timeout(fake, shipped_index):
    assistant = Assistant(settings(fake, shipped_index, llm_timeout=2, llm_fallback=True))
    assistant.ask("Why did the database fail during traffic spikes?", answerer="extractive")  # loaded, warm
    fake.then(drafting, hang())
    started = time.monotonic()
    answer = assistant.ask("Why did the database fail during traffic spikes?")
    took = time.monotonic() - started
    assert took < 2 + 1.0, took  # the draft and the judge share one deadline
    assert answer.text == "During traffic spikes the database hit its connection limit [1]."  # local verdicts
    assert any("LLM judge could not check" in n for n in answer.notices)


def test_a_slow_judge_within_the_deadline_is_waited_for(fake):
    fake.then(Action("reply", json.dumps({"verdicts": [{"claim": 1, "verdict": "unsupported"}]}), delay=0.8))
    checked = verify("During traffic spikes the database hit its connection limit [1].", [PASSAGE], settings(fake))
    assert [(s.check, s.supported) for s in checked.sentences] == [("judge", False)] and not checked.notices


def test_sure_sentences_and_local_mode_ask_no_judge(fake):
    quoted = 'Pooling was their biggest blind spot [1: "Database connection pooling was our biggest blind spot"].'
    checked = verify(quoted, [PASSAGE], settings(fake))
    assert [s.check for s in checked.sentences] == ["quote"]
    checked = verify("During traffic spikes the database hit its connection limit [1].", [PASSAGE],
                     settings(fake, verifier="local"))
    assert [s.check for s in checked.sentences] == ["overlap"]
    assert fake.requests == []
    judge = Judge(settings(fake), [PASSAGE], everything=False)
    assert not judge.wants("model", "supported", 0.95) and judge.wants("model", "supported", 0.7)
    assert judge.wants("overlap", "supported", 1.0)  # shared words are blind to a negation


def test_the_judge_model_is_used_and_llm_mode_needs_a_key(fake, monkeypatch, capsys, tmp_path):
    fake.then(verdicts({"claim": 1, "verdict": "unsupported"}))
    verify("During traffic spikes the database hit its connection limit [1].", [PASSAGE],
           settings(fake, judge_model="judge-large"))
    assert fake.requests[0]["body"]["model"] == "judge-large"
    with pytest.raises(UserError, match="RAG_VERIFIER=llm needs an LLM"):
        verify("Anything at all [1].", [PASSAGE], Settings(verifier="llm"))
    monkeypatch.setenv("RAG_VERIFIER", "llm")
    (tmp_path / "in.jsonl").write_text(json.dumps({"passages": [PASSAGE], "answer": "Anything at all [1]."}) + "\n")
    assert main(["verify", "--batch", str(tmp_path / "in.jsonl")]) == 2
    said = capsys.readouterr()
    assert "RAG_VERIFIER=llm needs an LLM" in said.out + said.err and "Traceback" not in said.out + said.err


def test_a_declined_draft_asks_no_judge(fake, shipped_index):
    fake.then(reply("NOT IN THE CASE STUDIES"))
    answer = Assistant(settings(fake, shipped_index)).ask("Why did the database fail during traffic spikes?")
    assert answer.abstained and answer.abstain_reason == "llm_declined" and len(fake.requests) == 1


def test_a_verify_that_asks_the_judge_is_charged_for_what_it_sends(fake, shipped_index):
    from fastapi.testclient import TestClient

    from rag.server.api import create_app

    fake.then(verdicts({"claim": 1, "verdict": "unsupported"}))
    api = TestClient(create_app(Assistant(settings(fake, shipped_index, server_rate_limit=4)), loopback=True),
                     base_url="http://localhost")
    filler = "Filler words about nothing much. " * 270  # 8,910 characters
    passages = [PASSAGE + " " + filler, filler, filler]  # 27,000 characters: the judge costs 1 + 2 units
    body = {"passages": passages, "answer": "During traffic spikes the database hit its connection limit [1]."}
    first = api.post("/v1/verify", json=body)
    assert first.status_code == 200 and first.json()["sentences"][0]["check"] == "judge"
    assert api.post("/v1/verify", json=body).status_code == 429  # 1 + 3 units spent of 4
    assert len(judged(fake)) == 1
