"""Cheap lexical features of a claim against the passages (torch-free)."""
from __future__ import annotations

import re

from common import content_words, stem
from evidence import clean_passage

_NUM = re.compile(r"\d+(?:[.,]\d+)*")


def features(claim: str, passages: list[str]) -> dict:
    text = " ".join(clean_passage(p) for p in passages)
    pst = {stem(w) for w in content_words(text)}
    cst = [stem(w) for w in content_words(claim)]
    cst = [w for w in cst if not w.isdigit() or len(w) > 0]
    if not cst:
        return {"coverage": 1.0, "novel_numbers": 0, "n_content": 0}
    cov = sum(w in pst for w in cst) / len(cst)
    pnums = {n.replace(",", "") for n in _NUM.findall(text)}
    novel = sum(n.replace(",", "") not in pnums for n in _NUM.findall(claim) if not re.fullmatch(r"\d", n))
    return {"coverage": cov, "novel_numbers": novel, "n_content": len(cst)}
