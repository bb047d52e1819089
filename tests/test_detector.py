"""Published hallucination detectors (issue 32, part 3): a token-classification model of LettuceDetect's
architecture (ModernBERT), tiny and randomly initialised, saved by the test and named by RAG_VERIFIER_MODEL.
Its classifier's bias decides what it marks, so the verdicts it must give are known."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import rag
from rag import Settings, verify
from rag.answer import detector
from rag.answer.detector import DetectorVerifier, is_detector
from rag.errors import VerifierUnavailable

READER = Path(rag.__file__).parent / "models" / "reader"
PASSAGE = ("Database connection pooling was our biggest blind spot. A simple PgBouncer setup eliminated the issue "
           "entirely.")


@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory):
    """Save a 2-layer ModernBERT token classifier and the reading model's tokenizer; yield a function that
    sets what the classifier marks (its bias) and gives the folder."""
    from transformers import ModernBertConfig, ModernBertForTokenClassification, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("lettuce-tiny")
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(READER / "tokenizer.json"),
                                        unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                                        mask_token="[MASK]", model_max_length=512)
    tokenizer.save_pretrained(folder)
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in
           (("cls", "[CLS]"), ("sep", "[SEP]"), ("pad", "[PAD]"))}
    torch.manual_seed(0)
    config = ModernBertConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, num_labels=2, pad_token_id=ids["pad"], bos_token_id=ids["cls"],
                              eos_token_id=ids["sep"], cls_token_id=ids["cls"], sep_token_id=ids["sep"],
                              max_position_embeddings=512)
    model = ModernBertForTokenClassification(config)

    def saved(marks_everything: bool):
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.copy_(torch.tensor([0.0, 5.0] if marks_everything else [5.0, 0.0]))
        model.save_pretrained(folder)
        detector._load.cache_clear()
        return folder

    return saved


def test_a_detector_that_marks_nothing_keeps_the_claim_with_its_evidence(tiny_detector):
    folder = tiny_detector(marks_everything=False)
    assert is_detector(str(folder)) and not is_detector(str(READER))
    checked = verify("A simple PgBouncer setup eliminated the issue [1].", [PASSAGE],
                     Settings(verifier_model=str(folder), verifier="local"))
    (sentence,) = checked.sentences
    assert sentence.supported and sentence.check == folder.name and sentence.citations == (1,)
    start, end = sentence.evidence[0][1:]
    assert PASSAGE[start:end] == "A simple PgBouncer setup eliminated the issue entirely."


def test_a_detector_that_marks_the_words_removes_the_claim_and_says_which(tiny_detector):
    folder = tiny_detector(marks_everything=True)
    verifier = DetectorVerifier(str(folder))
    check = verifier.check("PgBouncer made it worse.", [PASSAGE], [0])
    assert check.verdict == "unsupported" and check.score < 0.1
    assert check.reason == "the detector marks 'PgBouncer made it worse.' as unsupported"


def test_a_broken_detector_folder_is_one_line(tiny_detector, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"architectures": ["ModernBertForTokenClassification"]}')
    detector._load.cache_clear()
    with pytest.raises(VerifierUnavailable, match="cannot load the claim verifier") as refused:
        DetectorVerifier(str(broken))
    assert "\n" not in str(refused.value)


def test_the_question_and_the_cited_passage_first_reach_the_detector(tiny_detector, monkeypatch):
    folder = tiny_detector(marks_everything=False)
    read: list[str] = []
    monkeypatch.setattr(DetectorVerifier, "_marked", lambda self, prompt, claim: (read.append(prompt), ([], 0.0))[1])
    verify("A simple PgBouncer setup eliminated the issue [2].", ["Another passage.", PASSAGE],
           Settings(verifier_model=str(folder), verifier="local"), question="Which pooler fixed it?")
    assert "Which pooler fixed it?" in read[0]
    assert read[0].index("passage 1: Database connection pooling") < read[0].index("passage 2: Another passage.")
