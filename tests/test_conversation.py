"""Follow-ups: when a question leans on the history, what it leans on, and what happens when nothing can."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from rag.answer.conversation import dangling_reference, follow_up, read_as, speaks_of, subject_of, usable_rewrite
from rag.cli import main
from rag.render import rewrite_note
from rag.types import Turn

DATA = Path(__file__).parent / "data"

LEANING = ["and how long did that take?", "why?", "How long?", "who led it?", "What about contractors?",
           "And the second one?", "What did that migration cost?", "Who approved that?", "How did it go?",
           "Is that true?", "What does this policy say about contractors?", "Tell me more", "who owns them?",
           "are they encrypted?", "What is her role?", "What did they use for it?"]
STANDING = ["How did they cut cloud costs?", "Which tool did the team adopt that fixed connection exhaustion?",
            "How long does it take to get a laptop?", "Is it possible to expense a taxi?",
            "What is the policy that covers laptops?", "What happened this year?",
            "What are the on-call rules that apply to weekends?", "How did they make the release process safer?",
            # a possessive whose owner the question names; "it" that only opens "was it reported that"
            "When did Cruyff win his third Ballon d'Or?", "Where does Rogers Cable have its headquarters?",
            "When was it reported that Kerry would become SoS?",
            # long, and full of pronouns: it carries its own subject
            "This is about our on-call setup: when the pager fires at night and it is a database alert, who "
            "takes it, and does that engineer get time off afterwards under the compensation policy?"]


@pytest.mark.parametrize("question", LEANING)
def test_questions_that_lean_on_the_history(question):
    assert dangling_reference(question) is not None


@pytest.mark.parametrize("question", STANDING)
def test_questions_that_stand_alone_whatever_pronouns_they_hold(question):
    assert dangling_reference(question) is None


def test_the_subject_comes_from_the_last_question_that_stood_alone_and_what_followed():
    history = [Turn("user", "How did they move to structured logging?"), Turn("assistant", "..."),
               Turn("user", "who led it?"), Turn("assistant", "...")]
    assert subject_of(history) == "led move structured logging"
    switched = history + [Turn("user", "What is the on-call rotation of the payments team?"),
                          Turn("assistant", "A weekly rotation, handed over in Opsgenie on Mondays [1].")]
    assert subject_of(switched) == "call rotation payments team"
    leaning = follow_up(switched, "how long is that?")
    assert leaning.certain
    assert leaning.rewrite("how long is that?") == "how long is that? (about: call rotation payments team)"
    assert follow_up([], "why?").subject == "" and follow_up([], "What is PgBouncer?") is None
    assert not follow_up(history, "What is PgBouncer?").certain  # short: the search decides


READ_AS = [
    # the earlier question names its subject as a phrase: it stands in for "that" or "it"
    ("How long did the move to structured logging take?", "and how long did that take?",
     "How long did the move to structured logging take?"),
    ("Tell me about structured logging.", "who led it?", "Who led structured logging?"),
    ("What does the NTF-QUEUE-DEPTH alert on notifications-worker mean?", "how do I fix it?",
     "How do I fix the NTF-QUEUE-DEPTH alert on notifications-worker?"),
    # otherwise the follow-up goes after the question it follows, in that question's own words
    ("How long did the move to structured logging take?", "what about the database?",
     "How long did the move to structured logging take, and what about the database?"),
    ("How did they move to structured logging?", "and how long did that take?",
     "How did they move to structured logging, and how long did that take?"),
    ("How much of parental leave is paid at full salary?", "does that apply if we adopt?",
     "How much of parental leave is paid at full salary, and does that apply if we adopt?"),
    ("What does the internal developer portal bring together?", "how long did that take to build?",
     "What does the internal developer portal bring together, and how long did that take to build?"),
    ("What's the hotel cap for business trips in Europe?", "and in Paris?",
     "What's the hotel cap for business trips in Europe, and in Paris?"),
    ("How did they move to structured logging?", "But why?", "How did they move to structured logging, but why?"),
]


@pytest.mark.parametrize(("earlier", "question", "read"), READ_AS)
def test_a_rule_rewrite_reads_as_a_sentence_in_the_earlier_questions_words(earlier, question, read):
    history = [Turn("user", earlier), Turn("assistant", "It took two weeks [1].")]
    leaning = follow_up(history, question)
    assert leaning is not None and leaning.subject
    assert read_as(history, question, leaning.reference) == read
    note = rewrite_note(question, leaning.rewrite(question), read)
    assert note == f"Read as: {read}" and "(about:" not in note  # never the rule's keywords...
    assert leaning.subject not in note or leaning.subject in earlier.lower()  # ...unless the user wrote them


def test_the_earlier_question_is_the_last_one_asked_in_full():
    history = [Turn("user", "What do on-call engineers get paid?"), Turn("assistant", "..."),
               Turn("user", "what about pages in the middle of the night?"), Turn("assistant", "..."),
               Turn("user", "is there a cap?"), Turn("assistant", "...")]
    assert read_as(history, "what about over Christmas?", "") == (
        "What do on-call engineers get paid, and what about over Christmas?")
    assert read_as([], "why?", "") == "why?"


def test_the_read_as_line_shows_the_llms_rewrite_and_never_the_rules_keywords():
    asked, rule = "and how long did that take?", "and how long did that take? (about: move structured logging)"
    llm = "How long did the move to structured logging take?"
    assert rewrite_note(asked, llm, llm) == f"Read as: {llm}"
    assert rewrite_note(asked, llm) == f"Read as: {llm}"  # an answer stored before read_as: the LLM's sentence
    assert rewrite_note(asked, rule) == "Read as a follow-up to the question before it"  # no keywords
    assert rewrite_note(asked, asked, asked) is None and rewrite_note(asked, "", None) is None
    assert rewrite_note(asked, llm, "x" * 300).endswith("...") and len(rewrite_note(asked, llm, "x" * 300)) < 260


def test_a_models_rewrite_is_used_only_as_a_question_naming_the_subject():
    subject = "move structured logging"
    assert usable_rewrite("How long did the move to structured logging take?", subject)
    assert not usable_rewrite("I'm sorry, I cannot help with that.", subject)
    assert not usable_rewrite("NOT IN THE CASE STUDIES", subject)
    assert not usable_rewrite("The migration took two weeks.", subject)  # an answer, not a question
    assert not usable_rewrite("How long did the database upgrade take?", subject)  # another subject


def test_passages_speak_of_a_subject_by_the_words_any_of_them_holds():
    passages = ["Our cost optimization effort started with right-sizing.", "Three months later we were right.",
                "The costs of cloud hosting fell."]
    assert speaks_of("cut cloud costs", passages) == [True, False, True]  # half of "cloud" and "cost"
    assert speaks_of("cloud hosting costs", passages) == [False, False, True]
    assert speaks_of("optimizing sourdough", passages) == [True, False, False]  # nobody has "sourdough"
    assert speaks_of("sourdough", passages) == [False, False, False]


def test_a_follow_up_with_nothing_to_refer_to_asks_what_it_means(shipped_index, monkeypatch, capsys):
    monkeypatch.setenv("RAG_INDEX_DIR", str(shipped_index))
    assert main(["ask", "and how long did that take?", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["needs_clarification"] is True and data["citations"] == [] and data["abstained"] is False
    assert data["answer"].startswith('What does "that" refer to in "and how long did that take?"?')


def test_a_short_question_is_read_as_a_follow_up_only_when_that_finds_closer_passages(shipped):
    history = [("user", "How did they move to structured logging?"), ("assistant", "It paid off [1].")]
    assert shipped.ask("What is PgBouncer?", history=history).standalone_question == "What is PgBouncer?"
    answer = shipped.ask("who did the work?", history=history)
    assert answer.standalone_question == "who did the work? (about: move structured logging)"
    assert answer.read_as == "How did they move to structured logging, and who did the work?"


def test_a_self_contained_question_with_that_is_not_rewritten(shipped):
    history = [("user", "How did they cut cloud costs?"), ("assistant", "By right-sizing instances [1].")]
    question = "Which tool did the team adopt that fixed the database running out of connections?"
    answer = shipped.ask(question, history=history)
    assert answer.standalone_question == question and "PgBouncer" in answer.text


def test_ask_batch_replays_a_conversation_from_json_lines(shipped_index, monkeypatch, capsys):
    monkeypatch.setenv("RAG_INDEX_DIR", str(shipped_index))
    lines = [json.dumps({"question": "and how long did that take?",
                         "history": [["user", "How did they move to structured logging?"],
                                     ["assistant", "It was the highest-ROI investment [1]."]]}),
             "How much notice do API consumers get before a breaking change?",
             json.dumps({"question": "why?", "history": "not a list"})]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["ask", "--batch", "-"]) == 2  # the bad line fails alone
    follow, plain, bad = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert "two weeks" in follow["answer"] and "structured logging" in follow["standalone_question"]
    assert follow["read_as"] == "How did they move to structured logging, and how long did that take?"
    assert plain["read_as"] == plain["question"]  # a question that stood alone reads as asked
    assert plain["abstained"] is False and "twelve weeks" in plain["answer"]
    assert "history" in bad["error"] and "[[role, text]" not in bad.get("answer", "")


def test_eval_replays_a_conversation_file_turn_by_turn(shipped_index, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("RAG_INDEX_DIR", str(shipped_index))
    title = "Building Resilient Systems with Desktop App Frameworks and Remix"
    turns = [{"question": "How did they move to structured logging?", "gold_titles": [title], "answers": ["JSON"],
              "kind": "standalone", "subject": ["structured", "logging"]},
             {"question": "and how long did that take?", "gold_titles": [title], "answers": ["two weeks"],
              "kind": "followup", "subject": ["logging"]}]
    path = tmp_path / "conversations.jsonl"
    path.write_text(json.dumps({"turns": turns}) + "\n" + json.dumps({"turns": [
        {"question": "why?", "kind": "dangling", "answers": [], "gold_titles": []}]}) + "\n")
    assert main(["eval", str(path), "--k", "5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["conversations"]
    assert report["turns"] == 3 and report["subject_kept"] == 1.0 and report["followup_answer_in_answer"] == 1.0
    assert report["hit@k"] == 1.0
    assert report["dangling_clarified"] == 1.0 and report["left_alone"] == 1.0
    assert main(["eval", str(path), "--baseline"]) == 2  # baselines answer no follow-ups


@pytest.mark.slow
@pytest.mark.parametrize("name, corpus", [("case_studies", None), ("wiki", DATA / "eval_corpus")])
def test_multi_turn_gates(name, corpus, shipped_index, monkeypatch, capsys):
    """Figures of the run named in the README (rule rewrites, extractive answers) less a small margin."""
    monkeypatch.setenv("RAG_INDEX_DIR", str(shipped_index))
    extra = ["--corpus", str(corpus)] if corpus else []
    assert main(["eval", str(DATA / f"conversations_{name}.jsonl"), "--k", "5", "--json", *extra]) == 0
    report = json.loads(capsys.readouterr().out)["conversations"]
    assert report["turns"] >= 85
    assert report["dangling_clarified"] == 1.0 and report["clarified_wrongly"] == 0.0
    assert report["left_alone"] >= 0.95 and report["hit@k"] >= {"case_studies": 0.95, "wiki": 0.93}[name]
    # The reading model, with the sentence after its best one (README): follow-ups hold the answer in 0.923 of
    # the case-study turns and 0.672 of the wiki's; the wiki abstains on a few more (0.054).
    assert report["false_abstention_rate"] <= {"case_studies": 0.04, "wiki": 0.08}[name]
    assert report["followup_answer_in_answer"] >= {"case_studies": 0.89, "wiki": 0.64}[name]
    assert report["subject_kept"] >= {"case_studies": 0.56, "wiki": 0.6}[name]
    # A follow-up asking for a version, a name or a person no post holds abstains: 0.833 of the case studies'
    # (0.5 before the kind asked for was read with the model), 0.25 of the wiki's.
    assert report["followup_oos_abstained"] >= {"case_studies": 0.75, "wiki": 0.25}[name]
