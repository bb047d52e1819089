"""Export a trained CrossEncoder dir to ONNX: fp32 (fused attention, external data) and int8 (dynamic quant).

    python export.py --model models/verifier --out onnx/
writes onnx/verifier.onnx (+ verifier.onnx.data), onnx/verifier.int8.onnx, onnx/tokenizer.json, onnx/meta.json
and checks onnxruntime logits against torch on a few pairs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/verifier")
    ap.add_argument("--out", default="onnx")
    args = ap.parse_args()
    import numpy as np
    import onnxruntime as ort
    import torch
    import transformers
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from tokenizers import Tokenizer

    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(args.model, attn_implementation="eager")
    model.eval()

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, ANN202
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    raw = out / "raw.onnx"
    dummy = torch.ones((2, 8), dtype=torch.int64)
    dyn = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(Logits().eval(), (dummy, dummy, torch.zeros_like(dummy)), str(raw),
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["logits"],
                          dynamic_axes={"input_ids": dyn, "attention_mask": dyn, "token_type_ids": dyn,
                                        "logits": {0: "batch"}},
                          opset_version=17, dynamo=False)
    cfg = model.config
    fused = optimize_model(str(raw), model_type="bert", num_heads=cfg.num_attention_heads, hidden_size=cfg.hidden_size)
    fp32 = out / "verifier.onnx"
    for p in (fp32, out / "verifier.onnx.data"):
        if p.exists():
            p.unlink()
    fused.save_model_to_file(str(fp32), use_external_data_format=True, all_tensors_to_one_file=True)
    int8 = out / "verifier.int8.onnx"
    quantize_dynamic(str(raw), str(int8), weight_type=QuantType.QInt8)  # the unfused graph quantizes cleanly
    raw.unlink()
    for extra in Path(str(raw) + ".data"), out / "raw.onnx.data":
        if extra.exists():
            extra.unlink()
    shutil.copy(Path(args.model) / "tokenizer.json", out / "tokenizer.json")

    # check against torch
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=128)
    pairs = [("The migration took three engineers six months.", "The migration took one engineer two weeks."),
             ("Paris is in France.", "Paris is the capital and largest city of France.")]
    hf = transformers.AutoTokenizer.from_pretrained(args.model)
    with torch.no_grad():
        b = hf([a for a, _ in pairs], [e for _, e in pairs], padding=True, return_tensors="pt")
        ref = model(**b).logits.numpy()
    meta = {"labels": [cfg.id2label[i] for i in range(cfg.num_labels)], "max_length": 128}
    for path in (fp32, int8):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        got = []
        for a, e in pairs:
            enc = tok.encode(a, e)
            feed = {"input_ids": np.array([enc.ids], dtype=np.int64),
                    "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
                    "token_type_ids": np.array([enc.type_ids], dtype=np.int64)}
            got.append(s.run(None, feed)[0][0])
        diff = float(np.abs(np.array(got) - ref).max())
        size = path.stat().st_size + (Path(str(path) + ".data").stat().st_size
                                      if Path(str(path) + ".data").exists() else 0)
        print(f"{path.name}: max |logit diff| vs torch {diff:.4f}; size {size / 1e6:.1f} MB")
        meta[path.name] = {"sha256": sha256(path), "bytes": size, "max_logit_diff_vs_torch": diff}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
