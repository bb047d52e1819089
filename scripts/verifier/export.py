"""Export a trained cross-encoder with the product's own exporter (rag.answer.crossencoder_export), fp32 and
int8, into the folder layout RAG_VERIFIER_MODEL loads (model.onnx, tokenizer.json, meta.json), and check
the onnxruntime probabilities against torch's.

    python export.py --model models/v2 --out onnx     # writes onnx/fp32/ and onnx/int8/
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PAIRS = [("The migration took three engineers six months.", "The migration took one engineer two weeks."),
         ("Paris is in France.", "Paris is the capital and largest city of France.")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="models/verifier")
    parser.add_argument("--out", default="onnx")
    args = parser.parse_args()
    import numpy as np
    import torch
    import transformers

    from rag.answer.crossencoder import CrossEncoder
    from rag.answer.crossencoder_export import export_cross_encoder

    model = transformers.AutoModelForSequenceClassification.from_pretrained(args.model).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(args.model)
    with torch.no_grad():
        batch = tokenizer([a for a, _ in PAIRS], [b for _, b in PAIRS], padding=True, return_tensors="pt")
        reference = torch.softmax(model(**batch).logits, dim=-1).numpy()
    for name, quantize in (("fp32", False), ("int8", True)):
        folder = Path(args.out) / name
        export_cross_encoder(Path(args.model), folder, quantize=quantize)
        encoder = CrossEncoder(folder)
        got = encoder.scores(PAIRS)
        expected = np.zeros_like(got)
        for column, target in enumerate(encoder.columns):
            expected[:, target] += reference[:, column]
        size = sum(p.stat().st_size for p in folder.iterdir())
        digest = hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
        print(f"{name}: max |probability diff| vs torch {float(np.abs(got - expected).max()):.4f}; "
              f"{size / 1e6:.1f} MB; model.onnx sha256 {digest}")
        print(json.dumps(json.loads((folder / "meta.json").read_text())))


if __name__ == "__main__":
    main()
