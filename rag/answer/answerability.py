"""What kind of answer a question wants, and whether a sentence can be that kind of answer.

The extractive answerer quotes sentences, so "How many dollars did right-sizing save?" would get the
right-sizing sentence, which holds no amount. A question that asks for a quantity needs a sentence
with a number in it, one that asks for a name needs a name the question does not already say, one that asks
which version needs a version, and one that asks who needs someone (a name, a role, a team); when no retrieved
sentence qualifies, the honest answer is that the case studies don't say.
"""

from __future__ import annotations

import re

QUANTITY = re.compile(
    r"\b(how (many|much|long|often|big|large|fast|old|soon)|by how much|what (percentage|percent|share|"
    r"fraction|proportion|size|number|amount)|what \w+ (size|count))\b", re.I)
VERSION = re.compile(r"\b(which|what)( \w+)? versions?\b", re.I)
NAME = re.compile(
    r"\b(which|what)( \w+){0,2} (provider|vendor|tool|product|company|framework|library|language|database|"
    r"generator|cloud)\b|\bwhat(?:'s|’s| is| was| are| were) (?:the |their |its )?names?\b|"
    r"^\W*what\b[^?]* (called|named)\W*$", re.I)
# Asking who, at the question's start ("who led it?"), not in a clause ("the team who built it").
PERSON = re.compile(r"^\W*(who|whom|whose)\b", re.I)
NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|"
    r"fifty|hundred|thousand|million|half|double|twice|triple|dozen)\b", re.I)
# Who-answers that are not names: the people, roles and groups a post credits.
PEOPLE = re.compile(
    r"\b(team|teams|squad|engineers?|developers?|architects?|managers?|leads?|leaders?|owners?|founders?|"
    r"ceo|cto|cio|vp|directors?|staff|contractors?|consultants?|vendors?|customers?|users?|members?|"
    r"colleagues?|committee|board|group|department|person|people|researchers?|authors?)\b",
    re.I)
# "Kanye West produced it.": _NAME_TOKEN skips a sentence's first word, which is capitalised anyway.
_OPENING_NAME = re.compile(r"\W*[A-Z][a-z]+ [A-Z][a-z]+\b")
_NAME_TOKEN = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][A-Za-z0-9]*[A-Z0-9][A-Za-z0-9]*|[A-Z][a-z]+[A-Z]\w*|"
                         r"[A-Z][a-z]{2,})\b")


# Acronyms that name kinds of things, not a particular product or company.
_GENERIC = {"api", "apis", "json", "sql", "http", "https", "url", "ui", "ux", "ci", "cd", "cpu", "gpu", "roi",
            "sla", "slo", "qa", "os", "id", "io", "ai", "ml", "llm", "saas", "orm", "rest", "cdn", "dns", "vm"}


def wanted(question: str) -> str | None:
    """'quantity', 'version', 'name', 'person', or None when any relevant sentence may answer."""
    for kind, asks in (("quantity", QUANTITY), ("version", VERSION), ("name", NAME), ("person", PERSON)):
        if asks.search(question):
            return kind
    return None


def can_answer(kind: str | None, sentence: str, question: str) -> bool:
    if kind == "quantity":
        return bool(NUMBER.search(sentence))
    if kind is None:
        return True
    asked = {w.lower() for w in re.findall(r"\w+", question)}
    named = any(name.lower() not in asked | _GENERIC for name in _NAME_TOKEN.findall(sentence))
    if kind == "version":  # 3.11, v2, or a named one (Windows Vista)
        return named or bool(re.search(r"\d", sentence))
    if kind == "name":
        return named
    someone = any(word.lower() not in asked for word in PEOPLE.findall(sentence))  # not the "developer portal"
    return named or someone or bool(_OPENING_NAME.match(sentence))
