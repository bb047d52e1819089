"""Helpers the benchmark scripts share: timing, fresh processes, peak memory, the machine, corpora.

Every script prints one JSON object in which each figure sits next to the floor it is compared with,
measured in the same run on the same machine.
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
RAG = str(Path(sys.executable).with_name("rag"))
SHIPPED_CORPUS = ROOT / "corpus"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUESTIONS = [
    "How did they cut cloud costs?", "Why did the database fail during traffic spikes?",
    "What did mob programming do to defect rates?", "How are breaking API changes announced?",
    "How long did the move to JSON logs take?", "Which cheap, unexciting changes reduced the cloud bill?",
]


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def percentile(values, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def ratio(value: float, floor: float) -> float:
    return round(value / floor, 3) if floor else float("nan")


def env_for(index_dir: Path | None = None, corpus_dir: Path | None = None, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["HF_HUB_OFFLINE"] = "1"
    if index_dir:
        env["RAG_INDEX_DIR"] = str(index_dir)
    if corpus_dir:
        env["RAG_CORPUS_DIR"] = str(corpus_dir)
    env.update(extra)
    return env


GNU_TIME = "/usr/bin/time"


def run_child(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MiB, stdout) of one fresh process.

    The peak RSS is GNU time's %M (the child's own ru_maxrss). Not os.wait4 from here: a child forked
    from this (large) process starts with this process's high-water mark, so it would read too high.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as peak:
        start = time.perf_counter()
        proc = subprocess.run([GNU_TIME, "-f", "%M", "-o", peak.name, *argv], env=env, cwd=cwd,
                              stdout=out, stderr=err)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(argv[:3])} exited {proc.returncode}: {err.read().decode()[-800:]}")
        return wall, int(peak.read().split()[-1]) / 1024, out.read().decode()


def fresh_process(argv: list[str], env: dict[str, str], cwd: Path, runs: int) -> dict:
    """Median wall time and peak RSS over several fresh processes, run one after another."""
    walls, rss = [], []
    for _ in range(runs):
        wall, peak, _ = run_child(argv, env, cwd)
        walls.append(wall)
        rss.append(peak)
    return {"median_s": round(statistics.median(walls), 3), "min_s": round(min(walls), 3), "runs": runs,
            "peak_rss_mib": round(statistics.median(rss), 1)}


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    return {"nproc": os.cpu_count(), "cpu": model.group(1).strip() if model else "unknown",
            "ram_gib": round(int(mem.group(1)) / 2**20, 1) if mem else None, "python": sys.version.split()[0]}


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other work on the machine makes timings noisier)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


WORDS = ["service", "database", "cache", "latency", "queue", "deploy", "rollback", "cluster", "region", "traffic", "shard", "replica", "index", "query", "budget", "cost", "invoice", "vendor", "contract", "team", "review", "incident", "outage", "alert", "pager", "metric", "dashboard", "trace", "log", "schema", "migration", "release", "canary", "feature", "flag", "backlog", "sprint", "estimate", "capacity", "storage", "bucket", "network", "gateway", "proxy", "timeout", "retry", "client", "server", "request", "response", "build", "pipeline", "test", "coverage", "refactor", "module", "library", "upgrade", "kernel", "container", "image", "registry", "scheduler", "worker", "batch", "stream", "event", "consumer", "producer"]


def synthetic_corpus(folder: Path, passages: int = 2000, per_post: int = 20, seed: int = 7) -> Path:
    """Markdown posts of paragraph-sized passages (~70 words, 4-6 sentences each), deterministic."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for post in range(passages // per_post):
        lines = [f"# Case study {post}: the {rng.choice(WORDS)} {rng.choice(WORDS)}", ""]
        for para in range(per_post):
            if para % 5 == 0:
                lines += [f"## Part {para // 5}: {rng.choice(WORDS)}", ""]
            sentences = []
            for _ in range(rng.randint(4, 6)):
                words = [rng.choice(WORDS) for _ in range(rng.randint(10, 16))]
                number = f" in {rng.randint(2, 90)} days" if rng.random() < 0.3 else ""
                sentences.append(" ".join(words).capitalize() + number + ".")
            lines += [f"Post {post} paragraph {para}. " + " ".join(sentences), ""]
        (folder / f"post-{post:04d}.md").write_text("\n".join(lines), encoding="utf-8")
    return folder


def emit(report: dict) -> None:
    print(json.dumps(report, indent=2))
