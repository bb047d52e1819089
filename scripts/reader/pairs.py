"""Build the reading model's training pairs from ../shared/train/ (only sources its README marks "ship").

    python scripts/reader/pairs.py --train-dir ../shared/train --out ~/reader-work/pairs

Writes train.jsonl and dev.jsonl: {"task": "read"|"verify", "a", "b", "label": 0/1, "source", "group"}.
Dev holds whole SQuAD articles (every 20th title) and 1 in 20 rows of every other source, chosen by a hash:
never trained on. Seeded and deterministic. The pair texts come from rag.answer.reader, the same functions
the product scores with.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import random
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from rag.answer.reader import read_pair, verify_pair
from rag.text import STOPWORDS, sentence_spans

# Sources the shared README marks "ship", with their licences (for the model card).
SHIP = {
    "qa/squad_v1.1_train.jsonl.gz": "CC BY-SA 4.0",
    "nli/snli_dev_test.jsonl.gz": "CC BY-SA 4.0",
    "nli/dialfact_testsmall.jsonl.gz": "BSD-3-Clause",
    "halluc/begin.jsonl.gz": "CC BY 4.0 (TopicalChat rows CDLA-Sharing-1.0)",
    "halluc/frank.jsonl.gz": "MIT",
    "halluc/faithdial_audit.jsonl.gz": "MIT",
    "halluc/halueval_qa_gen.jsonl.gz": "MIT",
    "halluc/summac_factcc.jsonl.gz": "BSD-3-Clause (SummaC repo Apache-2.0)",
    "halluc/summac_xsumfaith.jsonl.gz": "CC BY 4.0 (SummaC repo Apache-2.0)",
    "halluc/summac_summeval.jsonl.gz": "MIT (SummaC repo Apache-2.0)",
}
_WORD = re.compile(r"[A-Za-z0-9]+")
_NUMBER = re.compile(r"\b\d[\d,]*(?:\.\d+)?\b")
_AUX = re.compile(r"\b(is|was|are|were|has|have|had|can|will|could|would|should|does|did)\b")
_VERB_PAST = re.compile(r"\b([a-z]{3,}ed)\b")
EVIDENCE_WORDS = 90


def rows(path: Path) -> Iterator[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def words(text: str) -> set[str]:
    return {w for w in (m.lower() for m in _WORD.findall(text)) if w not in STOPWORDS}


def in_dev(key: str, share: int = 20) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % share == 0


def sentences(text: str) -> list[tuple[int, int, str]]:
    return [(s, e, text[s:e]) for s, e in sentence_spans(text)]


def ranked_by_overlap(query: set[str], candidates: list[str], idf: dict[str, float]) -> list[int]:
    scores = [sum(idf.get(w, 1.0) for w in query & words(c)) for c in candidates]
    return sorted(range(len(candidates)), key=lambda i: -scores[i])


def evidence_for(claim: str, source: str, limit: int = EVIDENCE_WORDS) -> str:
    """The source's sentences that share most words with the claim, in their order, within `limit` words."""
    units = [t for _, _, t in sentences(source)] or [source]
    if sum(len(u.split()) for u in units) <= limit:
        return " ".join(units)
    idf = _idf([words(u) for u in units])
    chosen: list[int] = []
    total = 0
    for i in ranked_by_overlap(words(claim), units, idf):
        n = len(units[i].split())
        if total + n > limit and chosen:
            continue
        chosen.append(i)
        total += n
        if total >= limit * 0.7 or len(chosen) == 3:
            break
    return " ".join(units[i] for i in sorted(chosen))


def _idf(docs: list[set[str]]) -> dict[str, float]:
    counts = Counter(w for d in docs for w in d)
    return {w: math.log(1 + len(docs) / c) for w, c in counts.items()}


def pair(task: str, a_b: tuple[str, str], label: int, source: str, group: str) -> dict:
    return {"task": task, "a": a_b[0], "b": a_b[1], "label": label, "source": source, "group": group}


# ---------------------------------------------------------------- SQuAD: reader pairs and verifier perturbations

class Article:
    def __init__(self, record: dict) -> None:
        self.title = record["title"].replace("_", " ")
        self.paragraphs = [p["context"] for p in record["paragraphs"]]
        self.sentences = [sentences(p) for p in self.paragraphs]
        self.questions = [(pi, qa) for pi, p in enumerate(record["paragraphs"]) for qa in p["qas"]]
        flat = [t for para in self.sentences for _, _, t in para]
        self.idf = _idf([words(t) for t in flat])
        self.answers = sorted({a["text"] for _, qa in self.questions for a in qa["answers"]})

    def answer_sentence(self, pi: int, qa: dict) -> int | None:
        start = qa["answer_starts_in_context"][0]
        end = start + len(qa["answers"][0]["text"])
        for i, (s, e, _) in enumerate(self.sentences[pi]):
            if s <= start and end <= e:
                return i
        return None

    def context(self, pi: int, si: int) -> str:
        previous = self.sentences[pi][si - 1][2] if si > 0 else ""
        return f"{self.title}. {previous}".strip()


def squad_pairs(article: Article, rng: random.Random, other: Article, read_share: float,
                verify_share: float, group: str) -> Iterator[dict]:
    for pi, qa in article.questions:
        si = article.answer_sentence(pi, qa)
        if si is None:
            continue
        answer = qa["answers"][0]["text"]
        if rng.random() < read_share:
            yield from _read_pairs(article, rng, other, pi, si, qa["question"], answer, group)
        if rng.random() < verify_share:
            made = _verify_pair(article, rng, pi, si, qa)
            if made:
                yield pair("verify", made[0], made[1], f"squad:{made[2]}", group)


def _read_pairs(article: Article, rng: random.Random, other: Article, pi: int, si: int, question: str,
                answer: str, group: str) -> Iterator[dict]:
    para = article.sentences[pi]
    yield pair("read", read_pair(question, para[si][2], article.context(pi, si)), 1, "squad:answer", group)
    lowered = answer.lower()
    same = [i for i in range(len(para)) if i != si and lowered not in para[i][2].lower()]
    if same:  # the same paragraph's nearest other sentence: the hardest negative there is
        i = ranked_by_overlap(words(question), [para[j][2] for j in same], article.idf)[0]
        yield pair("read", read_pair(question, para[same[i]][2], article.context(pi, same[i])), 0,
                   "squad:same-paragraph", group)
    near = [(pj, j) for pj, p in enumerate(article.sentences) if pj != pi for j in range(len(p))
            if lowered not in p[j][2].lower()]
    if near:  # the other paragraphs' best match by shared words: a near miss that retrieval would offer
        texts = [article.sentences[pj][j][2] for pj, j in near]
        pj, j = near[ranked_by_overlap(words(question), texts, article.idf)[0]]
        yield pair("read", read_pair(question, article.sentences[pj][j][2], article.context(pj, j)), 0,
                   "squad:near-miss", group)
    if rng.random() < 0.3 and other.sentences:  # another article: what an unanswerable question meets
        pj = rng.randrange(len(other.paragraphs))
        if other.sentences[pj]:
            j = rng.randrange(len(other.sentences[pj]))
            yield pair("read", read_pair(question, other.sentences[pj][j][2], other.context(pj, j)), 0,
                       "squad:other-article", group)


def _verify_pair(article: Article, rng: random.Random, pi: int, si: int, qa: dict
                 ) -> tuple[tuple[str, str], int, str] | None:
    para = article.sentences[pi]
    sentence, answer = para[si][2], qa["answers"][0]["text"]
    evidence = _window(para, si, rng)
    kind = rng.choice(["copy", "clause", "trim", "qa", "qa-swap", "swap", "number", "negate", "antonym", "name",
                       "other"])
    claim: str | None = None
    label = 0
    if kind == "copy":
        claim, label = sentence, 1
    elif kind == "clause":
        claim, label = _clause_with(sentence, answer) or sentence, 1
    elif kind == "trim":  # reworded by dropping asides: still supported, no longer verbatim
        claim, label = _trim(sentence, answer), 1
    elif kind == "qa":  # the question and its answer: the claim in the asker's words, as an LLM answers
        claim, label = f"{qa['question'].strip()} {answer}.", 1
    elif kind == "qa-swap":
        swapped = _swap_answer(answer, answer, article.answers, rng)
        claim = f"{qa['question'].strip()} {swapped}." if swapped and swapped not in evidence else None
    elif kind == "swap":
        claim = _swap_answer(sentence, answer, article.answers, rng)
    elif kind == "number":
        claim = _change_number(sentence, rng)
    elif kind == "negate":
        claim = _negate(sentence)
    elif kind == "antonym":
        claim = _antonym(sentence)
    elif kind == "name":
        claim = _swap_name(sentence, article, rng)
    else:
        others = [t for pj, p in enumerate(article.sentences) if pj != pi for _, _, t in p]
        if others:
            claim = others[ranked_by_overlap(words(sentence), others, article.idf)[0]]
    if not claim:
        return None
    return verify_pair(claim, evidence), label, kind


def _window(para: list[tuple[int, int, str]], si: int, rng: random.Random) -> str:
    """Evidence shaped like the verifier's: the sentence alone, with one neighbour, or with both."""
    start, end = rng.choice([(si, si + 1), (si - 1, si + 1), (si, si + 2), (si - 1, si + 2)])
    window = " ".join(t for _, _, t in para[max(0, start):end])
    return window if len(window.split()) <= EVIDENCE_WORDS else para[si][2]


_ASIDE = re.compile(r"\s*\([^)]*\)|,\s+(?:which|who|where)\b[^,]*,")


def _trim(sentence: str, answer: str) -> str | None:
    trimmed = _ASIDE.sub("", sentence)
    if trimmed != sentence and answer in trimmed:
        return trimmed
    first, _, rest = sentence.partition(", ")  # "In 1990, the city grew." -> "The city grew."
    if rest and len(first.split()) <= 5 and answer in rest and len(rest.split()) >= 6:
        return rest[:1].upper() + rest[1:]
    return None


_ANTONYMS = [("increased", "decreased"), ("more", "less"), ("higher", "lower"), ("before", "after"),
             ("first", "last"), ("largest", "smallest"), ("large", "small"), ("early", "late"), ("won", "lost"),
             ("north", "south"), ("east", "west"), ("rise", "fall"), ("rose", "fell"), ("best", "worst"),
             ("better", "worse"), ("success", "failure"), ("successful", "unsuccessful"), ("allowed", "banned"),
             ("supported", "opposed"), ("accepted", "rejected"), ("major", "minor"), ("strong", "weak"),
             ("older", "younger"), ("oldest", "youngest"), ("long", "short"), ("maximum", "minimum"),
             ("inside", "outside"), ("above", "below"), ("public", "private"), ("always", "never"),
             ("eliminated", "caused"), ("solved", "worsened"), ("faster", "slower"), ("cheaper", "costlier"),
             ("easier", "harder"), ("gained", "lost"), ("began", "ended"), ("same", "different")]
_ANTONYM = {a: b for pair in _ANTONYMS for a, b in (pair, pair[::-1])}
_NAME = re.compile(r"(?<!^)(?<![.!?] )\b[A-Z][a-z]+(?: [A-Z][a-z]+)*")


def _antonym(sentence: str) -> str | None:
    found = [m for m in re.finditer(r"\b[a-z]+\b", sentence) if m.group() in _ANTONYM]
    if not found:
        return _negate(sentence)
    m = found[0]
    return sentence[:m.start()] + _ANTONYM[m.group()] + sentence[m.end():]


def _swap_name(sentence: str, article: Article, rng: random.Random) -> str | None:
    """A name in the sentence replaced by another name of the same article: the words stay, the fact changes."""
    names = [m for m in _NAME.finditer(sentence)]
    if not names:
        return None
    m = rng.choice(names)
    pool = sorted({n.group() for p in article.sentences for _, _, t in p for n in _NAME.finditer(t)}
                  - {n.group() for n in names})
    if not pool:
        return None
    return sentence[:m.start()] + rng.choice(pool) + sentence[m.end():]


def _clause_with(sentence: str, answer: str) -> str | None:
    """The comma-delimited part of the sentence that holds the answer, when it reads as a claim on its own."""
    for part in re.split(r",\s+|;\s+", sentence):
        if answer in part and len(part.split()) >= 6 and part != sentence:
            return part.rstrip(".") + "."
    return None


def _same_kind(a: str, b: str) -> bool:
    has_digit = any(c.isdigit() for c in a)
    if has_digit != any(c.isdigit() for c in b):
        return False
    return a[:1].isupper() == b[:1].isupper() and abs(len(a.split()) - len(b.split())) <= 2


def _swap_answer(sentence: str, answer: str, answers: list[str], rng: random.Random) -> str | None:
    options = [a for a in answers if _same_kind(answer, a) and a.lower() not in sentence.lower()
               and answer.lower() not in a.lower()]
    if not options:
        return None
    return sentence.replace(answer, rng.choice(options), 1)


def _change_number(sentence: str, rng: random.Random) -> str | None:
    found = list(_NUMBER.finditer(sentence))
    if not found:
        return None
    m = rng.choice(found)
    digits = m.group().replace(",", "")
    try:
        value = float(digits)
    except ValueError:
        return None
    if "." in digits:
        new = f"{value * rng.choice([0.5, 1.5, 2, 3]):.{len(digits.split('.')[1])}f}"
    elif 1000 <= value <= 2100 and len(digits) == 4:  # a year
        new = str(int(value) + rng.choice([-30, -11, -3, -1, 1, 2, 7, 20]))
    else:
        new = str(max(0, int(value) + rng.choice([-1, 1]) * max(1, int(value * rng.choice([0.1, 0.5, 1, 2])))))
    if new == digits:
        return None
    return sentence[:m.start()] + new + sentence[m.end():]


def _negate(sentence: str) -> str | None:
    m = _AUX.search(sentence)
    if m:
        return sentence[:m.end()] + " not" + sentence[m.end():]
    m = _VERB_PAST.search(sentence)
    if m:
        return sentence[:m.start()] + "never " + m.group() + sentence[m.end():]
    return None


# ---------------------------------------------------------------- NLI and human-labelled hallucinations

def nli_pairs(path: Path, name: str) -> Iterator[dict]:
    for i, r in enumerate(rows(path)):
        label = 1 if r["label"] == "entailment" else 0
        yield pair("verify", verify_pair(r["hypothesis"], evidence_for(r["hypothesis"], r["premise"])), label,
                   name, f"{name}:{i}")


def halluc_pairs(path: Path, name: str) -> Iterator[dict]:
    for i, r in enumerate(rows(path)):
        claim = r["claim"].strip()
        question = (r.get("question") or "").strip()
        if question and len(claim.split()) < 8:  # a short QA answer reads as a claim only with its question
            claim = f"{question} {claim}"
        label = 1 if r["label"] == "supported" else 0
        yield pair("verify", verify_pair(claim, evidence_for(claim, r["source_text"])), label, name, f"{name}:{i}")


def write_dev_corpus(articles: list[Article], out: Path, per_article: int, seed: int) -> None:
    """The held-out articles as a `rag eval` corpus (one Markdown file each) with some of their questions:
    for tuning the answerer's settings on text the model never saw, instead of on ../shared/eval/."""
    corpus = out / "dev_corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with open(out / "dev_questions.jsonl", "w") as questions:
        for article in articles:
            name = re.sub(r"[^A-Za-z0-9]+", "_", article.title).strip("_") + ".md"
            (corpus / name).write_text(f"# {article.title}\n\n" + "\n\n".join(article.paragraphs) + "\n")
            for _, qa in rng.sample(article.questions, min(per_article, len(article.questions))):
                answers = sorted({a["text"] for a in qa["answers"]})
                questions.write(json.dumps({"question": qa["question"], "gold_files": [name],
                                            "answers": answers}) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-dir", type=Path, default=Path("../shared/train"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--read-share", type=float, default=0.25, help="share of SQuAD questions made reader pairs")
    ap.add_argument("--verify-share", type=float, default=0.35, help="share of SQuAD questions perturbed")
    ap.add_argument("--other-share", type=float, default=1.0,
                    help="share of the NLI and human-labelled training rows kept (held-out rows are all kept)")
    ap.add_argument("--keep", type=int, default=0, help="shuffle the training pairs and keep this many (0: all)")
    ap.add_argument("--seed", type=int, default=28)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    with open(args.out / "train.jsonl", "w") as train, open(args.out / "dev.jsonl", "w") as dev:
        def emit(made: dict, held_out: bool) -> None:
            (dev if held_out else train).write(json.dumps(made) + "\n")
            counts[f"{'dev' if held_out else 'train'}\t{made['source']}\t{made['label']}"] += 1

        articles = [Article(r) for r in rows(args.train_dir / "qa/squad_v1.1_train.jsonl.gz")]
        titles = sorted(a.title for a in articles)
        dev_titles = set(titles[::20])
        write_dev_corpus([a for a in articles if a.title in dev_titles], args.out, 15, args.seed)
        for i, article in enumerate(articles):
            held_out = article.title in dev_titles
            share = 1.0 if held_out else 1.0  # dev gets the same mix as train
            for made in squad_pairs(article, rng, articles[(i + 7) % len(articles)], args.read_share * share,
                                    args.verify_share * share, f"squad:{article.title}"):
                emit(made, held_out)
        for rel in SHIP:
            if rel.startswith("qa/"):
                continue
            name = rel.split("/")[1].split(".")[0]
            make = nli_pairs if rel.startswith("nli/") else halluc_pairs
            for made in make(args.train_dir / rel, name):
                held_out = in_dev(made["group"])
                if held_out or rng.random() < args.other_share:
                    emit(made, held_out)
    if args.keep:  # a budget for a further stage: a random share of every kind
        lines = (args.out / "train.jsonl").read_text().splitlines(keepends=True)
        random.Random(args.seed).shuffle(lines)
        (args.out / "train.jsonl").write_text("".join(lines[:args.keep]))
        counts = Counter({k: v for k, v in counts.items() if not k.startswith("train")})
        for made in map(json.loads, lines[:args.keep]):
            counts[f"train\t{made['source']}\t{made['label']}"] += 1
    (args.out / "counts.tsv").write_text("".join(f"{k}\t{v}\n" for k, v in sorted(counts.items())))
    print("".join(f"{k}\t{v}\n" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
