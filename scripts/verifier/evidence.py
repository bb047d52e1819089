"""Candidate evidence for a claim: the best-matching passage sentences by IDF-weighted word overlap.

Torch-free and fast (pure Python). candidates() returns up to 3 evidence strings, best first:
[top-1 sentence, top-2 sentence, top-1 and top-2 joined in passage order (or top-1 with its neighbour)].
"""
from __future__ import annotations

import math
import re

from common import content_words, sentences, stem

MAX_EVIDENCE_WORDS = 90
_GLUED = re.compile(r"(?<=[a-z]{2}[.!?])(?=[A-Z][a-z])|(?<=[)][.])(?=[A-Z][a-z])")


def clean_passage(text: str) -> str:
    """MS MARCO passages glue sentences ('...per year.Techs in...'): put the space back so they split."""
    return _GLUED.sub(" ", text)


def split_passages(passages: list[str]) -> list[dict]:
    out = []
    for pi, p in enumerate(passages):
        sents = sentences(clean_passage(p))
        for si, s in enumerate(sents):
            words = s.split()
            if len(words) > MAX_EVIDENCE_WORDS:
                s = " ".join(words[:MAX_EVIDENCE_WORDS])
            out.append({"p": pi, "i": si, "text": s, "stems": {stem(w) for w in content_words(s)}})
    return out


def candidates(claim: str, psents: list[dict], k: int = 3) -> list[str]:
    if not psents:
        return []
    n = len(psents)
    df: dict[str, int] = {}
    for ps in psents:
        for w in ps["stems"]:
            df[w] = df.get(w, 0) + 1
    cst = {stem(w) for w in content_words(claim)}
    idf = {w: math.log(1 + n / (1 + df.get(w, 0))) for w in cst}
    total = sum(idf.values()) or 1.0
    scored = []
    for j, ps in enumerate(psents):
        cov = sum(idf[w] for w in sorted(cst & ps["stems"])) / total
        scored.append((cov, -j, j))
    scored.sort(reverse=True)
    j1 = scored[0][2]
    out = [psents[j1]["text"]]
    if k >= 2 and len(scored) > 1:
        j2 = scored[1][2]
        out.append(psents[j2]["text"])
        if k >= 3:
            a, b = sorted((j1, j2))
            if psents[a]["text"] != psents[b]["text"]:
                out.append(psents[a]["text"] + " " + psents[b]["text"])
            elif j1 + 1 < n and psents[j1 + 1]["p"] == psents[j1]["p"]:
                out.append(psents[j1]["text"] + " " + psents[j1 + 1]["text"])
    # dedupe, keep order
    seen, uniq = set(), []
    for e in out:
        if e not in seen:
            seen.add(e)
            uniq.append(e)
    return uniq[:k]
