"""Build (claim, evidence, label) training pairs for the claim verifier. Deterministic (seeded).

Writes data/synthetic.jsonl, data/nli.jsonl, data/ragtruth_train.jsonl, data/train_small.jsonl (first run)
and data/train.jsonl (everything, shuffled). Labels: 0 supported, 1 unsupported, 2 contradicted.

    python build_data.py [--synthetic N] [--nli N] [--small N]
"""
from __future__ import annotations

import argparse
import html
import json
import os
import random
import re
import subprocess
from collections import Counter
from pathlib import Path

from common import (
    CON,
    HERE,
    ROOT,
    SHARED,
    SUP,
    UNS,
    content_words,
    label_sentences,
    load_ragtruth,
    load_split,
    sentences,
    stem,
)
from evidence import candidates, split_passages

SEED = 14
DATA = HERE / "data"
MAIN = ROOT
CORPORA = {
    "case_studies": [MAIN / "corpus" / "case-studies.txt"],
    "eval_wiki": sorted((MAIN / "tests" / "data" / "eval_corpus").rglob("*.*")),
    "squad_articles": sorted((SHARED / "eval" / "squad_dev_subset" / "corpus").glob("*.md")),
}
# GitHub snapshots, fetched with the team's `fetch` tool (see DATA.md): RTE and an SNLI subset.
MIRROR = Path(os.environ.get("RAG_MIRROR", ROOT.parent / ".mirror"))
RTE_REPO = MIRROR / "Ji-Yishan+MIEC-FYP" / "repo"
SNLI_REPO = MIRROR / "Deltaus+sBiMPM" / "repo"


# ------------------------------------------------------------------------------------------ corpora

def _paragraphs(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="ignore")
    if path.suffix == ".html":
        text = re.sub(r"(?is)<(script|style|head)[^>]*>.*?</\1>", " ", text)
        text = re.sub(r"(?i)</?(p|h\d|li|ul|ol|tr|table|div|br)[^>]*>", "\n\n", text)
        text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    paras = []
    for block in re.split(r"\n\s*\n", text):
        block = " ".join(block.split())
        block = re.sub(r"\[note \d+\]|\[\d+\]", "", block).replace("`", "")
        if block.startswith("#") or block.startswith("Category:") or len(block.split()) < 8:
            continue
        block = block.lstrip("•-* ").strip()
        if len(re.findall(r"[.!?]", block)) == 0:
            continue
        paras.append(block)
    return paras


def load_corpora() -> list[dict]:
    """Unique paragraphs with their sentences, tagged by source."""
    seen = set()
    out = []
    for source, paths in CORPORA.items():
        for p in paths:
            for para in _paragraphs(p):
                if para in seen:
                    continue
                seen.add(para)
                sents = [s for s in sentences(para) if 5 <= len(s.split()) <= 60]
                if sents:
                    out.append({"source": source, "doc": str(p), "sentences": sents})
    return out


# ------------------------------------------------------------------------------------ perturbations

NUM_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
             "twelve", "fifteen", "twenty", "thirty", "forty", "fifty", "hundred"]
UNIT_GROUPS = [["seconds", "minutes", "hours", "days", "weeks", "months", "years"],
               ["second", "minute", "hour", "day", "week", "month", "year"],
               ["km", "miles", "metres", "m"], ["MB", "GB", "TB"], ["EUR", "USD", "GBP", "CAD"],
               ["ms", "seconds"], ["percent", "times"], ["daily", "weekly", "monthly", "yearly"],
               ["sprints", "quarters", "weeks"]]
ANTONYMS = [("increase", "decrease"), ("increased", "decreased"), ("increases", "decreases"),
            ("faster", "slower"), ("better", "worse"), ("best", "worst"), ("more", "less"),
            ("more", "fewer"), ("higher", "lower"), ("highest", "lowest"), ("improved", "worsened"),
            ("improve", "worsen"), ("rose", "fell"), ("larger", "smaller"), ("largest", "smallest"),
            ("easier", "harder"), ("success", "failure"), ("many", "few"), ("always", "never"),
            ("first", "last"), ("cheaper", "more expensive"), ("earlier", "later"), ("before", "after"),
            ("positive", "negative"), ("strong", "weak"), ("stronger", "weaker"), ("allowed", "forbidden"),
            ("required", "optional"), ("must", "need not"), ("north", "south"), ("east", "west"),
            ("northern", "southern"), ("eastern", "western"), ("upper", "lower"), ("inside", "outside"),
            ("above", "below"), ("maximum", "minimum"), ("most", "least"), ("dropped", "rose"),
            ("reduced", "increased"), ("gained", "lost"), ("won", "lost"), ("accepted", "rejected"),
            ("included", "excluded"), ("start", "end"), ("started", "ended"), ("simple", "complex"),
            ("eliminated", "introduced"), ("disappeared", "appeared"), ("helped", "hurt"),
            ("useful", "useless"), ("promising", "disappointing"), ("resisted", "welcomed"),
            ("large", "small"), ("long", "short"), ("old", "new"), ("older", "newer"), ("hot", "cold"),
            ("significant", "negligible"), ("dramatically", "barely"), ("succeeded", "failed"),
            ("with", "without"), ("can", "cannot"), ("same", "different"), ("high", "low"),
            ("private", "public"), ("internal", "external"), ("approved", "denied")]
ANTI = {}
for a, b in ANTONYMS:
    ANTI.setdefault(a, b)
    ANTI.setdefault(b, a)
SYNONYMS = {"dramatically": "sharply", "significantly": "considerably", "started": "began", "start": "begin",
            "eliminated": "removed", "dropped": "fell", "big": "large", "helped": "aided", "use": "employ",
            "used": "employed", "uses": "employs", "about": "roughly", "approximately": "about",
            "more than": "over", "requires": "needs", "required": "needed", "must": "has to",
            "quickly": "rapidly", "large": "big", "important": "key", "biggest": "largest",
            "replaced": "swapped out", "consumed": "took up", "built": "created", "allows": "lets",
            "because": "since", "however": "but", "begins": "starts", "ends": "finishes",
            "located": "situated", "known as": "called", "called": "named", "received": "got",
            "obtain": "get", "purchase": "buy", "purchased": "bought", "assist": "help", "show": "indicate",
            "shows": "indicates", "contains": "includes", "several": "multiple", "entire": "whole",
            "team": "group", "ensure": "make sure", "fix": "repair", "fixed": "repaired", "issue": "problem",
            "issues": "problems", "mistakes": "errors", "rapid": "fast", "difficult": "hard",
            "employees": "staff", "workers": "staff", "roughly": "about", "moved": "migrated"}
QUALIFIERS = {"dramatically", "significantly", "initially", "finally", "entirely", "really", "very", "truly",
              "simply", "just", "actually", "strictly", "gradually", "immediately", "explicitly", "carefully",
              "completely", "measurably", "heavily", "generally", "usually", "typically", "currently",
              "also", "still", "only", "single", "nearly", "almost", "conventionally", "distinctive",
              "especially", "particularly", "largely", "mostly", "often"}
META_PREFIX = ["According to the passage, ", "The text states that ", "Based on the passages, ",
               "The passages say that ", "As described, ", "According to the information provided, "]
FAB_SUFFIX = [" in 2019", " last year", ", according to the CEO", " across all regions",
              " for the third year in a row", ", which cost about $2 million", " because of new regulations",
              " within the first month", " in Europe", ", as a government study later confirmed",
              " by roughly 40%", " during the 1990s", ", making it the largest in the world",
              " after a major security breach", " in most US states", ", mainly for tax reasons",
              " with support from Google", " every Friday", " at no extra cost", " for children under 12"]
AUX = ["is", "are", "was", "were", "can", "could", "will", "would", "should", "has", "have", "had", "does",
       "do", "did"]
ENTITY_RE = re.compile(r"(?<!^)(?<![.!?] )\b([A-Z][a-z]+(?:[ -][A-Z][a-z]+)*|[A-Z]{2,}[a-z]*)\b")
NUM_RE = re.compile(r"(?<![\w.])(\$?)(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(%?)(?![\w])")


def _case_like(src: str, word: str) -> str:
    return word[:1].upper() + word[1:] if src[:1].isupper() else word


def _sub_word(text: str, old: str, new: str) -> str:
    return re.sub(rf"\b{re.escape(old)}\b", lambda m: _case_like(m.group(0), new), text, count=1,
                  flags=re.IGNORECASE)


_COMMON_FIRST = {"the", "a", "an", "it", "this", "that", "these", "those", "there", "we", "our", "they", "their",
                 "in", "on", "at", "for", "after", "before", "during", "when", "if", "as", "some", "most",
                 "many", "all", "each", "every", "its", "his", "her", "one", "two", "three", "other", "both",
                 "since", "although", "while", "by", "from", "with", "under", "over", "no", "not", "only"}


def _lower_first(s: str) -> str:
    first = s.split(" ", 1)[0]
    return s[0].lower() + s[1:] if first.lower() in _COMMON_FIRST else s


def _strip_end(s: str) -> str:
    return s.rstrip().rstrip(".!?")


def change_number(s: str, rnd: random.Random) -> str | None:
    nums = list(NUM_RE.finditer(s))
    words = [w for w in NUM_WORDS if re.search(rf"\b{w}\b", s, re.IGNORECASE)]
    if nums and (not words or rnd.random() < 0.6):
        m = rnd.choice(nums)
        raw = m.group(2).replace(",", "")
        val = float(raw)
        if 1800 <= val <= 2100 and "." not in raw:
            new = str(int(val) + rnd.choice([-12, -7, -3, -2, -1, 1, 2, 4, 9]))
        elif "." in raw:
            new = f"{val * rnd.choice([0.5, 1.5, 2, 3, 0.3]):.{len(raw.split('.')[1])}f}"
        else:
            iv = int(val)
            opts = {iv + 1, iv + 2, iv * 2, iv * 3, max(iv // 2, 1), iv + 10, iv * 10, max(iv - 1, 0)} - {iv}
            new = str(rnd.choice(sorted(opts)))
            if "," in m.group(2) and len(new) > 3:
                new = f"{int(new):,}"
        return s[: m.start(2)] + new + s[m.end(2):]
    if words:
        w = rnd.choice(words)
        return _sub_word(s, w, rnd.choice([x for x in NUM_WORDS if x != w]))
    return None


def change_unit(s: str, rnd: random.Random) -> str | None:
    opts = []
    for g in UNIT_GROUPS:
        for u in g:
            if re.search(rf"(?<=\d |\w )\b{re.escape(u)}\b", s):
                opts.append((u, [x for x in g if x != u]))
    if not opts:
        return None
    u, others = rnd.choice(opts)
    return re.sub(rf"\b{re.escape(u)}\b", rnd.choice(others), s, count=1)


def antonym(s: str, rnd: random.Random) -> str | None:
    toks = [w for w in re.findall(r"[A-Za-z]+", s) if w.lower() in ANTI]
    if not toks:
        return None
    w = rnd.choice(toks)
    return _sub_word(s, w, ANTI[w.lower()])


def negate(s: str, rnd: random.Random) -> str | None:
    if re.search(r"\b(not|never|no)\b|n't\b", s) and rnd.random() < 0.5:
        out = re.sub(r"\b(is|are|was|were|can|could|will|would|should|has|have|had|does|do|did) not\b", r"\1",
                     s, count=1)
        out = re.sub(r"\bcannot\b", "can", out, count=1)
        out = re.sub(r"\bnever\b", "always", out, count=1) if out == s else out
        out = re.sub(r"\b(\w+)n't\b", lambda m: {"wo": "will", "ca": "can"}.get(m.group(1), m.group(1)), out,
                     count=1) if out == s else out
        return out if out != s else None
    for m in re.finditer(r"\b(" + "|".join(AUX) + r")\b(?! not)", s):
        nxt = s[m.end():m.end() + 12]
        if m.group(1) in ("has", "have", "had") and not re.match(r" (been|\w+ed\b|\w+en\b)", nxt):
            continue
        return s[: m.end()] + " not" + s[m.end():]
    m = re.search(r"\b(\w{3,}ed)\b", s)
    if m and m.start() > 8:
        base = m.group(1)[:-2] if not m.group(1).endswith("ied") else m.group(1)[:-3] + "y"
        if base.endswith(("at", "iz", "ov", "ur", "at", "iv", "ag")):
            base += "e"
        return s[: m.start()] + "did not " + base + s[m.end():]
    return None


def swap_entity(s: str, ents: list[str], rnd: random.Random) -> str | None:
    mine = [m for m in ENTITY_RE.finditer(s) if m.group(0).lower() not in ("the", "a", "we", "our")]
    if not mine or not ents:
        return None
    m = rnd.choice(mine)
    cands = [e for e in rnd.sample(ents, min(30, len(ents))) if e != m.group(0) and e not in s]
    if not cands:
        return None
    return s[: m.start()] + cands[0] + s[m.end():]


def drop_qualifiers(s: str) -> str | None:
    out = re.sub(r"\s*\([^)]*\)", "", s)
    out = re.sub(r"\s*—[^—]*—", "", out)
    words = out.split(" ")
    words = [w for w in words if w.lower().strip(",") not in QUALIFIERS]
    out = " ".join(words).replace(" ,", ",")
    return out if out != s and len(out.split()) >= 5 else None


def sub_clause(s: str, rnd: random.Random) -> str | None:
    parts = [p.strip() for p in re.split(r"[;:—]|, (?:and|but|while|so|although|whereas) ", _strip_end(s))]
    parts = [re.sub(r"^(?:and|but|so|then|however|instead),? ", "", p) for p in parts]
    parts = [p for p in parts if len(p.split()) >= 5 and p[0].isalpha()
             and p.split()[0].lower() not in ("which", "who", "where", "with", "while", "whose", "including")]
    if len(parts) < 2:
        return None
    p = rnd.choice(parts)
    return p[0].upper() + p[1:] + "."


def paraphrase(s: str, rnd: random.Random) -> str | None:
    out = s
    keys = [k for k in SYNONYMS if re.search(rf"\b{re.escape(k)}\b", out, re.IGNORECASE)]
    rnd.shuffle(keys)
    for k in keys[:2]:
        out = _sub_word(out, k, SYNONYMS[k])
    # number format: digits <-> words, % <-> percent
    if rnd.random() < 0.5:
        out = re.sub(r"(\d)%", r"\1 percent", out, count=1)
    m = re.match(r"^(.{12,}?), (because|since|after|when|before|while) (.{12,})$", _strip_end(out))
    if m and rnd.random() < 0.6:
        out = f"{m.group(2).capitalize()} {_lower_first(m.group(3))}, {_lower_first(m.group(1))}."
    m = re.match(r"^(?:However|Instead|Still|Then|Finally|Sometimes|In short|Currently|Today), (.+)$", out)
    if m:
        out = m.group(1)[0].upper() + m.group(1)[1:]
    return out if out != s else None


# -------------------------------------------------------------------------------------- synthetic

def _window(sents: list[str], i: int, rnd: random.Random) -> str:
    r = rnd.random()
    if r < 0.45 or len(sents) == 1:
        return sents[i]
    if r < 0.75 and i + 1 < len(sents):
        return sents[i] + " " + sents[i + 1]
    if i > 0:
        return sents[i - 1] + " " + sents[i]
    return " ".join(sents[i:i + 2])


def build_synthetic(paras: list[dict], rnd: random.Random, n_target: int) -> list[dict]:
    ents = sorted({m.group(0) for p in paras for s in p["sentences"] for m in ENTITY_RE.finditer(s)})
    all_sents = [(pi, si, s) for pi, p in enumerate(paras) for si, s in enumerate(p["sentences"])]
    # inverted index for retrieved hard negatives
    index: dict[str, list[int]] = {}
    stems_of = []
    for k, (_, _, s) in enumerate(all_sents):
        st = {stem(w) for w in content_words(s)}
        stems_of.append(st)
        for w in st:
            index.setdefault(w, []).append(k)
    df = {w: len(v) for w, v in index.items()}

    def hard_negative(k: int) -> str | None:
        pi = all_sents[k][0]
        counts: Counter = Counter()
        for w in sorted(stems_of[k]):
            if df[w] > 200:
                continue
            for j in index[w]:
                if all_sents[j][0] != pi:
                    counts[j] += 1
        best = None
        for j, c in counts.most_common(10):
            ov = c / max(1, len(stems_of[k]))
            if 0.15 <= ov <= 0.6:
                best = j
                break
        return all_sents[best][2] if best is not None else None

    out = []
    order = list(range(len(all_sents)))
    rnd.shuffle(order)
    kinds_pos = ["identity", "qualifier_drop", "sub_clause", "paraphrase", "combine", "meta_prefix"]
    kinds_neg = ["number", "unit", "antonym", "negation", "entity", "added_fact", "fabricated",
                 "hard_negative", "other_passage"]
    neg_label = {"number": CON, "unit": CON, "antonym": CON, "negation": CON, "entity": CON,
                 "added_fact": UNS, "fabricated": UNS, "hard_negative": UNS, "other_passage": UNS}
    seen = set()
    for k in order * 8:
        if len(out) >= n_target:
            break
        if out and (out[-1]["claim"], out[-1]["evidence"]) in seen:
            out.pop()
        elif out:
            seen.add((out[-1]["claim"], out[-1]["evidence"]))
        pi, si, s = all_sents[k]
        sents = paras[pi]["sentences"]
        src = paras[pi]["source"]
        ev = _window(sents, si, rnd)
        if rnd.random() < 0.45:
            kind = rnd.choice(kinds_pos)
            claim = None
            if kind == "identity":
                claim = s
            elif kind == "qualifier_drop":
                claim = drop_qualifiers(s)
            elif kind == "sub_clause":
                claim = sub_clause(s, rnd)
            elif kind == "paraphrase":
                claim = paraphrase(s, rnd)
            elif kind == "meta_prefix":
                base = paraphrase(s, rnd) or s
                claim = rnd.choice(META_PREFIX) + _lower_first(base)
            elif kind == "combine" and si + 1 < len(sents):
                a, b = sub_clause(s, rnd) or s, sub_clause(sents[si + 1], rnd) or sents[si + 1]
                claim = f"{_strip_end(a)}, and {_lower_first(b)}"
                ev = s + " " + sents[si + 1]
            if claim:
                out.append({"claim": claim, "evidence": ev, "label": SUP, "kind": kind, "source": src})
        else:
            kind = rnd.choice(kinds_neg)
            claim = None
            base = s if rnd.random() < 0.6 else (paraphrase(s, rnd) or drop_qualifiers(s) or s)
            if kind == "number":
                claim = change_number(base, rnd)
            elif kind == "unit":
                claim = change_unit(base, rnd)
            elif kind == "antonym":
                claim = antonym(base, rnd)
            elif kind == "negation":
                claim = negate(base, rnd)
            elif kind == "entity":
                claim = swap_entity(base, ents, rnd)
            elif kind == "fabricated":
                claim = _strip_end(base) + rnd.choice(FAB_SUFFIX) + "."
            elif kind == "added_fact":
                o = all_sents[rnd.randrange(len(all_sents))]
                if o[0] != pi:
                    extra = sub_clause(o[2], rnd) or o[2]
                    claim = f"{_strip_end(base)}, and {_lower_first(extra)}"
            elif kind == "hard_negative":
                hn = hard_negative(k)
                if hn:
                    claim, ev = s, hn
            elif kind == "other_passage":
                o = all_sents[rnd.randrange(len(all_sents))]
                if o[0] != pi:
                    claim, ev = s, o[2]
            if claim and claim != s or (claim and kind in ("hard_negative", "other_passage")):
                out.append({"claim": claim, "evidence": ev, "label": neg_label[kind], "kind": kind,
                            "source": src})
    return out


# -------------------------------------------------------------------------------------------- NLI

def _git_show(repo: Path, path: str) -> str:
    return subprocess.run(["git", "--git-dir", str(repo / ".git") if (repo / ".git").exists() else str(repo),
                           "show", f"HEAD:{path}"], capture_output=True, text=True, check=True).stdout


def build_nli(rnd: random.Random, n_target: int) -> list[dict]:
    out = []
    for path in ("snli_1.0/snli_1.0_dev.jsonl", "snli_1.0/snli_1.0_test.jsonl"):
        for line in _git_show(SNLI_REPO, path).splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            lab = {"entailment": SUP, "neutral": UNS, "contradiction": CON}.get(r.get("gold_label"))
            if lab is not None:
                out.append({"claim": r["sentence2"], "evidence": r["sentence1"], "label": lab, "kind": "snli",
                            "source": "snli"})
    for line in _git_show(RTE_REPO, "RTE/train.tsv").splitlines()[1:]:
        f = line.split("\t")
        if len(f) >= 3 and f[2] in ("0", "1") and len(f[0].split()) <= 90:
            out.append({"claim": f[1], "evidence": f[0], "label": SUP if f[2] == "0" else UNS, "kind": "rte",
                        "source": "rte"})
    rnd.shuffle(out)
    # keep RTE (longer, news-like) preferentially: all RTE first, then SNLI
    rte = [r for r in out if r["kind"] == "rte"]
    snli = [r for r in out if r["kind"] == "snli"]
    n_rte = min(len(rte), int(n_target * 0.65))
    return rte[:n_rte] + snli[:n_target - n_rte]


# -------------------------------------------------------------------------------------- RAGTruth

def build_ragtruth(rnd: random.Random) -> list[dict]:
    """Train-part sentences. Clean -> supported with its top-1 candidate and the top-1+2 window; the same clean
    sentence with the best-matching sentence of ANOTHER question's passages -> unsupported (breaks the shortcut
    'sounds like a RAG answer -> supported'); hallucinated -> unsupported/contradicted with each candidate, x2."""
    split = load_split()
    train_ids = set(split["train_source_ids"])
    rows = [r for r in load_ragtruth() if r["source_id"] in train_ids]
    by_q = {}
    for r in rows:
        by_q.setdefault(r["source_id"], split_passages(r["passages"]))
    qids = sorted(by_q)
    out = []
    for row in rows:
        psents = by_q[row["source_id"]]
        others = [q for q in qids if q != row["source_id"]]
        for s in label_sentences(row):
            cands = candidates(s["text"], psents)
            if not cands:
                continue
            if s["hallucinated"]:
                lab = CON if s["conflict"] else UNS
                use = cands * 2
            else:
                lab = SUP
                use = cands[:1] + cands[2:3]
            for ev in use:
                out.append({"claim": s["text"], "evidence": ev, "label": lab, "kind": "ragtruth",
                            "source": "ragtruth", "model": row["model"]})
            if not s["hallucinated"] and rnd.random() < 0.7:
                wrong = candidates(s["text"], by_q[rnd.choice(others)], 1)
                if wrong:
                    out.append({"claim": s["text"], "evidence": wrong[0], "label": UNS, "kind": "ragtruth_wrong_ev",
                                "source": "ragtruth", "model": row["model"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--synthetic", type=int, default=7000)
    ap.add_argument("--nli", type=int, default=2000)
    ap.add_argument("--small", type=int, default=2500)
    args = ap.parse_args()
    DATA.mkdir(exist_ok=True)
    paras = load_corpora()
    syn = build_synthetic(paras, random.Random(SEED), args.synthetic)
    nli = build_nli(random.Random(SEED + 1), args.nli)
    rt = build_ragtruth(random.Random(SEED + 2))
    for name, rows in (("synthetic", syn), ("nli", nli), ("ragtruth_train", rt)):
        with (DATA / f"{name}.jsonl").open("w") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(name, len(rows), Counter(r["label"] for r in rows), Counter(r["kind"] for r in rows).most_common())
    every = syn + nli + rt
    random.Random(SEED + 3).shuffle(every)
    small_rnd = random.Random(SEED + 4)
    small = rt + small_rnd.sample(syn, min(len(syn), int(args.small * 0.55))) + small_rnd.sample(
        nli, min(len(nli), int(args.small * 0.2)))
    small_rnd.shuffle(small)
    for name, rows in (("train", every), ("train_small", small)):
        with (DATA / f"{name}.jsonl").open("w") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(name, len(rows), Counter(r["label"] for r in rows))
    # second-stage mix (continues from the first run's model): all RAGTruth-train pairs + synthetic and NLI pairs
    # the first run did not see
    line = lambda r: json.dumps(r, ensure_ascii=False) + "\n"  # noqa: E731
    seen = {line(r) for r in small}
    rnd2 = random.Random(15)
    syn_new = [r for r in syn if line(r) not in seen]
    nli_new = [r for r in nli if line(r) not in seen]
    mix = rt + rnd2.sample(syn_new, min(1900, len(syn_new))) + rnd2.sample(nli_new, min(900, len(nli_new)))
    rnd2.shuffle(mix)
    with (DATA / "train_v2.jsonl").open("w") as f:
        for r in mix:
            f.write(line(r))
    print("train_v2", len(mix), Counter(r["label"] for r in mix))
    # third stage (continues from stage 2): RAGTruth-train again + every SNLI pair (3-way, many 'neutral' =
    # information the evidence does not give, the commonest RAGTruth hallucination) + 600 synthetic pairs
    all_nli = build_nli(random.Random(SEED + 1), 100000)
    snli_all = [r for r in all_nli if r["kind"] == "snli"]
    rnd3 = random.Random(16)
    mix3 = rt + snli_all + rnd3.sample(syn, 600)
    rnd3.shuffle(mix3)
    with (DATA / "train_v3.jsonl").open("w") as f:
        for r in mix3:
            f.write(line(r))
    print("train_v3", len(mix3), Counter(r["label"] for r in mix3))
    print("paragraphs", len(paras), Counter(p["source"] for p in paras))


if __name__ == "__main__":
    main()
