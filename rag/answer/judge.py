"""The configured LLM as the judge of the sentences the local checks are not sure of (RAG_VERIFIER).

One request per answer, never one per sentence: the undecided sentences go numbered, with the passages they
cite, and the reply must be strict JSON, {"verdicts": [{"claim": 1, "verdict": ..., "quote": ...}]}. A
"supported" or "contradicted" verdict counts only when its quote is verbatim in a passage that was sent
(rag.answer.quotes), so a judge cannot keep a claim, nor remove a sound one, on words it made up. The judge
shares the answer's deadline (RAG_LLM_TIMEOUT, from when the draft began) and the endpoint's breaker; when it
fails, runs out of time or answers malformed JSON, the local verdicts stand and `failure` says so in one line.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..config import Settings
from ..errors import RagError
from .prompts import JUDGE_SYSTEM, JUDGE_USER, PASSAGE
from .quotes import QUOTE, find_verbatim

JUDGE = "judge"
# A local model's P(supported) from which its "supported" stands without the judge. Chosen on the calibration
# part of RAGTruth's dev file (scripts/reader/ragtruth_split.json) with the reading model: at 0.95, 57% of the
# sentences go to the judge and 6 of 98 hallucinated ones are kept locally (at 0.9: 42%, 10 kept).
SURE = 0.95
VERDICTS = ("supported", "unsupported", "contradicted")
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)
_MIN_TIME = 0.25  # seconds: less time left than this is not worth a request


class JudgeUnusable(Exception):
    """The judge gave no reply that can be used: the local verdicts stand."""


@dataclass(frozen=True)
class Claim:
    text: str
    cited: tuple[int, ...]  # 0-based passages it cites (none: every passage)


@dataclass(frozen=True)
class Ruling:
    verdict: str
    span: tuple[int, int, int] | None = None  # where its quote is: (0-based passage, start, end)
    quote: str = ""


class Judge:
    """Asks the LLM about the sentences an answer's local checks left undecided (`wants`), once (`rule`)."""

    def __init__(self, settings: Settings, passages: Sequence[str], everything: bool) -> None:
        self.settings = settings
        self.passages = list(passages)
        self.everything = everything  # RAG_VERIFIER=llm: every sentence its quote did not decide
        self.deadline = time.monotonic() + settings.llm_timeout  # the answer's: its draft starts now
        self.failure: str | None = None
        self.requests = 0

    def wants(self, check: str, verdict: str, score: float) -> bool:
        """Whether a sentence the local check `check` judged so goes to the judge."""
        if check == QUOTE:
            return False
        if self.everything:
            return True
        return not (verdict == "supported" and check != "overlap" and score >= SURE)

    def rule(self, claims: Sequence[Claim]) -> list[Ruling | None]:
        """One verdict per claim (None where the judge gave none that counts); [None, ...] when it failed."""
        if not claims:
            return []
        left = self.deadline - time.monotonic()
        if left < _MIN_TIME:
            self.failure = "the LLM judge was not asked: the answer had used its time (RAG_LLM_TIMEOUT)"
            return [None] * len(claims)
        from .llm import complete

        shown = sorted({p for claim in claims for p in (claim.cited or range(len(self.passages)))})
        self.requests += 1
        try:
            reply = complete(self._settings(left), JUDGE_SYSTEM, _user_text(claims, self.passages, shown))
            return _rulings(reply, claims, self.passages, shown)
        except (RagError, JudgeUnusable) as exc:
            self.failure = f"the LLM judge could not check this answer ({_first_clause(exc)}): its sentences " \
                           "were checked locally"
            return [None] * len(claims)

    def _settings(self, left: float) -> Settings:
        return self.settings.replace(llm_model=self.settings.judge_model or self.settings.llm_model,
                                     llm_timeout=left)


def judge_for(settings: Settings, passages: Sequence[str], drafted_by_llm: bool = True) -> Judge | None:
    """The judge RAG_VERIFIER asks for, or None: `local` and `overlap` never; `auto` only with an LLM
    configured and for a draft an LLM wrote (the extractive answer copies its passages' sentences)."""
    if settings.verifier in ("local", "overlap"):
        return None
    if settings.verifier == "auto" and (settings.openai_api_key is None or not drafted_by_llm):
        return None
    if settings.openai_api_key is None:
        from .llm import LLMConfigError

        raise LLMConfigError("RAG_VERIFIER=llm needs an LLM to judge with: set OPENAI_API_KEY (and OPENAI_BASE_URL), "
                             "or set RAG_VERIFIER=local")
    return Judge(settings, passages, everything=settings.verifier == "llm")


def _user_text(claims: Sequence[Claim], passages: Sequence[str], shown: Sequence[int]) -> str:
    blocks = "\n\n".join(PASSAGE.format(marker=p + 1, titles="", text=passages[p].replace("</passage>", "</ passage>"))
                         for p in shown)
    listed = "\n".join(f"{n}. {' '.join(claim.text.split())} (cites "
                       f"{', '.join(str(p + 1) for p in claim.cited) or 'any passage'})"
                       for n, claim in enumerate(claims, 1))
    return JUDGE_USER.format(passages=blocks, claims=listed)


def _rulings(reply: str, claims: Sequence[Claim], passages: Sequence[str], shown: Sequence[int]) -> list[Ruling | None]:
    """The reply's verdicts, each checked: JudgeUnusable for a reply that is not the JSON asked for."""
    fenced = _FENCE.match(reply)
    try:
        data = json.loads(fenced.group(1) if fenced else reply)
        verdicts = data["verdicts"]
        if not isinstance(verdicts, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise JudgeUnusable("its reply was not the JSON asked for") from None
    rulings: list[Ruling | None] = [None] * len(claims)
    for item in verdicts:
        if not isinstance(item, dict) or item.get("verdict") not in VERDICTS:
            raise JudgeUnusable("its reply was not the JSON asked for")
        number, quote = item.get("claim"), item.get("quote") or ""
        if not isinstance(number, int) or not 1 <= number <= len(claims) or not isinstance(quote, str):
            raise JudgeUnusable("its reply was not the JSON asked for")
        claim = claims[number - 1]
        rulings[number - 1] = _ruling(item["verdict"], quote, claim.cited or shown, passages)
    return rulings


def _ruling(verdict: str, quote: str, where: Sequence[int], passages: Sequence[str]) -> Ruling | None:
    """A verdict that counts: "unsupported" as it is, the others only with their quote found verbatim."""
    if verdict == "unsupported":
        return Ruling(verdict)
    for passage in where:
        found = find_verbatim(quote, passages[passage]) if quote.strip() else None
        if found is not None:
            return Ruling(verdict, (passage, *found), quote)
    return None  # a quote it made up: the local verdict stands


def _first_clause(exc: BaseException) -> str:
    return str(exc).split(": ", 1)[0].split("; ", 1)[0] or type(exc).__name__
