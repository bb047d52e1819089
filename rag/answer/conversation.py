"""Follow-up questions: when a question leans on the history, what it leans on, and the rewrite.

A question needs the history only when something in it is left unresolved: a pronoun with nothing to
point at in the question itself ("how long did *that* take?"), a bare ellipsis ("why?", "what about
contractors?"). Whether "that" or "it" points outside the question is read from the words around it
("the tool *that* fixed" is a relative clause, "is *it* possible to" says nothing about the history),
and a question that carries enough of its own subject stands alone whatever pronouns it holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..text import STOPWORDS
from ..types import Turn

_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_AUX = frozenset("do does did is are was were be been being has have had can could will would should may might "
                 "must shall".split())
_PREPOSITIONS = frozenset("about after before during from of on in with without for since to by like than into "
                          "over at behind under".split())
_OPENERS = frozenset("what which who whom whose when where why how and but or so then also".split()) | _AUX
# "what about contractors?" borrows its whole ask; "and SCIM?" too, but "and how long did X take?" asks anew.
_CONNECTIVE = re.compile(r"^\s*(what about|how about|what if|(and|but|also|so|then|plus)(?!\s+(what|which|who|whom|"
                         r"whose|when|where|why|how|do|does|did|is|are|was|were|can|could|will|would|should|has|have|"
                         r"had)\b))\b", re.I)
# Words that say how a question asks, not what about: "how long did that *take*" names no subject.
_ASKING = frozenset("take takes took taken happen happens happened get gets got make makes made go goes went "
                    "mean means meant work worked long much many often else need needed thing things result results "
                    "one ones first second third last next done tell explain describe elaborate say says said more "
                    "detail details".split())
# "this year" or "this week" points at the calendar, not at the conversation.
_CALENDAR = frozenset("year week month quarter time morning afternoon evening sprint release season".split())
# With "it", an adjective or "to" ahead marks the empty subject of "is it possible to ...".
_EMPTY_IT = frozenset("possible ok okay true necessary allowed required safe mandatory important worth "
                      "likely better best fine acceptable permitted".split())
_REFUSAL = re.compile(r"\b(sorry|i can(no|')t|unable to|as an ai|not in the|i don't know|cannot (help|answer))\b",
                      re.I)
_ABOUT = " (about: "
_SUFFIX = re.compile(r"(ations?|ions?|ments?|ing|ed|es|s)$")
# A question with this many words of its own carries its subject, whatever pronouns it also holds.
_SELF_CONTAINED = 5
# A possessive after this many of the question's own words has its owner there: "When did Cruyff win his ...",
# "Where does Rogers Cable have its ..."; "who owns them?" and "what is her name?" point back.
_POSSESSIVE = frozenset("his her hers its their theirs".split())
_OWNER_WORDS = 2
_SHORT = 4
_SUBJECT_WORDS = 8


@dataclass(frozen=True)
class FollowUp:
    """A question that leans on the history: the word that does, and the subject the history gives it."""

    reference: str
    subject: str
    # False for a short question with no pointing word ("is there a cap?"): it may be a new topic, so
    # the rewrite is kept only if it finds closer passages than the question alone.
    certain: bool = True

    def rewrite(self, question: str) -> str:
        """The question's own ask, with the subject it refers to added (no history needed to read it)."""
        return f"{question.strip()}{_ABOUT}{self.subject})" if self.subject else question.strip()


def added_subject(question: str, standalone: str) -> str | None:
    """The subject a rule rewrite (`FollowUp.rewrite`) added to `question`; None for any other text."""
    rest = standalone[len(question):] if standalone.startswith(question) else ""
    return rest[len(_ABOUT):-1] if rest.startswith(_ABOUT) and rest.endswith(")") else None


def read_as(history: Sequence[Turn], question: str, reference: str) -> str:
    """A rule-rewritten follow-up (`FollowUp.rewrite`) as a person would write it, in the earlier question's
    own words: its subject put in for "that" or "it" when that question names it as a phrase ("How long did
    the move to structured logging take?" then "and how long did that take?" reads "How long did the move to
    structured logging take?"), else the follow-up joined to that question ("How did they move to structured
    logging, and what about the database?"). The earlier question is the latest one that asks in full (no
    pointing word, no "and ..." or "what about ...", a few words of its own), else the first one held. For
    people only: the search uses the rule's rewrite."""
    asked = [t.content.strip() for t in history if t.role == "user" and own_words(t.content)]
    whole = [q for q in asked if dangling_reference(q) is None and not _CONNECTIVE.match(q)
             and len(own_words(q)) >= _ASKS_IN_FULL]
    earlier = whole[-1] if whole else asked[0] if asked else ""
    if not earlier:
        return question.strip()
    phrase = _phrase(earlier)
    put_in = _put_in(question, reference, phrase) if phrase else None
    return _sentence(put_in) if put_in else _joined(earlier, question)


_WORDS = re.compile(_WORD.pattern, re.I)  # the same words, found in the text as written
_DETERMINERS = frozenset("the a an our their your my its his her this these those".split())
_CONNECTIVE_WORD = re.compile(r"^\s*(and|but|also|so|then|plus)\b[\s,]*", re.I)
_EARLIER_CHARS = 150
_ASKS_IN_FULL = 3  # own words: "Which plans include SSO?" names its subject; "how long do the sessions last?" leans


def _phrase(question: str) -> str | None:
    """The question's subject as the phrase it is written as: "the move to structured logging" in "How long
    did the move to structured logging take?", "structured logging" in "Tell me about structured logging."; None
    when its subject words are not one phrase that can stand for "that" ("How did they move to ..." names an
    act; "Where are the backups stored?" and "How much leave is paid?" run on into a verb)."""
    tokens = list(_WORDS.finditer(question))
    words = [t.group().lower() for t in tokens]
    own = set(own_words(question))
    at = [i for i, word in enumerate(words) if word in own]
    if not at or at[-1] - at[0] >= _SUBJECT_WORDS or any(w in _AUX for w in words[at[0]:at[-1]]):
        return None
    first, last = at[0], at[-1]
    before = words[first - 1] if first else ""
    after = words[last + 1] if last + 1 < len(words) else ""
    if before in _DETERMINERS and (after in _ASKING or after in _AUX):  # "the move to X" [take]
        first -= 1
    elif not (before in _PREPOSITIONS and (not after or after in _ASKING or after in _AUX)):  # "about X"
        return None
    return question[tokens[first].start():tokens[last].end()]


def _put_in(question: str, reference: str, phrase: str) -> str | None:
    """The question with `phrase` in place of its one "that", "it" or "this"; None for any other reference."""
    if reference not in ("that", "it", "this"):
        return None
    found = [m for m in _WORDS.finditer(question) if m.group().lower() == reference]
    if len(found) != 1:
        return None
    return question[:found[0].start()] + phrase + question[found[0].end():]


def _sentence(text: str) -> str:
    """Without a leading "and" or "so", capitalized, ending as a question does."""
    text = _CONNECTIVE_WORD.sub("", text.strip(), count=1)
    text = text[:1].upper() + text[1:]
    return text if text.endswith(("?", ".", "!")) else text + "?"


def _joined(earlier: str, question: str) -> str:
    """The follow-up after the question it follows: "How did they move to structured logging, and how long did
    that take?"."""
    head = earlier.rstrip("?.!: \t\n")
    head = head[:1].upper() + head[1:]
    if len(head) > _EARLIER_CHARS:
        head = head[:_EARLIER_CHARS].rsplit(" ", 1)[0] + "…"
    asked = question.strip()
    lead = _CONNECTIVE_WORD.match(asked)
    joint = "but" if lead and lead.group(1).lower() == "but" else "and"
    tail = asked[lead.end():] if lead else asked
    first = _WORDS.match(tail)
    if not _WORDS.search(tail):  # "and?": go on
        return f"{head}, {joint} what else?"
    if first and first.group().lower() in _OPENERS | {"there"} and not first.group().isupper():
        tail = tail[:1].lower() + tail[1:]
    return f"{head}, {joint} {tail}" + ("" if tail.endswith(("?", ".", "!")) else "?")


def as_turns(history: Iterable[Turn | Mapping | Sequence] | None, limit: int) -> list[Turn]:
    """Accept Turn records, {"role", "content"} dicts or (role, content) pairs; keep the last `limit`."""
    turns = []
    for item in history or []:
        if isinstance(item, Turn):
            turns.append(item)
        elif isinstance(item, Mapping):
            turns.append(Turn(str(item.get("role", "user")), str(item.get("content", ""))))
        else:
            role, content = item
            turns.append(Turn(str(role), str(content)))
    return [t for t in turns if t.content.strip()][-limit:] if limit else []


def own_words(question: str) -> list[str]:
    """The question's subject words, in order: no stopwords, no words that only say how it asks."""
    words = _WORD.findall(question.lower())
    return list(dict.fromkeys(w for w in words if w not in STOPWORDS and w not in _ASKING and len(w) > 1))


def dangling_reference(question: str) -> str | None:
    """The words by which the question points outside itself ("that", "it", "the second one"; "" for a
    bare ellipsis such as "why?"), or None when it can be read alone."""
    words = _WORD.findall(question.lower())
    subject = own_words(question)
    if len(subject) >= _SELF_CONTAINED:
        return None
    for i, word in enumerate(words):
        before, after = (words[i - 1] if i else ""), words[i + 1:i + 4]
        if word in _POSSESSIVE and len(set(subject) & set(words[:i])) >= _OWNER_WORDS:
            continue  # "When did Cruyff win his third Ballon d'Or?": "his" is Cruyff's
        if _points_back(word, before, after):
            return f"{before} {word}" if word in ("one", "ones", "same", "former", "latter") else word
    if _CONNECTIVE.match(question) and len(subject) <= 2 or not subject:
        return ""  # an ellipsis: "why?", "how long?", "what about contractors?"
    return None


def _points_back(word: str, before: str, after: list[str]) -> bool:
    if word in ("it", "its"):  # "is it possible to", "was it reported that": an empty subject
        return not (after and (after[0] in _EMPTY_IT or ("to" in after[:3] or "that" in after[1:3]) and word == "it"
                               and before in _AUX))
    if word == "that":  # "did that", "about that", "that?" point back; "the tool that fixed" does not
        return not before or before in _OPENERS or before in _PREPOSITIONS or not after
    if word in ("this", "these", "those"):
        return not (after and (after[0] in _CALENDAR or after[0] in ("who", "that", "which", "with")))
    if word in ("one", "ones", "same", "former", "latter"):
        return before in ("the", "that", "this", "other", "first", "second", "third", "last", "next")
    # "them" points back ("who owns them?"); "they" is most often a post's authors ("how did they cut costs?"),
    # but not in "are they encrypted?".
    if word == "they":
        return before in ("are", "were")
    return word in ("he", "she", "him", "her", "his", "hers", "them")


def is_short(question: str) -> bool:
    """Too few words of its own to be sure it names its subject: "is there a cap?", "who owns them?"."""
    return len(own_words(question)) < _SHORT


def subject_of(history: Sequence[Turn]) -> str:
    """What the conversation is about: the latest user question that stood alone and what the follow-ups
    after it added; "" when no question names anything. The answers' words are left out: adding the
    names they gave lost follow-up answers on the multi-turn eval (wiki 0.586 -> 0.552)."""
    subject: list[str] = []
    for question in (t.content for t in history if t.role == "user"):
        own = own_words(question)
        leans = dangling_reference(question) is not None or is_short(question)
        subject = list(dict.fromkeys(own + subject)) if leans else own
    return " ".join(subject[:_SUBJECT_WORDS])


def follow_up(history: Sequence[Turn], question: str) -> FollowUp | None:
    """None when the question stands alone; else what it refers by and to (subject "" if nothing)."""
    reference = dangling_reference(question)
    if reference is not None:
        return FollowUp(reference, subject_of(history))
    subject = subject_of(history) if is_short(question) else ""
    return FollowUp("", subject, certain=False) if subject else None


def speaks_of(subject: str, passages: Sequence[str]) -> list[bool]:
    """Per passage, whether it holds two (or half, if fewer) of the subject's words that any of them
    holds (a word none has, the user's own "cloud", cannot tell them apart); all False if none has any.
    On the multi-turn eval a stricter test (half of them, or closeness in meaning) lost more answers to
    follow-ups than it won abstentions."""
    wanted = {_stem(w) for w in own_words(subject)}
    held = [wanted & {_stem(w) for w in _WORD.findall(text.lower())} for text in passages]
    known = set().union(*held) if held else set()
    need = min(2, (len(known) + 1) // 2)
    return [bool(known) and len(words) >= need for words in held]


def holds_words(passage: str, question: str) -> bool:
    """Whether the passage holds any of the question's own words (all True for a question with none)."""
    held = {_stem(w) for w in _WORD.findall(passage.lower())}
    own = own_words(question)
    return not own or any(_stem(w) in held for w in own)


def _stem(word: str) -> str:
    """Crude, but enough to meet "costs", "costing" and "cost", or "optimizing" and "optimization"."""
    return _SUFFIX.sub("", word)[:5]


def usable_rewrite(rewrite: str, subject: str) -> bool:
    """A model's rewrite is used only if it is a question, not a refusal, and names the subject."""
    words = _WORD.findall(rewrite.lower())
    if not words or _REFUSAL.search(rewrite) or len(words) > 80:
        return False
    asks = rewrite.rstrip().endswith("?") or words[0] in _OPENERS
    stems = {w[:6] for w in own_words(subject)}
    return asks and (not stems or bool(stems & {w[:6] for w in words}))


def clarifying_question(question: str, reference: str) -> str:
    """What to ask back when a follow-up has nothing to refer to."""
    shown = question.strip()
    if len(shown) > 120:
        shown = shown[:117].rstrip() + "..."
    asked = f'What does "{reference}" refer to in "{shown}"?' if reference else f'What is "{shown}" about?'
    return f"{asked} Ask again with the subject named: the project, tool or policy you mean."
