"""Answer quality on tests/data/answer_questions.jsonl, for the extractive path and a scripted LLM.

Prints JSON: how often the answer holds the expected fact, citation precision (every cited passage
supports its sentence: a passage holding the fact, for the fact-bearing sentence), abstention on
out-of-scope questions, and answering on in-scope ones. The "scripted LLM" is the tests' local
OpenAI-compatible server answering with the best-matching passage sentence, over real HTTP.

    .venv/bin/python benchmarks/answers.py
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def evaluate(assistant, rows) -> dict:
    from rag.answer.citations import support

    in_scope = [r for r in rows if r["fact"]]
    out_scope = [r for r in rows if not r["fact"]]
    facts = cited = supported = answered = 0
    for row in in_scope:
        answer = assistant.ask(row["question"])
        answered += not answer.abstained
        facts += row["fact"].lower() in answer.text.lower()
        by_marker = {c.marker: c.hit.passage.text for c in answer.citations}
        for sentence in re.split(r"(?<=[.!?])\s+", answer.text):
            for marker in map(int, re.findall(r"\d+", " ".join(re.findall(r"\[[\d, ]+\]", sentence)))):
                cited += 1
                supported += support(sentence, by_marker[marker]) >= 0.5  # shares half its content words
    abstained = sum(assistant.ask(r["question"]).abstained for r in out_scope)
    return {
        "fact_in_answer": f"{facts}/{len(in_scope)}", "fact_rate": round(facts / len(in_scope), 3),
        "citation_precision": round(supported / cited, 3) if cited else None, "citations": cited,
        "answered_in_scope": f"{answered}/{len(in_scope)}",
        "abstained_out_of_scope": f"{abstained}/{len(out_scope)}",
    }


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from fake_openai import FakeOpenAI, scripted_llm

    from rag import Assistant, Settings

    rows = [json.loads(line) for line in (ROOT / "tests/data/answer_questions.jsonl").open()]
    index_dir = Path(tempfile.mkdtemp(prefix="rag-answers-")) / "vectorstore"
    settings = Settings(corpus_dir=ROOT / "corpus", index_dir=index_dir, answerer="extractive")
    Assistant(settings).ingest()
    results = {"extractive": evaluate(Assistant(settings), rows)}
    with FakeOpenAI() as fake:
        fake.then(*[scripted_llm] * (len(rows) * 3))
        llm = settings.replace(answerer="llm", openai_api_key="sk-bench", openai_base_url=fake.url)
        results["scripted_llm"] = evaluate(Assistant(llm), rows)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
