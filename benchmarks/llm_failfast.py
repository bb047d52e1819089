"""How long a question waits on a failing LLM endpoint before its fallback (extractive) answer.

Two endpoints, both the tests' local OpenAI-compatible server over real HTTP, with the default settings
(RAG_LLM_TIMEOUT=30, RAG_LLM_MAX_RETRIES=2, fallback on):
- hung: accepts the connection and never replies; one question, timed to its fallback answer;
- down: every request gets HTTP 500; five questions in a row, each timed (next to the same question
  answered extractively, the floor), with the requests it made, then a three-turn conversation and the
  notices each turn carries.

Prints JSON. The `rag` measured is the one on PYTHONPATH, so the same script times another checkout:

    PYTHONPATH=. .venv/bin/python benchmarks/llm_failfast.py --index /tmp/idx
    PYTHONPATH=/tmp/rag-before .venv/bin/python benchmarks/llm_failfast.py --index /tmp/idx
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fake server, from this checkout (it has `hang` and `always`)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUESTIONS = ["Why did the database fail during traffic spikes?", "How did they cut cloud costs?",
             "What did mob programming do to defect rates?", "How are breaking API changes announced?",
             "How long did the move to JSON logs take?"]
CONVERSATION = ["Tell me about structured logging.", "and how long did that take?", "How did they cut cloud costs?"]


def assistant_for(index: Path, url: str):
    from rag import Assistant, Settings
    from rag.answer.llm import chat_model

    assistant = Assistant(Settings(index_dir=index, openai_api_key="sk-bench", openai_base_url=url, answerer="llm"))
    assistant.search(QUESTIONS[0])  # load the index, the encoder and the LLM client's modules now:
    chat_model(assistant.settings)  # the figures time the LLM path only
    return assistant


def timed_ask(assistant, question: str, history=()) -> tuple[float, object]:
    started = time.perf_counter()
    answer = assistant.ask(question, history=list(history))
    return round(time.perf_counter() - started, 2), answer


def timed_ask_extractive(assistant, question: str) -> float:
    """The floor: the same question answered extractively, with no LLM at all."""
    started = time.perf_counter()
    assistant.ask(question, answerer="extractive")
    return round(time.perf_counter() - started, 2)


def hung(index: Path) -> dict:
    from fake_openai import FakeOpenAI, hang

    with FakeOpenAI() as fake:
        seconds, answer = timed_ask(assistant_for(index, fake.always(hang()).url), QUESTIONS[0])
        return {"seconds_to_fallback_answer": seconds, "requests": len(fake.requests),
                "answerer": answer.answerer, "notices": list(answer.notices)}


def down(index: Path) -> dict:
    from fake_openai import FakeOpenAI, status

    with FakeOpenAI() as fake:
        assistant = assistant_for(index, fake.always(status(500)).url)
        questions = []
        for question in QUESTIONS:
            before = len(fake.requests)
            seconds, answer = timed_ask(assistant, question)
            floor = timed_ask_extractive(assistant, question)
            questions.append({"seconds": seconds, "extractive_only_seconds": floor,
                              "requests": len(fake.requests) - before, "answerer": answer.answerer,
                              "notices": len(answer.notices)})
        return {"questions": questions, "conversation_notices_per_turn": conversation(assistant)}


def conversation(assistant) -> list[list[str]]:
    history: list[tuple[str, str]] = []
    told = []
    for question in CONVERSATION:
        _, answer = timed_ask(assistant, question, history)
        told.append(list(answer.notices))
        history += [("user", question), ("assistant", answer.text)]
    return told


def ingest(folder: Path) -> Path:
    from rag import Assistant, Settings

    Assistant(Settings(corpus_dir=ROOT / "corpus", index_dir=folder)).ingest()
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="an index of the shipped corpus (made here when missing)")
    parser.add_argument("--skip-hung", action="store_true", help="skip the hung endpoint (it waits 30-95 s)")
    args = parser.parse_args()
    import rag

    index = args.index or Path(tempfile.mkdtemp()) / "vectorstore"
    if not (index / "manifest.json").exists():
        ingest(index)
    figures = {"rag": str(Path(rag.__file__).parent), "down_500": down(index)}
    if not args.skip_hung:
        figures["hung"] = hung(index)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
