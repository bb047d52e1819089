"""The checkable facts of a claim: quantities (numbers, money, percentages, durations, dates), names and polarity.

A cross-encoder can miss that "three engineers six months" is not "one engineer two weeks"; a claim's
quantities and names must also be found in the evidence that supports it, and a different quantity of
the same unit there is a contradiction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..text import STOPWORDS

_WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
          "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
          "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
          "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
          "million": 10**6, "billion": 10**9, "half": 0.5, "dozen": 12, "single": 1, "twice": 2, "double": 2,
          "triple": 3, "a": 1, "an": 1}
_SCALE = {"hundred": 100, "thousand": 1000, "k": 1000, "million": 10**6, "m": 10**6, "billion": 10**9, "bn": 10**9}
_QUANTITY = re.compile(
    r"(?P<money>[$€£])?(?P<value>\d[\d,]*(?:\.\d+)?|\b(?:" + "|".join(w for w in _WORDS if len(w) > 2) + r")\b)"
    r"(?:[\s-]*(?P<scale>hundred|thousand|million|billion|k|m|bn)\b)?"
    r"(?:[\s-]*(?P<unit>%|percent|x\b|times\b|[a-z]+))?", re.I)
_UNITS = {"percent": "%", "times": "x", "seconds": "second", "secs": "second", "minutes": "minute", "mins": "minute",
          "hours": "hour", "hrs": "hour", "days": "day", "weeks": "week", "months": "month", "years": "year",
          "ms": "millisecond", "milliseconds": "millisecond", "dollars": "$", "usd": "$"}
_TIME_UNITS = {"second", "minute", "hour", "day", "week", "month", "year", "millisecond"}
_NAME = re.compile(r"(?<![\w.])(?:[A-Z][a-z]*[A-Z0-9][\w-]*|[A-Za-z]+_[\w]+|[A-Z]{2,}s?)(?![\w])")


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: str  # "", "%", "$", "x", or a word such as "week" or "engineer"
    start: int
    end: int


def quantities(text: str) -> list[Quantity]:
    found = []
    for match in _QUANTITY.finditer(text):
        raw = match.group("value").lower()
        is_word = not raw[0].isdigit()
        if is_word and (match.group("unit") or "").lower() in STOPWORDS | {""}:
            continue  # "one of the reasons", "half": a figure of speech more often than a figure
        value = float(_WORDS[raw]) if is_word else float(raw.replace(",", ""))
        if match.group("scale"):
            value *= _SCALE[match.group("scale").lower()]
        unit = (match.group("unit") or "").lower()
        unit = "" if unit in STOPWORDS else unit
        unit = "$" if match.group("money") else _UNITS.get(unit, unit.rstrip("s") if len(unit) > 3 else unit)
        found.append(Quantity(value, unit, match.start(), match.end()))
    return found


def missing_quantities(claim: str, evidence: str) -> tuple[list[Quantity], list[Quantity]]:
    """The claim's quantities the evidence does not state, and the evidence's quantities that conflict
    with them (same unit, other value)."""
    stated = quantities(evidence)
    missing, conflicting = [], []
    for quantity in quantities(claim):
        if any(q.value == quantity.value and _same_unit(q.unit, quantity.unit) for q in stated):
            continue
        missing.append(quantity)
        conflicting += [q for q in stated if q.unit == quantity.unit and q.unit and q.value != quantity.value
                        or (quantity.unit in _TIME_UNITS and q.unit in _TIME_UNITS)]
    return missing, conflicting


# "400°F (205°C)", "5 miles (8 km)": a figure restated in other units, in brackets after it. Each conversion both
# ways; a bracketed figure that is none of them ("23 °F (12 °C)") stays a figure of the claim.
_FACTORS = (1.609344, 0.45359237, 2.54, 0.3048, 3.785411784, 28.349523125)  # mi/km, lb/kg, in/cm, ft/m, gal/l, oz/g
_NUMBER = r"\d[\d,]*(?:\.\d+)?"
_MEASURE = (r"°\s*[cf]|degrees?(?:\s+(?:celsius|fahrenheit|c|f))?|celsius|fahrenheit|km|kilomet(?:er|re)s?|mi|miles?|"
            r"kg|kilograms?|lbs?|pounds?|cm|centimet(?:er|re)s?|inch(?:es)?|in|m|met(?:er|re)s?|f(?:ee|oo)t|ft|"
            r"l|lit(?:er|re)s?|gal|gallons?|g|grams?|oz|ounces?")
_RESTATED = re.compile(rf"(?P<first>{_NUMBER})(?P<unit>[^()\d]{{0,25}}?)\s*"
                       rf"\(\s*(?:about\s+|approximately\s+|~\s*)?(?P<second>{_NUMBER})\s*(?:{_MEASURE})\.?\s*\)",
                       re.IGNORECASE)


def without_conversions(text: str) -> str:
    """The text without figures restated in other units in brackets: "bake at 400°F (205°C)" -> "bake at 400°F"."""
    def drop(match: re.Match) -> str:
        first, second = (float(match.group(g).replace(",", "")) for g in ("first", "second"))
        converted = any(abs(value - second) <= max(1.5, 0.02 * abs(second)) for value in _converted(first))
        return match.group("first") + match.group("unit") if converted else match.group()
    return _RESTATED.sub(drop, text)


def _converted(value: float) -> list[float]:
    """The value in each other unit it may have been restated in: °F/°C and each factor, both ways."""
    return [(value - 32) * 5 / 9, value * 9 / 5 + 32, *(value * f for f in _FACTORS), *(value / f for f in _FACTORS)]


def _same_unit(a: str, b: str) -> bool:
    return a == b or not a or not b


def names(text: str) -> list[str]:
    """Identifiers and acronyms (PgBouncer, p95, default_pool_size, API): spelled names a claim must not invent."""
    return list(dict.fromkeys(m.group() for m in _NAME.finditer(text)))


def missing_names(claim: str, evidence: str) -> list[str]:
    lowered = evidence.lower()
    return [n for n in names(claim) if n.lower().rstrip("s") not in lowered and not _spelled_out(n, lowered)]


def _spelled_out(name: str, lowered: str) -> bool:
    """An acronym whose words the evidence holds in order: "WAC" for "Weighted Average Costing". Stopwords
    spell nothing ("was a car" is no WAC)."""
    letters = name.rstrip("s")
    if not (3 <= len(letters) <= 6 and letters.isalpha() and letters.isupper()):
        return False
    letters = letters.lower()
    words = _TOKEN.findall(lowered)
    return any(all(w[0] == letter and w not in STOPWORDS for w, letter in zip(words[i:i + len(letters)], letters))
               for i in range(len(words) - len(letters) + 1))


# Words whose swap reverses a claim ("highest-ROI" / "lowest-ROI", "better" / "worse").
_OPPOSITES = [("higher", "lower"), ("highest", "lowest"), ("better", "worse"), ("best", "worst"),
              ("increase", "decrease"), ("increased", "decreased"), ("increases", "decreases"),
              ("faster", "slower"), ("fastest", "slowest"), ("improved", "worsened"), ("improved", "degraded"),
              ("rose", "fell"), ("gained", "lost"), ("success", "failure"), ("succeeded", "failed"),
              ("cheaper", "costlier"), ("easier", "harder"), ("larger", "smaller"), ("more", "fewer"),
              ("always", "never"), ("up", "down"), ("reduced", "increased"), ("cut", "raised"),
              ("caused", "eliminated"), ("caused", "fixed"), ("caused", "solved"), ("caused", "resolved"),
              ("caused", "prevented"), ("causes", "eliminates"), ("causes", "fixes"), ("causes", "prevents")]
_OPPOSITE: dict[str, set[str]] = {}
for _pair in _OPPOSITES:
    for _word, _other in (_pair, _pair[::-1]):
        _OPPOSITE.setdefault(_word, set()).add(_other)
_TOKEN = re.compile(r"[a-z]+")


def opposite_word(claim: str, evidence: str) -> re.Match | None:
    """Where the evidence says the opposite of a word of the claim (and never the word itself)."""
    said = set(_TOKEN.findall(claim.lower()))
    stated = set(_TOKEN.findall(evidence.lower()))
    for word in sorted(said - stated):
        for opposite in sorted(_OPPOSITE.get(word, set()) & stated - said):
            return re.search(rf"\b{opposite}\b", evidence, re.I)
    return None


_NEGATION = re.compile(r"\b(?:not|no|never|none|nothing|nobody|neither|nor|without|cannot|\w+n['’]t)\b", re.I)
_AUXILIARY = {"may", "might", "must", "can", "could", "shall", "should", "will", "would", "also", "still", "however"}
# Negations that leave the statement's polarity alone: "careful not to cut", "not only", "whether or not".
_IDIOM = re.compile(r"\b(?:(?:careful|care|sure|remember|try|want|how)\s+not\s+to|not\s+only|or\s+not|if\s+not|"
                    r"no\s+matter|no\s+doubt|not\s+just)\b", re.I)
_NEGATED_REACH = 2  # words after a negation that it negates
_SUBJECT_REACH = 3  # words before it, where the statement's subject may be
_LONGEST = 3  # an evidence sentence with more content words than this many times the claim's is a run-on
_SAME_STATEMENT = 0.6  # share of the claim's content words a sentence must hold to be the statement it negates


def statement_sentence(claim: str, sentences: list[str]) -> int | None:
    """The sentence (its index) that makes the claim's statement: it holds the most of the claim's content words,
    and at least 0.6 of them; None when none does."""
    wanted = _content(claim)
    shared = [len(wanted & _content(sentence)) for sentence in sentences]
    best = max(range(len(sentences)), key=shared.__getitem__, default=None)
    return None if not wanted or best is None or shared[best] < _SAME_STATEMENT * len(wanted) else best


def flipped_negation(claim: str, evidence: str) -> tuple[bool, re.Match | None]:
    """Whether the claim makes the evidence's statement with the opposite polarity (a word one of them negates, "did
    not fix", "never fixed", "can't fix", is stated by the other without a negation), and the evidence's negation
    (None where the claim has it). A cross-encoder often reads "PgBouncer did not fix it" as supported by
    "PgBouncer fixed it"."""
    claimed, stated = _negated(claim), _negated(evidence)
    if len(_content(evidence)) > _LONGEST * len(_content(claim)) or bool(claimed) == bool(stated):
        return False, None  # a run-on passage "sentence", or both negate: which words each negates is not clear
    if any(words and words <= _content(evidence) for words in claimed.values()):
        return True, None
    flipped = [m for m, words in stated.items() if words and words <= _content(claim)]  # "never hit" for "hit"
    return bool(flipped), (flipped[0] if flipped else None)


def _negated(text: str) -> dict[re.Match, set[str]]:
    """Each negation of the text, with the content words of its statement: what it negates (the next two words)
    and what it is said of (the nearest of the three words before); none where either is missing."""
    plain = _IDIOM.sub(lambda m: " " * len(m.group()), text)
    found = {}
    for m in _NEGATION.finditer(plain):
        negated = _content(" ".join(_TOKEN.findall(plain[m.end():].lower())[:_NEGATED_REACH]))
        before = [w for w in _TOKEN.findall(plain[:m.start()].lower())[-_SUBJECT_REACH:]
                  if _content(w) and w not in _AUXILIARY]
        found[m] = negated | _content(before[-1]) if negated and before else set()
    return found


def _content(text: str) -> set[str]:
    plain = re.sub(r"\w+n['’]t\b", " ", text.lower())  # "didn't" is a negation, not a word of the statement
    return {w[:6] for w in _TOKEN.findall(plain) if w not in STOPWORDS and len(w) > 1}
