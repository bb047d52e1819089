"""What in an answer sentence is a claim about the world, and what only speaks of the sources.

LLM answers open with "Based on the given passages, ..." or "Passage 2 mentions that ..." and say what
the passages lack ("The passages do not say how long it took."). The lead-in is not part of the claim:
only the rest is checked. A sentence that only says what the sources do not hold, that the question
cannot be answered, or that only talks about the answer ("I hope this helps!", "This is described in passage
1.", a list's header such as "Here is how to fix it:", a question) states no fact a passage could support: it is kept,
uncited. One that carries a figure is always checked.
"""

from __future__ import annotations

import re

from .citations import content_words
from .facts import quantities, without_conversions

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
_SOURCES = (r"(?:(?:the|these|those|this)\s+(?:given\s+|provided\s+|retrieved\s+|above\s+)?"
            r"(?:passages?|context|documents?|sources?)|passages?\s+\d+)")
_ABOUT_SOURCES = re.compile(
    rf"\b{_SOURCES}\s+(?:do|does|did)\s+not\s+(?:provide|mention|specify|say|include|contain|give|state|offer|"
    rf"address|cover|discuss)\b"
    rf"|\b(?:not|never)\s+(?:mentioned|specified|provided|stated|covered|addressed)\s+in\s+{_SOURCES}"
    r"|\b(?:i am|i'm)\s+(?:unable|not able)\s+to\b|\bi (?:cannot|can't)\s+(?:answer|provide|determine|find)\b"
    r"|\b(?:it is|it's)\s+not\s+possible\s+to\s+(?:answer|provide|determine|say)\b"
    r"|\bunable\s+to\s+(?:answer|provide|determine|say)\b|\bcannot\s+be\s+(?:determined|answered)\b"
    r"|\b(?:difficult|hard)\s+to\s+(?:definitively\s+)?(?:say|determine|answer)\b"
    r"|^\s*(?:i'm sorry|i am sorry|i apologi[sz]e|unfortunately,)",
    re.IGNORECASE)
# "..., but it does not provide instructions on roasting single cloves.", "None of the passages state what
# the drawer is for.": what a source lacks, said by a source's name or a pronoun for it, in a sentence that
# names one. The verbs are a text's: "the pump does not cover the basement" is a claim.
_NAMES_A_SOURCE = re.compile(r"\bpassages?\b|\b(?:the|this|given|provided)\s+(?:context|sources?|documents?)\b",
                             re.IGNORECASE)
_LACKS = re.compile(
    r"(?:\b(?:passages?(?:\s+\d+)?|it|they)\s+(?:also\s+)?|\bbut\s+)(?:\w+ly\s+)?(?:do|does|did)(?:\s+not|n't)\s+"
    r"(?:\w+ly\s+)?(?:provide|mention|specify|say|state|address|discuss|explain|describe|detail)\b"
    r"|\bnone\s+of\s+(?:the|these)\s+(?:\w+\s+)?passages\b",
    re.IGNORECASE)
_FIGURE = re.compile(r"\d")
# "To peel potatoes, follow these steps: 1.": the list's first number, left on the sentence that introduces it.
_LIST_NUMBER = re.compile(r"(?<=:)\s*\(?\d{1,2}[.)]$")
# Words of a sentence that talks about the answer or its sources ("Unable to answer based on the given
# passages.", "I hope this helps!", "This is described in passage 1 and passage 2."), cut as content_words cuts.
_ABOUT_ANSWER = frozenset(w[:6] for w in """passage passages information informed provided provide provides given
    mention mentions mentioned describe described describes question questions answer answers answered based context
    detail details specific additional further sufficient unable able determine determined definitively help helps
    helpful hope know let sure certainly glad assist assistance anything else happy clarify clarification note
    summary summarize conclusion explain explained explanation therefore thus hence overall following steps there's
    here's""".split())
_HEADING = re.compile(r"#{1,6}\s")  # a Markdown heading
# What opens a sentence without stating anything: a connective ("Additionally, ...", "In summary, ...") or a list's
# label ("Step 2: ...", "Option 1: ..."). Its words would count as words no passage holds.
_OPENER = re.compile(
    r"^(?:(?:additionally|furthermore|moreover|therefore|thus|hence|however|overall|finally|also|consequently|"
    r"in (?:summary|short|conclusion|addition|general)|to summarize|for (?:example|instance)|as a result),\s*"
    r"|(?:step|option|method|tip|way|approach)\s+\d{1,2}\s*[:.)-]\s*)",
    re.IGNORECASE)
_LIST_ITEM = re.compile(r"\s*(?:[-*+\u2022]|\d{1,2}[.)])\s")
# "(Passage 2)", "passages 1 and 3": a reference to the sources, not a figure the claim states.
_REFERENCE = re.compile(r"\(?\bpassages?\s+\d+(?:\s*(?:,|and|&|-)\s*(?:passages?\s+)?\d+)*\)?", re.IGNORECASE)
# Attribution inside a sentence ("..., the passage states that ...", "as mentioned in the passage", "according to
# the passages"): the sources' words, not the claim's. Applied after references became "the passage".
_THE_SOURCE = r"(?:the|this|these)\s+(?:given\s+|provided\s+)?passages?"
_SAYS = r"(?:states|mentions|says|notes|explains|suggests|indicates|describes|shows)"
_ATTRIBUTED = re.compile(
    rf",?\s*\bas\s+(?:(?:stated|described|mentioned|shown|noted|explained|indicated)\s+in\s+{_THE_SOURCE}"
    rf"|{_THE_SOURCE}\s+{_SAYS})\b,?"
    rf"|,?\s*\baccording\s+to\s+{_THE_SOURCE}\b,?"
    rf"|\b{_THE_SOURCE}\s+(?:also\s+)?{_SAYS}(?:\s+that)?\b,?"
    rf"|\s+\bin\s+{_THE_SOURCE}\b(?=\s*[.,;]?\s*$)",
    re.IGNORECASE)
# Space an attribution's removal leaves: before punctuation or the end, and doubled.
_LEFT_SPACE = re.compile(r"\s+(?=[.,;:!]|$)|(?<=\s)\s+")


def checkable(sentence: str) -> str:
    """The part of `sentence` to check against the passages: "" when it only speaks of the sources."""
    unreferenced = _REFERENCE.sub("", sentence)
    if _FIGURE.search(unreferenced) is None and (
            _ABOUT_SOURCES.search(sentence) or content_words(unreferenced) <= _ABOUT_ANSWER
            or (_LACKS.search(sentence) and _NAMES_A_SOURCE.search(sentence))):
        return ""
    rest = _ATTRIBUTION.sub("", _LEAD_IN.sub("", sentence, count=1), count=1)
    rest = _LIST_NUMBER.sub("", _REFERENCE.sub(_unreferenced, rest)).strip()
    rest = _LEFT_SPACE.sub("", _ATTRIBUTED.sub(" ", without_conversions(rest))).strip()
    rest = _OPENER.sub("", rest, count=1)
    # "Here is how to fix a door that won't lock:", "**Costs:**", "### Costs", "Q: What is it for?": nothing is
    # stated.
    if rest.endswith("?") or _HEADING.match(rest) or (rest.rstrip("*_ ").endswith(":") and not quantities(rest)):
        return ""
    return rest[:1].upper() + rest[1:] if rest != sentence else sentence


def _unreferenced(reference: re.Match) -> str:
    """ "(Passage 2)" is a citation and goes; "passage 2" within the sentence is still the sentence's subject."""
    return "" if reference.group().startswith("(") else "the passage"


def introduces(sentence: str) -> bool:
    """A list's header or a heading ("Here are the steps:", "**Costs:**", "### Costs"): it states nothing and is
    worth showing only with something under it."""
    text = sentence.strip()
    return not checkable(text) and bool(_HEADING.match(text) or text.rstrip("*_ ").endswith(":"))


def list_item(sentence: str) -> bool:
    """A line of a list ("* Connect the cable.", "2. Boil the potatoes.")."""
    return bool(_LIST_ITEM.match(sentence))
