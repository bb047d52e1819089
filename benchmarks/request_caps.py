"""The heaviest request `rag serve` accepts at its default caps: how long one takes.

    .venv/bin/python benchmarks/request_caps.py [--runs 3]

- an index of the shipped corpus in a temporary folder (`rag ingest`), served in this process through
  FastAPI's TestClient (the route code, caps and rate limit as `rag serve` runs them, without HTTP);
- verify at the caps: RAG_SERVER_MAX_PASSAGES passages of RAG_SERVER_MAX_PASSAGE_CHARS characters of
  corpus words, and an answer of RAG_SERVER_MAX_SENTENCES cited sentences, with the default verifier
  and with RAG_VERIFIER_MODEL=reader;
- ask at the caps: a RAG_MAX_QUESTION_CHARS-character question with k = RAG_SERVER_MAX_PASSAGES;
- each timed `--runs` times after one warm-up; the goal is well under a minute for any query (10 s here).
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

from common import SHIPPED_CORPUS, emit, load_average, machine, timed
from fastapi.testclient import TestClient

from rag import Assistant, Settings
from rag.server.api import create_app

GOAL_S = 10.0


def words_text(words: list[str], chars: int, rng: random.Random) -> str:
    """`chars` characters of corpus words, a sentence end every ~16 words."""
    out: list[str] = []
    while sum(len(w) + 1 for w in out) < chars:
        out.append(rng.choice(words) + ("." if rng.random() < 0.06 else ""))
    return " ".join(out)[:chars]


def heaviest_verify(settings: Settings, words: list[str]) -> dict:
    rng = random.Random(5)
    passages = [words_text(words, settings.server_max_passage_chars, rng) for _ in range(settings.server_max_passages)]
    sentences = [words_text(words, 180, rng).rstrip(".") + f" [{n % len(passages) + 1}]."
                 for n in range(settings.server_max_sentences)]
    return {"passages": passages, "answer": " ".join(sentences)}


def timings(api: TestClient, path: str, body: dict, runs: int) -> dict:
    assert api.post(path, json=body).status_code == 200  # warm-up, and the caps let it through
    seconds = [timed(lambda: api.post(path, json=body))[1] for _ in range(runs)]
    return {"seconds": [round(s, 2) for s in seconds], "worst_s": round(max(seconds), 2), "goal_s_below": GOAL_S,
            "meets_goal": max(seconds) < GOAL_S}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    words = (SHIPPED_CORPUS / "case-studies.txt").read_text().split()
    with tempfile.TemporaryDirectory() as work:
        base = Settings(corpus_dir=SHIPPED_CORPUS, index_dir=Path(work) / "vectorstore", server_rate_limit=0)
        Assistant(base).ingest()
        report: dict = {"machine": machine(), "load_average": load_average()}
        for verifier in ("overlap", "reader"):
            assistant = Assistant(base.replace(verifier_model=verifier))
            api = TestClient(create_app(assistant), base_url="http://localhost")
            report[f"verify_{verifier}"] = timings(api, "/v1/verify", heaviest_verify(base, words), runs)
        api = TestClient(create_app(Assistant(base)), base_url="http://localhost")
        question = ("How did they cut cloud costs? " * 100)[:base.max_question_chars]
        report["ask"] = timings(api, "/v1/ask", {"question": question, "k": base.server_max_passages}, runs)
    emit(report)


if __name__ == "__main__":
    main()
