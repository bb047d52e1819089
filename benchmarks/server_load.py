"""`rag serve` under load: throughput, latency percentiles and peak memory at 1, 8 and 32 concurrent clients,
then a soak that looks for memory growth.

    .venv/bin/python benchmarks/server_load.py [--seconds 30] [--levels 1,8,32] [--soak 600] [--quick]

- an index of the shipped corpus in a temporary folder (`rag ingest`), then `python -m rag serve` on a
  free port of 127.0.0.1 with `RAG_SERVER_RATE_LIMIT=0`, ready once `/readyz` says 200;
- questions: the case-study questions of tests/data (eval and answer sets), cycled so that concurrent
  clients ask different things;
- two answer modes, each on its own server: extractive (`"answerer": "extractive"` on `POST /v1/ask`), and
  a fake LLM (`RAG_ANSWERER=llm` against tests/fake_openai.py answering every request with `scripted_llm`,
  in this process, so its CPU is part of the measurement);
- per level: each client (a thread with its own httpx.Client) asks back to back for a fixed time; requests/s,
  p50/p95/p99 latency, errors (any non-200 or transport failure), and the server's VmHWM and VmRSS after
  the level (VmHWM is the process's high-water mark, so it only rises from level to level);
- the soak (`--soak SECONDS`, 0 skips it): a fresh extractive server, 8 clients asking continuously (plain
  asks, `stream: true` asks and `/v1/search`), the server's VmRSS sampled every 10 s; growth and slope are
  taken after the first minute (warm-up), against the goal of < 20 MiB growth.

The clients and the fake LLM run in this process on the same machine as the server: on a 2-core machine
the figures are those of the whole system, not of the server alone.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from common import PYTHON, ROOT, SHIPPED_CORPUS, emit, env_for, machine, percentile

sys.path.insert(0, str(ROOT))
from tests.fake_openai import FakeOpenAI, scripted_llm  # noqa: E402

QUESTION_FILES = ["eval_case_studies.jsonl", "answer_questions.jsonl", "conversations_case_studies.jsonl"]
GOAL_SOAK_GROWTH_MIB = 20.0
RESULTS = Path(__file__).resolve().parent / "results"


def questions() -> list[str]:
    """The case-study questions of tests/data, each once, in a fixed shuffled order."""
    found: list[str] = []
    for name in QUESTION_FILES:
        for line in (ROOT / "tests" / "data" / name).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            # conversations: only their standalone turns (a follow-up needs its history)
            turns = [t for t in row.get("turns", []) if t.get("kind") == "standalone"] or [row]
            found += [t["question"] for t in turns if t.get("question")]
    unique = list(dict.fromkeys(q.strip() for q in found))
    random.Random(7).shuffle(unique)
    return unique


def child_env(index_dir: Path, **extra: str) -> dict[str, str]:
    env = env_for(index_dir, SHIPPED_CORPUS, **extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        if name not in extra:
            env.pop(name, None)
    return env


def build_index(work: Path) -> tuple[Path, float]:
    index_dir = work / "vectorstore"
    start = time.perf_counter()
    subprocess.run([PYTHON, "-m", "rag", "ingest"], env=child_env(index_dir), cwd=work, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return index_dir, round(time.perf_counter() - start, 2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def proc_status(pid: int, key: str) -> float:
    """A VmXXX line of /proc/<pid>/status, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    raise KeyError(key)


class Server:
    """`python -m rag serve` as a child process; its stderr (warnings, tracebacks) goes to a file."""

    def __init__(self, work: Path, index_dir: Path, name: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / f"serve-{name}.log"
        self.log = self.log_path.open("w")
        env = child_env(index_dir, RAG_SERVER_RATE_LIMIT="0", **env)
        start = time.perf_counter()
        self.proc = subprocess.Popen([PYTHON, "-m", "rag", "serve", "--port", str(self.port)], env=env, cwd=work,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.ready_s = self._wait_ready(start)

    def _wait_ready(self, start: float, timeout: float = 180.0) -> float:
        while time.perf_counter() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rag serve exited {self.proc.returncode}: {self.log_tail()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=5).status_code == 200:
                    return round(time.perf_counter() - start, 2)
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"rag serve not ready after {timeout:.0f} s: {self.log_tail()}")

    def memory(self) -> dict:
        return {"peak_rss_mib": proc_status(self.pid, "VmHWM"), "rss_mib": proc_status(self.pid, "VmRSS")}

    def log_tail(self, chars: int = 1500) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> dict:
        """Stop it (SIGTERM, then SIGKILL after 30 s); what it logged that looks like trouble."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        text = self.log_path.read_text(errors="replace")
        trouble = [line for line in text.splitlines() if "Traceback" in line or "ERROR" in line.upper()
                   or "rag: error" in line.lower()]
        return {"exit_code": self.proc.returncode, "log_lines": len(text.splitlines()),
                "trouble_lines": len(trouble), "trouble_sample": trouble[:5]}


class Asker:
    """The requests the clients send (an ask, a streamed ask, a search), each outcome checked; the
    questions are taken in turn across all clients."""

    def __init__(self, qs: list[str], answerer: str | None) -> None:
        self.qs = qs
        self.answerer = answerer
        self.turn = itertools.count()  # shared by the clients: each request takes the next question

    def question(self) -> str:
        return self.qs[next(self.turn) % len(self.qs)]

    def ask(self, client: httpx.Client) -> tuple[bool, str]:
        body = {"question": self.question()}
        if self.answerer:
            body["answerer"] = self.answerer
        response = client.post("/v1/ask", json=body)
        if response.status_code != 200:
            return False, f"http {response.status_code}"
        answer = response.json()
        if self.answerer is None and answer["answerer"] != "llm":
            return True, "not llm"  # the LLM failed and the answer fell back (RAG_LLM_FALLBACK)
        return True, "abstained" if answer["abstained"] else "answered"

    def ask_stream(self, client: httpx.Client) -> tuple[bool, str]:
        body = {"question": self.question(), "stream": True, "answerer": self.answerer or "extractive"}
        with client.stream("POST", "/v1/ask", json=body) as response:
            text = response.read()
        if response.status_code != 200:
            return False, f"http {response.status_code}"
        if b"event: error" in text or b"event: answer" not in text:
            return False, "stream error event"
        return True, "streamed"

    def search(self, client: httpx.Client) -> tuple[bool, str]:
        response = client.post("/v1/search", json={"question": self.question()})
        return response.status_code == 200, "search" if response.status_code == 200 else f"http {response.status_code}"


def drive(url: str, clients: int, seconds: float, pick, records: list | None = None) -> dict:
    """`clients` threads sending requests back to back for `seconds` (or until `pick` returns None); every
    request's (kind, latency s, ok, outcome, end time s from the start)."""
    records = [] if records is None else records
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + seconds

    def client_loop() -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            while time.perf_counter() < deadline:
                picked = pick()
                if picked is None:
                    return
                kind, call = picked
                began = time.perf_counter()
                try:
                    ok, detail = call(client)
                except httpx.HTTPError as exc:
                    ok, detail = False, type(exc).__name__
                ended = time.perf_counter()
                with lock:
                    records.append((kind, ended - began, ok, detail, ended - start))

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"records": records, "wall_s": time.perf_counter() - start}


def summary(records: list, wall_s: float) -> dict:
    times = [r[1] for r in records]
    details: dict[str, int] = {}
    for r in records:
        details[r[3]] = details.get(r[3], 0) + 1
    if not times:
        return {"requests": 0, "errors": 0, "outcomes": details}
    return {"requests": len(records), "wall_s": round(wall_s, 2), "req_per_s": round(len(records) / wall_s, 2),
            "p50_ms": round(percentile(times, 0.50) * 1000, 1), "p95_ms": round(percentile(times, 0.95) * 1000, 1),
            "p99_ms": round(percentile(times, 0.99) * 1000, 1), "max_ms": round(max(times) * 1000, 1),
            "mean_ms": round(statistics.fmean(times) * 1000, 1),
            "errors": sum(1 for r in records if not r[2]), "outcomes": details}


def load_mode(work: Path, index_dir: Path, qs: list[str], mode: str, levels: list[int], seconds: float,
              warmup: int) -> dict:
    fake = None
    env: dict[str, str] = {}
    if mode == "fake_llm":
        fake = FakeOpenAI(default=scripted_llm, record=False).__enter__()
        env = {"OPENAI_API_KEY": "test", "OPENAI_BASE_URL": fake.url, "RAG_ANSWERER": "llm"}
    server = Server(work, index_dir, mode, **env)
    try:
        asker = Asker(qs, "extractive" if mode == "extractive" else None)
        started = server.memory()
        # Warm-up, not counted: one client, a few questions (lazy loads, first-call costs).
        warm = drive(server.url, 1, 3600, _first(warmup, asker))
        result = {"server_ready_s": server.ready_s, "memory_when_ready": started,
                  "warmup": {**summary(warm["records"], warm["wall_s"]), **server.memory()}, "levels": []}
        for clients in levels:
            run = drive(server.url, clients, seconds, lambda: ("ask", asker.ask))
            result["levels"].append({"clients": clients, **summary(run["records"], run["wall_s"]),
                                     **server.memory(), "load_average_1_min": round(os.getloadavg()[0], 2)})
            print(f"  {mode} {clients:>2} clients: {result['levels'][-1]['req_per_s']} req/s, "
                  f"p50 {result['levels'][-1]['p50_ms']} ms", file=sys.stderr, flush=True)
        if fake:
            result["fake_llm_requests"] = fake.served
    finally:
        result_stop = server.stop()
        if fake:
            fake.__exit__(None, None, None)
    result["server_stop"] = result_stop
    return result


def _first(n: int, asker: Asker):
    """A picker that hands out `n` asks, then None."""
    left = itertools.count()
    return lambda: ("ask", asker.ask) if next(left) < n else None


def soak(work: Path, index_dir: Path, qs: list[str], seconds: float, clients: int, every: float) -> dict:
    server = Server(work, index_dir, "soak", RAG_ANSWERER="extractive")
    asker = Asker(qs, "extractive")
    mix = itertools.count()
    kinds = [("ask", asker.ask)] * 6 + [("ask_stream", asker.ask_stream)] * 2 + [("search", asker.search)] * 2

    def pick():
        return kinds[next(mix) % len(kinds)]

    samples: list[dict] = []
    done = threading.Event()
    records: list = []
    holder: dict = {}
    start = time.perf_counter()

    def sample_loop() -> None:
        while True:
            t = time.perf_counter() - start
            samples.append({"t_s": round(t, 1), "rss_mib": proc_status(server.pid, "VmRSS"),
                            "requests": len(records), "load_average_1_min": round(os.getloadavg()[0], 2)})
            if done.wait(max(0.0, every * len(samples) - (time.perf_counter() - start))):
                break

    def driven() -> None:  # drive fills `records` in place, so the sampler can note progress
        holder.update(drive(server.url, clients, seconds, pick, records))

    sampler = threading.Thread(target=sample_loop, daemon=True)
    driver = threading.Thread(target=driven, daemon=True)
    sampler.start()
    driver.start()
    driver.join()
    samples.append({"t_s": round(time.perf_counter() - start, 1), "rss_mib": proc_status(server.pid, "VmRSS"),
                    "requests": len(records)})
    done.set()
    sampler.join()
    peak = proc_status(server.pid, "VmHWM")
    stopped = server.stop()
    by_kind = {kind: summary([r for r in records if r[0] == kind], holder["wall_s"])
               for kind in ("ask", "ask_stream", "search")}
    minutes = _per_minute(records)
    return {
        "seconds": seconds, "clients": clients, "mix": "6 asks : 2 streamed asks : 2 searches, extractive",
        "server_ready_s": server.ready_s, "sample_every_s": every, **memory_figures(samples),
        "peak_rss_mib": peak, "requests": len(records), "errors": sum(1 for r in records if not r[2]),
        "all": summary(records, holder["wall_s"]), "by_kind": by_kind, "per_minute": minutes,
        "samples": samples, "server_stop": stopped,
    }


def memory_figures(samples: list[dict]) -> dict:
    """RSS after the first minute (warm-up) against the end; least-squares slopes over the samples after
    the first minute and over the second half alone (a single step, such as an allocator arena or a cache
    filling once, shows in the first slope but not in the second)."""
    after = [s for s in samples if s["t_s"] >= 60] or samples[-1:]
    half = [s for s in samples if s["t_s"] >= samples[-1]["t_s"] / 2]
    first, last = after[0], samples[-1]
    growth = round(last["rss_mib"] - first["rss_mib"], 1)

    def per_10_min(points: list[dict]) -> float | None:
        slope = _slope([(s["t_s"], s["rss_mib"]) for s in points])
        return None if slope is None else round(slope * 600, 2)

    return {"rss_after_first_minute_mib": first["rss_mib"], "rss_after_first_minute_at_s": first["t_s"],
            "rss_at_end_mib": last["rss_mib"], "rss_max_after_first_minute_mib": max(s["rss_mib"] for s in after),
            "growth_after_first_minute_mib": growth, "goal_growth_mib_below": GOAL_SOAK_GROWTH_MIB,
            "meets_goal": growth < GOAL_SOAK_GROWTH_MIB, "slope_mib_per_10_min": per_10_min(after),
            "slope_second_half_mib_per_10_min": per_10_min(half),
            "growth_second_half_mib": round(last["rss_mib"] - half[0]["rss_mib"], 1)}


def _slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope (MiB per second)."""
    if len(points) < 2:
        return None
    mx = statistics.fmean(p[0] for p in points)
    my = statistics.fmean(p[1] for p in points)
    den = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / den if den else None


def _per_minute(records: list) -> list[dict]:
    """Requests finished, p50/p95 and errors in each minute of the soak, to see whether it slows down."""
    minutes: dict[int, list] = {}
    for r in records:
        minutes.setdefault(int(r[4] // 60), []).append(r)
    out = []
    for minute in sorted(minutes):
        times = [r[1] for r in minutes[minute]]
        out.append({"minute": minute + 1, "requests": len(times), "p50_ms": round(percentile(times, 0.5) * 1000, 1),
                    "p95_ms": round(percentile(times, 0.95) * 1000, 1),
                    "errors": sum(1 for r in minutes[minute] if not r[2])})
    return out


def table(modes: dict) -> str:
    rows = ["| mode | clients | requests | req/s | p50 ms | p95 ms | p99 ms | errors | peak RSS MiB (VmHWM) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for mode, result in modes.items():
        for r in result["levels"]:
            rows.append(f"| {mode} | {r['clients']} | {r['requests']} | {r['req_per_s']} | {r['p50_ms']} | "
                        f"{r['p95_ms']} | {r['p99_ms']} | {r['errors']} | {r['peak_rss_mib']} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each load level")
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--warmup", type=int, default=12, help="asks before the first level, not counted")
    parser.add_argument("--soak", type=float, default=600.0, help="soak seconds; 0 skips it")
    parser.add_argument("--soak-clients", type=int, default=8)
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (3 s levels, 30 s soak), not saved")
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/server_load.json")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup = 3.0, 3
        args.soak = min(args.soak, 30.0)
        args.sample_every = min(args.sample_every, 5.0)
    levels = [int(n) for n in args.levels.split(",")]
    qs = questions()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rag-bench-serve-") as tmp:
        work = Path(tmp)
        index_dir, ingest_s = build_index(work)
        modes = {}
        for mode in ("extractive", "fake_llm"):
            print(f"== {mode}", file=sys.stderr, flush=True)
            modes[mode] = load_mode(work, index_dir, qs, mode, levels, args.seconds, args.warmup)
        load_s = round(time.perf_counter() - began, 1)
        soaked = None
        if args.soak > 0:
            print(f"== soak {args.soak:.0f} s", file=sys.stderr, flush=True)
            soaked = soak(work, index_dir, qs, args.soak, args.soak_clients, args.sample_every)
    report = {
        "benchmark": "server_load", "machine": machine(),
        "load_average_1_5_15_min": {"at_start": load_at_start, "at_end": [round(x, 2) for x in os.getloadavg()]},
        "command": " ".join(["benchmarks/server_load.py", *sys.argv[1:]]),
        "setup": {"corpus": "shipped (corpus/)", "ingest_s": ingest_s, "questions": len(qs),
                  "question_files": [f"tests/data/{n}" for n in QUESTION_FILES],
                  "seconds_per_level": args.seconds, "levels": levels, "warmup_asks": args.warmup,
                  "clients": "threads in the benchmark process, one httpx.Client each, requests back to back",
                  "fake_llm": "tests/fake_openai.py FakeOpenAI(default=scripted_llm) in the benchmark process",
                  "errors": "any non-200 reply, transport failure or timeout (120 s), or an error event in a stream",
                  "peak_rss": "VmHWM of the `rag serve` process after the level (cumulative over its levels)"},
        "load": modes, "load_wall_s": load_s, "soak": soaked,
        "goal_soak_growth_mib_below": GOAL_SOAK_GROWTH_MIB,
    }
    print(table(modes), file=sys.stderr)
    if soaked:
        print(f"\nsoak {soaked['seconds']:.0f} s, {soaked['clients']} clients: RSS {soaked['rss_after_first_minute_mib']}"
              f" MiB after 1 min, {soaked['rss_at_end_mib']} MiB at the end, growth "
              f"{soaked['growth_after_first_minute_mib']} MiB (goal < {GOAL_SOAK_GROWTH_MIB}), slope "
              f"{soaked['slope_mib_per_10_min']} MiB/10 min (second half {soaked['slope_second_half_mib_per_10_min']}); "
              f"{soaked['requests']} requests, {soaked['errors']} errors",
              file=sys.stderr)
    if not (args.no_save or args.quick):
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "server_load.json").write_text(json.dumps(report, indent=2) + "\n")
    emit(report)


if __name__ == "__main__":
    main()
