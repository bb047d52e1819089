"""Which response sentences are claims about the world (to verify) and which are statements about the sources.

A sentence that only talks about the passages ("Based on the passages, the steps are:", "The passages do not say
how long ...", "I'm sorry, ...") states nothing a passage could support; the verifier keeps it unchecked.
"""
from __future__ import annotations

import re

_META = re.compile(
    r"\b(the|these|those|given|provided|above|retrieved)\s+(passages?|context|documents?|sources?|text)\b"
    r"|\bpassage\s+\d\b|\b(I'm sorry|I apologize|I am sorry|unable to (answer|provide|find|determine))\b",
    re.IGNORECASE)
_LEAD = re.compile(r"^(based on|according to|note|however|unfortunately|in summary|therefore|overall|the passages?"
                   r"|these passages|the provided|the given|from the|as per|i'm sorry|i apologize|sorry)\b",
                   re.IGNORECASE)


def is_meta(sentence: str) -> bool:
    """True for a statement about the sources/answer rather than the world (no figures in it)."""
    s = sentence.strip()
    if not _META.search(s):
        return False
    if re.search(r"\d", re.sub(r"\b[Pp]assage\s+\d\b|^\s*\d+\.\s|\n\s*\d+\.\s*$", "", s)):
        return False
    return bool(_LEAD.match(s)) or bool(re.search(r"\b(do|does|did)\s+not\s+(provide|mention|specify|say|"
                                                 r"include|contain|give|state)\b|\bnot\s+(mentioned|specified|"
                                                 r"provided|stated)\b", s, re.IGNORECASE))
