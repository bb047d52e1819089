"""What kind of answer a question wants, and whether a sentence can be that kind of answer.

The extractive answerer quotes sentences, so "How many dollars did right-sizing save?" would get the
right-sizing sentence, which holds no amount. A question that asks for a quantity needs a sentence
with a number in it, and one that asks for a name needs a name the question does not already say;
when no retrieved sentence qualifies, the honest answer is that the case studies don't say.
"""

from __future__ import annotations

import re

QUANTITY = re.compile(
    r"\b(how (many|much|long|often|big|large|fast|old|soon)|by how much|what (percentage|percent|share|"
    r"fraction|proportion|size|number|amount|version)|which version|what \w+ (size|count|version))\b", re.I)
NAME = re.compile(
    r"\b(which|what)( \w+){0,2} (provider|vendor|tool|product|company|framework|library|language|database|"
    r"generator|cloud)\b|\bwhat is the name\b|\bwhat was the name\b", re.I)
NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|"
    r"fifty|hundred|thousand|million|half|double|twice|triple|dozen)\b", re.I)
_NAME_TOKEN = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][A-Za-z0-9]*[A-Z0-9][A-Za-z0-9]*|[A-Z][a-z]+[A-Z]\w*|"
                         r"[A-Z][a-z]{2,})\b")


# Acronyms that name kinds of things, not a particular product or company.
_GENERIC = {"api", "apis", "json", "sql", "http", "https", "url", "ui", "ux", "ci", "cd", "cpu", "gpu", "roi",
            "sla", "slo", "qa", "os", "id", "io", "ai", "ml", "llm", "saas", "orm", "rest", "cdn", "dns", "vm"}


def wanted(question: str) -> str | None:
    """'quantity', 'name', or None when any relevant sentence may answer."""
    if QUANTITY.search(question):
        return "quantity"
    if NAME.search(question):
        return "name"
    return None


def can_answer(kind: str | None, sentence: str, question: str) -> bool:
    if kind == "quantity":
        return bool(NUMBER.search(sentence))
    if kind == "name":
        asked = {w.lower() for w in re.findall(r"\w+", question)}
        return any(name.lower() not in asked | _GENERIC for name in _NAME_TOKEN.findall(sentence))
    return True
