"""Evaluate the ONNX claim verifier on ragtruth_qa_dev.jsonl (onnxruntime + tokenizers only; no torch).

Protocol: each response is split into sentences (project regex, < 4-word sentences joined to the next); a
sentence is hallucinated when it overlaps a labelled span by >= 4 characters. Each sentence is checked against
the sentences of all 3 passages: evidence.candidates() picks up to K candidate evidence strings by IDF-weighted
word overlap; every (claim, evidence) pair is scored by the cross-encoder; the sentence is kept (supported)
when max P(supported) >= threshold. A response is flagged when any of its sentences is removed.

    python evaluate.py --onnx onnx/verifier.onnx [--threshold T | --tune] [--k 3] [--misses misses.jsonl]
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from claims import is_meta
from common import label_sentences, load_ragtruth, load_split
from evidence import candidates, split_passages
from lexical import features
from tokenizers import Tokenizer

CASE_PASSAGE = ("Structured logging was the single highest-ROI infrastructure investment we made all year. "
                "Moving from free-text log lines to JSON with consistent field names meant our dashboards, alerts, "
                "and incident investigations all got dramatically better overnight. The migration took one engineer "
                "two weeks.")
CASE_OTHERS = ["Our cost optimization effort started with the boring stuff: right-sizing instances, cleaning up "
               "orphaned resources, and switching to reserved capacity for predictable workloads. These unglamorous "
               "changes saved more than any architectural redesign would have.",
               "Post-mortems without action items are just storytelling. We implemented a strict follow-up process: "
               "every post-mortem produces at most three concrete action items, each assigned to a specific person "
               "with a deadline."]
CASES = [("The migration took three engineers six months.", False),
         ("Structured logging was the lowest-ROI investment we made all year.", False),
         ("Moving to JSON logs made dashboards worse overnight.", False),
         ("Switching to JSON logging improved alerting and incident response.", True),
         ("Their dashboards became far more useful once logs were structured.", True)]


class Verifier:
    def __init__(self, onnx_path: str, tokenizer_path: str, k: int = 3, threads: int = 2, max_length: int = 128):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        self.tok = Tokenizer.from_file(tokenizer_path)
        self.tok.no_padding()
        self.tok.enable_truncation(max_length=max_length)
        self.k = k

    def score_pairs(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """P(supported) for each (claim, evidence) pair: [CLS] claim [SEP] evidence [SEP]."""
        if not pairs:
            return np.zeros(0)
        encs = self.tok.encode_batch(pairs)
        order = np.argsort([len(e.ids) for e in encs])
        probs = np.zeros(len(pairs))
        for start in range(0, len(order), 32):
            idx = order[start:start + 32]
            L = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), L), dtype=np.int64)
            tt = np.zeros((len(idx), L), dtype=np.int64)
            am = np.zeros((len(idx), L), dtype=np.int64)
            for r, i in enumerate(idx):
                e = encs[i]
                n = len(e.ids)
                ids[r, :n], tt[r, :n], am[r, :n] = e.ids, e.type_ids, 1
            logits = self.sess.run(None, {"input_ids": ids, "attention_mask": am, "token_type_ids": tt})[0]
            z = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs[idx] = (z / z.sum(axis=1, keepdims=True))[:, 0]
        return probs

    def score_answer(self, sentences: list[str], passages: list[str], mode: str = "all"
                     ) -> tuple[list[list[float]], list[list[str]]]:
        """Per sentence: P(supported) of each candidate evidence scored, and the candidates.

        mode "all": top-1, top-2 and the top-1+2 window (<= 3 pairs per sentence); "win": the top-1+2 window
        only (1 pair); "top1": the top-1 sentence only (1 pair)."""
        psents = split_passages(passages)
        pairs, owner, cands_of = [], [], []
        for si, s in enumerate(sentences):
            c = candidates(s, psents, 3)
            if mode == "win":
                c = c[-1:]
            elif mode == "top1":
                c = c[:1]
            cands_of.append(c)
            for ev in c:
                pairs.append((s, ev))
                owner.append(si)
        probs = self.score_pairs(pairs)
        per = [[] for _ in sentences]
        for p, si in zip(probs, owner):
            per[si].append(float(p))
        return per, cands_of


def sentence_score(probs: list[float], feats: dict, combo: dict | None) -> float:
    """max P(supported) over candidates; with `combo`, a logistic mix with the lexical coverage features."""
    p = max(probs) if probs else 0.0
    if not combo:
        return p
    x = feature_vector(p, feats)
    z = sum(w * v for w, v in zip(combo["w"], x)) + combo["b"]
    return 1.0 / (1.0 + math.exp(-z))


def feature_vector(p: float, feats: dict) -> list[float]:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return [math.log(p / (1 - p)), feats["coverage"], min(feats["novel_numbers"], 3)]


def fit_combo(recs: list[dict]) -> dict:
    """Logistic regression (numpy, L2) of 'sentence is clean' on [logit P(sup), coverage, novel numbers]."""
    X = np.array([feature_vector(max(s["probs"]) if s["probs"] else 0.0, s["feats"])
                  for r in recs for s in r["sents"]])
    y = np.array([0.0 if s["hallucinated"] else 1.0 for r in recs for s in r["sents"]])
    mu, sd = X.mean(0), X.std(0) + 1e-9
    Xs = (X - mu) / sd
    w = np.zeros(X.shape[1])
    b = 0.0
    for _ in range(3000):
        z = Xs @ w + b
        pr = 1 / (1 + np.exp(-z))
        gw = Xs.T @ (pr - y) / len(y) + 0.01 * w
        gb = float((pr - y).mean())
        w -= 0.5 * gw
        b -= 0.5 * gb
    w_raw = w / sd
    b_raw = b - float((w * mu / sd).sum())
    return {"w": [round(float(v), 4) for v in w_raw], "b": round(b_raw, 4),
            "features": ["logit max P(supported)", "lexical coverage of claim by passages", "novel numbers"]}


def metrics(recs: list[dict], thr: float) -> dict:
    clean = [s for r in recs for s in r["sents"] if not s["hallucinated"]]
    hal = [s for r in recs for s in r["sents"] if s["hallucinated"]]
    kept = sum(s["score"] >= thr for s in clean) / max(1, len(clean))
    removed = sum(s["score"] < thr for s in hal) / max(1, len(hal))
    tp = fp = fn = 0
    for r in recs:
        flagged = any(s["score"] < thr for s in r["sents"])
        pos = r["positive"]
        tp += flagged and pos
        fp += flagged and not pos
        fn += (not flagged) and pos
    p = tp / max(1, tp + fp)
    rc = tp / max(1, tp + fn)
    f1 = 2 * p * rc / max(1e-9, p + rc)
    lat = [r["ms"] for r in recs if "ms" in r]
    return {"answers": len(recs), "clean": len(clean), "hal": len(hal), "clean_kept": kept, "hal_removed": removed,
            "P": p, "R": rc, "F1": f1, "p50_ms": float(np.percentile(lat, 50)) if lat else 0.0,
            "p95_ms": float(np.percentile(lat, 95)) if lat else 0.0}


def choose_threshold(recs: list[dict], min_kept: float = 0.92) -> float:
    """On the tune part: the highest threshold that keeps >= min_kept of clean sentences."""
    best = 0.05
    for thr in np.arange(0.02, 0.99, 0.01):
        if metrics(recs, thr)["clean_kept"] >= min_kept:
            best = float(thr)
    return round(best, 2)


def fmt(name: str, m: dict) -> str:
    return (f"{name:<28} {m['answers']:>4} {m['clean']:>5} {m['hal']:>4}  {m['clean_kept']:.3f}  "
            f"{m['hal_removed']:.3f}  {m['P']:.2f} {m['R']:.2f} {m['F1']:.2f}  {m['p50_ms']:6.1f} {m['p95_ms']:6.1f}")


HEADER = (f"{'part':<28} {'ans':>4} {'clean':>5} {'hal':>4}  kept   removed P    R    F1    p50ms  p95ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", default="onnx/verifier.onnx")
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--threshold", type=float, default=None, help="override the stored threshold")
    ap.add_argument("--tune", action="store_true", help="choose mode/combo/threshold on the tune part and store them")
    ap.add_argument("--mode", default=None, choices=["all", "win", "top1"])
    ap.add_argument("--combo", default=None, choices=["yes", "no"], help="mix in lexical coverage features")
    ap.add_argument("--skip-meta", default=None, choices=["yes", "no"],
                    help="keep sentences about the sources (claims.is_meta) unchecked")
    ap.add_argument("--min-kept", type=float, default=0.92)
    ap.add_argument("--misses", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--rescore", action="store_true", help="ignore the cached pair scores next to the model")
    ap.add_argument("--no-latency", action="store_true")
    args = ap.parse_args()
    onnx_path = Path(args.onnx)
    meta_path = onnx_path.parent / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    ver = Verifier(str(onnx_path), args.tokenizer or str(onnx_path.parent / "tokenizer.json"))

    rows = load_ragtruth()
    split = load_split()
    part_of = {sid: part for part in ("heldout", "tune", "train") for sid in split[f"{part}_source_ids"]}
    ver.score_answer(["Warm up the session now."], ["Warm up."])  # first run allocates
    # 1) score every candidate pair once (mode "all"); other modes are subsets of these pairs
    cache_path = onnx_path.with_name(onnx_path.name + ".scores.json")
    cache = {} if args.rescore or not cache_path.exists() else json.loads(cache_path.read_text())
    recs = []
    for row in rows:
        sents = label_sentences(row)
        if row["id"] in cache:
            probs, cands = cache[row["id"]]
        else:
            probs, cands = ver.score_answer([s["text"] for s in sents], row["passages"], "all")
            cache[row["id"]] = [probs, cands]
        for s, pr, c in zip(sents, probs, cands):
            s["probs_all"], s["cands"] = pr, c
            s["feats"] = features(s["text"], row["passages"])
        recs.append({"id": row["id"], "model": row["model"], "part": part_of[row["source_id"]], "sents": sents,
                     "positive": bool(row["hallucinated_spans"]), "row": row})

    cache_path.write_text(json.dumps(cache))

    def apply(mode: str, combo: dict | None, skip_meta: bool = False) -> None:
        for r in recs:
            for s in r["sents"]:
                pa = s["probs_all"]
                s["probs"] = pa if mode == "all" else (pa[-1:] if mode == "win" else pa[:1])
                s["score"] = sentence_score(s["probs"], s["feats"], combo)
                if skip_meta and is_meta(s["text"]):
                    s["score"] = 1.0

    tune = [r for r in recs if r["part"] == "tune"]
    if args.tune or "mode" not in meta:
        # choose mode and whether to mix in lexical features on the tune part: best hal_removed at min_kept
        best = None
        for mode in ("all", "win", "top1"):
          for use_combo in (False, True):
            for skip_meta in (False, True):
                apply(mode, None, skip_meta)
                combo = fit_combo(tune) if use_combo else None
                apply(mode, combo, skip_meta)
                thr = choose_threshold(tune, args.min_kept)
                m = metrics(tune, thr)
                print(f"tune: mode {mode:<4} combo {use_combo!s:<5} skip_meta {skip_meta!s:<5} thr {thr:.2f} "
                      f"kept {m['clean_kept']:.3f} removed {m['hal_removed']:.3f} F1 {m['F1']:.2f}")
                key = (round(m["hal_removed"] + 0.5 * m["F1"], 4), mode != "all")  # prefer cheaper on ties
                if best is None or key > best[0]:
                    best = (key, mode, combo, thr, skip_meta)
        _, mode, combo, thr, skip_meta = best
        meta.update({"mode": mode, "combo": combo, "threshold": thr, "skip_meta": skip_meta,
                     "threshold_rule": f"highest threshold keeping >= {args.min_kept} of clean sentences on the "
                                       "tune part; mode/combo chosen on the tune part"})
        meta_path.write_text(json.dumps(meta, indent=1))
    mode = args.mode or meta["mode"]
    combo = meta.get("combo") if args.combo is None else (meta.get("combo") if args.combo == "yes" else None)
    if args.combo == "yes" and not combo:
        apply(mode, None, meta.get("skip_meta", False))
        combo = fit_combo(tune)
    skip_meta = meta.get("skip_meta", False) if args.skip_meta is None else args.skip_meta == "yes"
    apply(mode, combo, skip_meta)
    thr = args.threshold if args.threshold is not None else meta["threshold"]
    changed = ((args.mode and args.mode != meta.get("mode")) or (args.combo and bool(combo) != bool(meta.get("combo")))
               or (args.skip_meta and skip_meta != meta.get("skip_meta", False)))
    if changed and args.threshold is None:
        thr = choose_threshold(tune, args.min_kept)

    # 2) latency: the whole per-answer path (split, candidates, features, tokenise, onnxruntime) in this mode
    for r in ([] if args.no_latency else recs):
        t = time.perf_counter()
        sents = [s["text"] for s in r["sents"] if not (skip_meta and is_meta(s["text"]))]
        probs, _ = ver.score_answer(sents, r["row"]["passages"], mode)
        for s, pr in zip(sents, probs):
            sentence_score(pr, features(s, r["row"]["passages"]), combo)
        r["ms"] = (time.perf_counter() - t) * 1000

    print(f"model {onnx_path}  mode {mode}  combo {combo}  skip_meta {skip_meta}  threshold {thr}")
    print(HEADER)
    table = {}
    for name, sel in [("HELD-OUT", lambda r: r["part"] == "heldout"), ("tune", lambda r: r["part"] == "tune"),
                      ("train", lambda r: r["part"] == "train"), ("whole file", lambda r: True)]:
        m = metrics([r for r in recs if sel(r)], thr)
        table[name] = m
        print(fmt(name, m))
    for scope in ("heldout", "whole"):
        for model in sorted({r["model"] for r in recs}):
            sub = [r for r in recs if r["model"] == model and (scope == "whole" or r["part"] == "heldout")]
            m = metrics(sub, thr)
            table[f"{scope}:{model}"] = m
            print(fmt(f"  {scope}:{model}", m))
    ho = [r for r in recs if r["part"] == "heldout"]
    print("held-out sweep (for the record; the threshold is chosen on the tune part):")
    for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        print(fmt(f"  thr {t}", metrics(ho, t)))
    # sanity cases
    passages = [CASE_PASSAGE] + CASE_OTHERS
    probs, _ = ver.score_answer([c for c, _ in CASES], passages, mode)
    ok = 0
    print("cases (passage: structured-logging paragraph of corpus/case-studies.txt + 2 other paragraphs):")
    for (c, want), pr in zip(CASES, probs):
        sc = sentence_score(pr, features(c, passages), combo)
        got = sc >= thr
        ok += got == want
        print(f"  {'ok  ' if got == want else 'MISS'} score={sc:.3f} P(sup)={max(pr):.3f} "
              f"want {'SUPPORTED' if want else 'removed'}: {c}")
    print(f"cases right: {ok}/{len(CASES)}")
    table["cases_right"] = ok
    if args.misses:
        with open(args.misses, "w") as f:
            for r in ho:
                for s in r["sents"]:
                    if (s["score"] < thr) != s["hallucinated"]:
                        f.write(json.dumps({"id": r["id"], "model": r["model"], "hallucinated": s["hallucinated"],
                                            "score": round(s["score"], 3), "probs": [round(x, 3) for x in s["probs"]],
                                            "coverage": round(s["feats"]["coverage"], 2), "text": s["text"],
                                            "evidence": s["cands"]}, ensure_ascii=False) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"threshold": thr, "mode": mode, "combo": combo, "table": table},
                                              indent=1))


if __name__ == "__main__":
    main()
