"""The shipped reading model: loaded from the package with its checksum, and read with wherever the product
judges two texts together (which sentence answers, whether any does, follow-ups, verification with
RAG_VERIFIER_MODEL=reader)."""

from __future__ import annotations

import json
import shutil
import socket

import pytest

from rag import verify
from rag.answer.reader import BUNDLED, BUNDLED_DIR, load_reader
from rag.cli import main
from rag.errors import ReaderUnavailable
from rag.types import NOT_ANSWERED

POOLING = ("Database connection pooling was our biggest blind spot. Under normal load, direct connections worked "
           "fine. But during traffic spikes, the database would hit its connection limit and cascade failures "
           "across all services. A simple PgBouncer setup eliminated the issue entirely.")


def reading():
    """Settings that verify with the reading model (word overlap is the default verifier)."""
    from rag import Settings

    return Settings(verifier_model="reader")


@pytest.fixture
def model_copy(tmp_path):
    """A private copy of the bundled model folder that a test may damage or change."""
    folder = tmp_path / "reader"
    shutil.copytree(BUNDLED_DIR, folder)
    return folder


def test_the_bundled_model_loads_once_and_reads_both_tasks(tmp_path):
    model = load_reader(BUNDLED, tmp_path)
    assert load_reader(BUNDLED, tmp_path) is model
    answers = model.answers("Which connection pooler fixed the cascading failures?",
                            [("A simple PgBouncer setup eliminated the issue entirely.", "Cost Breakdown"),
                             ("Under normal load, direct connections worked fine.", "Cost Breakdown")])
    assert answers[0] > model.answer_threshold and answers[0] > answers[1]
    supported = model.scores([("PgBouncer fixed the connection problem.", POOLING)])[:, 0]
    assert supported.shape == (1,)


def test_a_flipped_byte_is_refused_with_one_line(model_copy, monkeypatch, capsys, shipped_index):
    from rag.answer import reader

    data = bytearray((model_copy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (model_copy / "model.onnx").write_bytes(bytes(data))
    monkeypatch.setattr(reader, "BUNDLED_DIR", model_copy)
    load_reader.cache_clear()
    try:
        with pytest.raises(ReaderUnavailable, match="fails its SHA-256 check"):
            load_reader(BUNDLED, model_copy)
        monkeypatch.setenv("RAG_INDEX_DIR", str(shipped_index))
        assert main(["ask", "How did they cut cloud costs?"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "SHA-256" in err and "RAG_READER_MODEL" in err
    finally:
        load_reader.cache_clear()


def test_a_contradiction_that_reuses_the_passages_words_is_removed():
    # The model's P with the claim's figures: the words are all the passage's, the figures are not.
    evidence = POOLING + " The migration took one engineer two weeks."
    sentence = verify("The migration took three engineers six months [1].", [evidence], reading()).sentences[0]
    assert sentence.verdict == "contradicted" and "one engineer" in sentence.reason


def test_the_questions_words_are_the_askers_not_an_invention_of_the_answer():
    question = "Why are my tomato seedlings leggy and pale despite daily watering?"
    passage = ("Seedlings stretch toward the light when it is too weak. Move them under a grow lamp a few inches above "
               "the leaves.")
    answer = "Your tomato seedlings may be leggy and pale despite daily watering because the light is too weak [1]."
    assert verify(answer, [passage], reading(), question=question).sentences[0].supported
    assert not verify(answer, [passage], reading()).sentences[0].supported  # without the question: words no one said


@pytest.mark.parametrize("claim", [
    "PgBouncer did not eliminate the issue.", "Connection pooling was never a blind spot.",
    "A simple PgBouncer setup caused the issue.",
])
def test_a_claim_that_says_the_passage_the_other_way_round_is_removed(claim):
    # The model reads "did not eliminate" and "caused" as supported by "eliminated": the reversal check decides.
    sentence = verify(f"{claim} [1]", [POOLING], reading()).sentences[0]
    assert sentence.verdict == "contradicted", (claim, sentence.score)


@pytest.mark.parametrize("claim", [
    "Adding PgBouncer solved the problem.",
    "Traffic spikes pushed the database past its connection limit.",
    "Connection pooling was the team's biggest blind spot.",
])
def test_a_faithful_paraphrase_is_kept(claim):
    sentence = verify(f"{claim} [1]", [POOLING], reading()).sentences[0]
    assert sentence.supported, (claim, sentence.score)


def test_the_pooler_question_names_pgbouncer(shipped):
    answer = shipped.ask("Which connection pooler fixed the cascading failures?")
    assert "PgBouncer" in answer.text and not answer.abstained


def test_the_passage_search_ranks_first_may_answer_though_its_cosine_is_low(shipped):
    # Its words carry it first (cosine 0.22), under 0.8 of a mob-programming passage's cosine (0.38).
    answer = shipped.ask("What hypothesis did the AI agent orchestration project start with?")
    assert "costing us more in maintenance time" in answer.text and "mob programming" not in answer.text
    # Only when it holds the likeliest sentence: the contract-testing passage ranks first here, under the floor.
    answer = shipped.ask("What kind of load pattern did the test environment generate when they measured "
                         "performance?")
    assert "uniform request distributions" in answer.text and "upfront cost" not in answer.text


def test_a_sentence_that_restates_the_question_brings_the_one_that_answers_it(shipped):
    # "We invested heavily in contract testing between our microservices." is read as the likeliest answer;
    # the reason is the next sentence.
    answer = shipped.ask("Why did the team invest in contract testing between microservices?")
    assert "40% of our production incidents" in answer.text
    one = shipped.configured(answer_max_sentences=1).ask("Why did the team invest in contract testing between "
                                                          "microservices?")
    assert one.text.count("[1]") == 1 and "[2]" not in one.text  # the setting still caps the answer
    # A why-question's restatement brings the next sentence however the model reads it (P 0.02 here).
    assert "bursty, correlated behavior" in shipped.ask(
        "Why did the initial benchmark numbers fall apart in production?").text
    # One that points back ("These unglamorous changes saved more...") brings the sentence before it.
    assert "right-sizing instances" in shipped.ask(
        "What were the boring cost changes that saved more than any architectural redesign?").text


def test_the_cloud_costs_follow_up_does_not_quote_another_project(shipped):
    """No post says how long cutting cloud costs took; "Three months later, the data confirmed we were
    right" is about a migration in another section. The follow-up abstains or speaks of costs."""
    history = [("user", "How did they cut cloud costs?"),
               ("assistant", "Our cost optimization effort started with the boring stuff: right-sizing instances [1].")]
    answer = shipped.ask("and how long did that take?", history=history)
    assert "cloud costs" in answer.standalone_question
    assert "Three months later" not in answer.text
    assert answer.abstained or "cost" in answer.text.lower()


@pytest.mark.parametrize("history, follow_up", [
    ("Which tool stopped the database from hitting its connection limit during traffic spikes?",
     "which version did they end up running?"),  # "Our API versioning strategy evolved..." holds no version
    ("How long was the rollout in the Angular authentication post?", "who led it?"),
])
def test_a_follow_up_asking_for_what_no_post_holds_abstains(shipped, history, follow_up):
    answer = shipped.ask(follow_up, history=[("user", history), ("assistant", shipped.ask(history).text)])
    assert answer.abstained, answer.text
    # Asked of what the posts do hold, the same kinds are answered.
    assert not shipped.ask("Who built the internal developer portal?").abstained


def test_a_near_miss_abstains_and_lists_the_near_misses_under_a_stricter_threshold(shipped_index):
    # At the shipped threshold (99.7% recall on held-out SQuAD) this near miss is still answered: README.
    from rag import Assistant, Settings

    strict = Assistant(Settings(index_dir=shipped_index, answer_threshold=0.2))
    answer = strict.ask("What pool mode did the PgBouncer setup use?")
    assert answer.abstained and answer.abstain_reason == NOT_ANSWERED
    assert answer.near_misses and "PgBouncer" in answer.near_misses[0].passage.text
    assert not strict.ask("Which connection pooler fixed the cascading failures?").abstained


def test_a_users_own_model_folder_is_honoured(model_copy, shipped_index, monkeypatch):
    from rag import Assistant, Settings

    meta = json.loads((model_copy / "meta.json").read_text())
    (model_copy / "meta.json").write_text(json.dumps({**meta, "answer_threshold": 0.9999}))
    assistant = Assistant(Settings(index_dir=shipped_index, reader_model=str(model_copy)))
    answer = assistant.ask("Which connection pooler fixed the cascading failures?")
    assert answer.abstained and answer.abstain_reason == NOT_ANSWERED


def test_overlap_stays_an_explicit_fallback(shipped_index):
    from rag import Assistant, Settings

    answer = Assistant(Settings(index_dir=shipped_index, reader_model="overlap")).ask(
        "How did they cut cloud costs?")
    assert not answer.abstained and answer.citations


def test_reading_needs_no_network(shipped, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    load_reader.cache_clear()
    try:
        assert "PgBouncer" in shipped.ask("Which connection pooler fixed the cascading failures?").text
    finally:
        load_reader.cache_clear()


@pytest.mark.parametrize("sentence, judged", [
    ("Based on the given passages, the migration took two weeks.", "The migration took two weeks."),
    ("According to passage 1, PgBouncer fixed it.", "PgBouncer fixed it."),
    ("Passage 2 mentions that the cluster costs four thousand dollars.", "The cluster costs four thousand dollars."),
    ("(Passage 1) 2. Heat the plastic with a hair dryer.", "Heat the plastic with a hair dryer."),
    ("The passages do not provide the team's salaries.", ""),
    ("I am unable to answer the question based on the given passages.", ""),
    ("The passages do not say it took 3 weeks.", "The passages do not say it took 3 weeks."),  # a figure: checked
    ("PgBouncer fixed the cascading failures.", "PgBouncer fixed the cascading failures."),
    ("To peel potatoes quickly, follow these steps: 1.", ""),  # a list's header, with its first number
    ("There are two types of amino acids: 1.", "There are two types of amino acids:"),  # a figure: checked
    ("Q: What are some uses for vinegar when it comes to dogs?", ""),  # a question states nothing
    ("**Kinetic energy:**", ""),  # Markdown headers
    ("### Potential energy", ""),
    ("Passage 3 does not provide any information on tracking who favorited your tweets.", ""),
    ("Unable to answer based on given passages.", ""),
    ("I hope this helps! Let me know if you have any further questions.", ""),
    ("This is described in passage 1 and passage 2.", ""),
    ("Passage 3 gives a method for whole heads, but it does not address how to roast single cloves.", ""),
    ("None of the passages explicitly state what the drawer is for.", ""),
    ("According to passage 1, the pump does not cover the basement.", "The pump does not cover the basement."),
    # Attribution inside the sentence, a citation in brackets, a connective or a list's label: no claim's words.
    ("Body fat: the passage states that too much fat can hide muscle.", "Body fat: too much fat can hide muscle."),
    ("Muscle is essential, as mentioned in the passage.", "Muscle is essential."),
    ("Draw the base, which is given as 7 inches in the passage.", "Draw the base, which is given as 7 inches."),
    ("Lack of muscle: according to the passages, muscle is essential.", "Lack of muscle: muscle is essential."),
    ("A stretched rubber band has elastic energy (Passage 2).", "A stretched rubber band has elastic energy."),
    ("Passage 2 is about rubber bands.", "The passage is about rubber bands."),  # the passage is the subject
    ("Additionally, goodwill helps a business stand out.", "Goodwill helps a business stand out."),
    ("Option 1: Install a recirculating pump.", "Install a recirculating pump."),
    # A figure restated in other units is the same figure; a wrong "conversion" stays a figure of the claim.
    ("Bake the ribs at 400°F (205°C) for 2 hours.", "Bake the ribs at 400°F for 2 hours."),
    ("The trail is 5 miles (8 km) long.", "The trail is 5 miles long."),
    ("The difference is 23 °F (12 °C).", "The difference is 23 °F (12 °C)."),
    ("12 students (30%) passed.", "12 students (30%) passed."),  # a share is no unit of 12
])
def test_only_the_claim_is_judged_not_the_lead_in_or_talk_about_the_sources(sentence, judged):
    from rag.answer.claims import checkable

    assert checkable(sentence) == judged


def test_each_item_of_a_list_is_judged_on_its_own():
    answer = ("What fixed the cascading failures:\n"
              "* Direct connections hit the database's connection limit during traffic spikes\n"
              "* A simple PgBouncer setup eliminated the issue entirely [1]\n"
              "* The team also doubled the database's memory to 64 GB")
    result = verify(answer, [POOLING], reading())
    assert [s.supported for s in result.sentences] == [True, True, True, False], result.sentences
    assert result.sentences[0].citations == ()  # the list's header states nothing
    assert "PgBouncer" in result.supported_answer and "64 GB" not in result.supported_answer


def test_a_claim_read_from_two_passages_cites_both():
    passages = ["The team moved every service to PgBouncer in March.",
                "After the move, p95 latency fell from 900 ms to 120 ms."]
    sentence = verify("After the move to PgBouncer, p95 latency fell from 900 ms to 120 ms.", passages,
                      reading()).sentences[0]
    assert sentence.supported and sentence.citations == (1, 2), sentence


def test_a_sentence_about_the_sources_is_kept_uncited_and_its_lead_in_is_not_judged():
    result = verify("Based on the passages, a simple PgBouncer setup eliminated the issue [1]. "
                    "The passages do not mention the team's budget.", [POOLING], reading())
    assert [s.supported for s in result.sentences] == [True, True]
    assert result.sentences[1].citations == ()
