"""What in an answer sentence is a claim about the world, and what only speaks of the sources.

LLM answers open with "Based on the given passages, ..." or "Passage 2 mentions that ..." and say what
the passages lack ("The passages do not say how long it took."). The lead-in is not part of the claim:
only the rest is checked. A sentence that only says what the sources do not hold, or that the question
cannot be answered, states no fact a passage could support: it is kept, uncited. One that carries a
figure is always checked.
"""

from __future__ import annotations

import re

_LEAD_IN = re.compile(
    r"^\s*(?:(?:so|thus|therefore|however|overall|in summary|in short),?\s+)?"
    r"(?:based (?:solely )?on|according to|as (?:stated|described|mentioned) in|from|per)\s+"
    r"(?:the|these|those)\s+(?:given\s+|provided\s+|retrieved\s+|above\s+)?"
    r"(?:passages?|context|documents?|sources?|texts?|information)(?:\s+(?:provided|given|above))?\s*[,:]\s*",
    re.IGNORECASE)
_ATTRIBUTION = re.compile(
    r"^\s*(?:(?:\(passage\s+\d+\)|passage\s+\d+:)\s*)?(?:[*\u2022-]\s+)?(?:\d{1,2}[.)]\s+)?"
    r"(?:(?:according to|based on|as (?:stated|described|mentioned) in|in)\s+(?:the\s+)?passage\s+\d+\s*[,:]\s*"
    r"|(?:the\s+)?passage\s+\d+\s+(?:also\s+)?(?:mentions|states|says|notes|explains|indicates|suggests|adds|"
    r"describes|reports)\s+(?:that\s+)?)?",
    re.IGNORECASE)
_SOURCES = (r"(?:the|these|those)\s+(?:given\s+|provided\s+|retrieved\s+|above\s+)?"
            r"(?:passages?|context|documents?|sources?)")
_ABOUT_SOURCES = re.compile(
    rf"\b{_SOURCES}\s+(?:do|does|did)\s+not\s+(?:provide|mention|specify|say|include|contain|give|state|offer|"
    rf"address|cover|discuss)\b"
    rf"|\b(?:not|never)\s+(?:mentioned|specified|provided|stated|covered|addressed)\s+in\s+{_SOURCES}"
    r"|\b(?:i am|i'm)\s+(?:unable|not able)\s+to\b|\bi (?:cannot|can't)\s+(?:answer|provide|determine|find)\b"
    r"|\b(?:it is|it's)\s+not\s+possible\s+to\s+(?:answer|provide|determine|say)\b"
    r"|^\s*(?:i'm sorry|i am sorry|i apologi[sz]e|unfortunately,)",
    re.IGNORECASE)
_FIGURE = re.compile(r"\d")
# "(Passage 2)", "passages 1 and 3": a reference to the sources, not a figure the claim states.
_REFERENCE = re.compile(r"\(?\bpassages?\s+\d+(?:\s*(?:,|and|&)\s*\d+)*\)?", re.IGNORECASE)


def checkable(sentence: str) -> str:
    """The part of `sentence` to check against the passages: "" when it only speaks of the sources."""
    if _ABOUT_SOURCES.search(sentence) and not _FIGURE.search(_REFERENCE.sub("", sentence)):
        return ""
    rest = _ATTRIBUTION.sub("", _LEAD_IN.sub("", sentence, count=1), count=1)
    rest = _REFERENCE.sub("the passage", rest).strip()
    return rest[:1].upper() + rest[1:] if rest != sentence else sentence
