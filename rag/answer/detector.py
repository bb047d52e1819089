"""Published hallucination detectors as the claim check: token classifiers of the LettuceDetect kind.

Such a model reads the passages and an answer together and marks each answer token it finds unsupported
(label 1). RAG_VERIFIER_MODEL may name one, a local folder or a Hugging Face Hub name; it is recognised by
its config (an architecture ending in ForTokenClassification). Each claim is read with the passages, cited
ones first, in the RAGTruth question-answering layout these detectors were trained on; a claim with a marked
token is unsupported, and the marked words are its reason. torch and transformers (which sentence-transformers
brings) are imported only then, and the model loads once per process. Nothing is downloaded unless the user
names a Hub model.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

from ..errors import VerifierUnavailable
from ..extras import require
from .citations import support
from .verify import SUPPORTED_VERDICT, UNSUPPORTED_VERDICT, Check, Span, _best_span

# The layout of RAGTruth's question-answering prompts, which detectors of this kind were trained to read.
_LAYOUT = ("Briefly answer the following question:\n{question}\nBear in mind that your response should be strictly "
           "based on the following {count} passages:\n{passages}\noutput:\n")
_MARKED = 0.5  # P(unsupported) of a token from which it is marked, as the detectors' own argmax over 2 labels
_MAX_TOKENS = 4096


@functools.lru_cache(maxsize=8)  # asked once per answer: a Hub name's config is fetched once per process
def is_detector(name: str) -> bool:
    """Whether `name` (a folder or a Hub name) is a token-classification model."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            return False
    else:
        try:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(name).to_dict()
        except Exception:  # noqa: BLE001 - not a Hub model of this kind (or no network): the other loaders say why
            return False
    return any(str(a).endswith("ForTokenClassification") for a in config.get("architectures") or ())


class DetectorVerifier:
    """A token-classification detector as a ClaimVerifier; `name` (its folder or Hub name) is the check."""

    def __init__(self, name: str) -> None:
        self.name = Path(name).name or name
        self._tokenizer, self._model = _load(name)
        self.max_tokens = min(int(getattr(self._tokenizer, "model_max_length", _MAX_TOKENS)), _MAX_TOKENS)

    def check(self, claim: str, passages: Sequence[str], cited: Sequence[int] = (), question: str = "") -> Check:
        order = [*dict.fromkeys([*cited, *range(len(passages))])]
        prompt = _LAYOUT.format(question=question or "(see the passages)", count=len(order),
                                passages="\n".join(f"passage {n + 1}: {passages[i]}" for n, i in enumerate(order)))
        marked, worst = self._marked(prompt, claim)
        if marked:
            words = " … ".join(claim[start:end] for start, end in marked)
            return Check(claim, UNSUPPORTED_VERDICT, 1 - worst, reason=f"the detector marks '{words}' as unsupported")
        found = [i for i in cited if 0 <= i < len(passages)] or [max(range(len(passages)),
                                                                      key=lambda i: support(claim, passages[i]))]
        evidence: tuple[Span, ...] = tuple(_best_span(claim, passages, i) for i in found)
        return Check(claim, SUPPORTED_VERDICT, 1 - worst, tuple(found), evidence)

    def _marked(self, prompt: str, claim: str) -> tuple[list[tuple[int, int]], float]:
        """The claim's character spans the model marks, joined where they touch, and the highest P(marked)."""
        import torch

        encoding = self._tokenizer(prompt, claim, truncation="only_first", max_length=self.max_tokens,
                                   return_offsets_mapping=True, return_tensors="pt")
        offsets = encoding.pop("offset_mapping")[0].tolist()
        in_claim = [sequence == 1 for sequence in encoding.sequence_ids(0)]
        with torch.no_grad():
            probabilities = torch.softmax(self._model(**encoding).logits[0], dim=-1)[:, 1].tolist()
        spans: list[tuple[int, int]] = []
        worst = 0.0
        for (start, end), mine, p in zip(offsets, in_claim, probabilities):
            if not mine or start == end:
                continue
            worst = max(worst, p)
            if p >= _MARKED:
                spans = spans[:-1] + [(spans[-1][0], end)] if spans and start - spans[-1][1] <= 1 else \
                    [*spans, (start, end)]
        return spans, worst


@functools.lru_cache(maxsize=2)
def _load(name: str):
    """The tokenizer and model, once per process (the app's sessions and the API share them)."""
    require("transformers", "detectors", "a hallucination detector (RAG_VERIFIER_MODEL)")
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForTokenClassification.from_pretrained(name)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VerifierUnavailable(name, reason) from None
    model.eval()
    return tokenizer, model
