"""Shared, torch-free helpers: sentence splitting (the project's), labelling, split, tokenising."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent  # the project
SHARED = ROOT.parent / "shared"  # the team's shared folder beside the project
RAGTRUTH = SHARED / "eval" / "ragtruth_qa_dev.jsonl"
SPLIT_FILE = HERE / "ragtruth_split.json"

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_MIN_WORDS = 4

LABELS = ["supported", "unsupported", "contradicted"]
SUP, UNS, CON = 0, 1, 2


def sentence_spans(text: str) -> list[tuple[int, int, str]]:
    """Sentences of `text` with their character offsets; a sentence of < 4 words joins the next one."""
    pieces = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        pieces.append((pos, m.start()))
        pos = m.end()
    pieces.append((pos, len(text)))
    raw = []
    for s, e in pieces:
        seg = text[s:e]
        if not seg.strip():
            continue
        ls = len(seg) - len(seg.lstrip())
        rs = len(seg.rstrip())
        raw.append((s + ls, s + rs))
    units = []
    carry = None
    for s, e in raw:
        if carry is not None:
            s = carry
        if len(text[s:e].split()) < _MIN_WORDS:
            carry = s
            continue
        carry = None
        units.append((s, e, text[s:e]))
    if carry is not None:
        units.append((carry, raw[-1][1], text[carry:raw[-1][1]]))
    return units


def sentences(text: str) -> list[str]:
    return [t for _, _, t in sentence_spans(text)]


def label_sentences(row: dict) -> list[dict]:
    """Each response sentence with hallucinated flag (overlap >= 4 chars with a span) and conflict flag."""
    out = []
    for s, e, t in sentence_spans(row["response"]):
        hal = False
        conflict = False
        for sp in row["hallucinated_spans"]:
            ov = min(e, sp["end"]) - max(s, sp["start"])
            if ov >= 4:
                hal = True
                if "Conflict" in sp["label_type"]:
                    conflict = True
        out.append({"text": t, "hallucinated": hal, "conflict": conflict})
    return out


def load_ragtruth() -> list[dict]:
    return [json.loads(line) for line in RAGTRUTH.open()]


def _h(s: str) -> int:
    return int(hashlib.sha256(s.encode()).hexdigest()[:12], 16)


def make_split(rows: list[dict]) -> dict:
    """Deterministic split by source_id (one question each): sha256 rank; 60% held out,
    of the rest 2/3 train and 1/3 tune (threshold choice)."""
    sids = sorted({r["source_id"] for r in rows}, key=lambda s: (_h("verifier-split-v1:" + s), s))
    n = len(sids)
    n_held = round(0.6 * n)
    held = sorted(sids[:n_held])
    rest = sids[n_held:]
    n_tune = len(rest) // 3
    tune = sorted(rest[:n_tune])
    train = sorted(rest[n_tune:])
    return {"heldout_source_ids": held, "tune_source_ids": tune, "train_source_ids": train,
            "rule": "sort source_id by sha256('verifier-split-v1:'+source_id); first 60% held out; "
                    "of the rest, first third tune (threshold), remainder train"}


def load_split() -> dict:
    return json.loads(SPLIT_FILE.read_text())


_WORD = re.compile(r"[A-Za-z0-9]+(?:[.,][0-9]+)*")
STOP = frozenset("""a about above after again against all also am an and any are as at be because been
before being below between both but by can could did do does doing down during each few for from further had
has have having he her here hers him his how i if in into is it its itself just me more most my no nor not
now of off on once only or other our ours out over own same she should so some such than that the their
them then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours passage passages based given according""".split())


def content_words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text) if w.lower() not in STOP]


def stem(w: str) -> str:
    for suf in ("ing", "ed", "es", "s", "ly"):
        if len(w) > len(suf) + 3 and w.endswith(suf):
            return w[: -len(suf)]
    return w
