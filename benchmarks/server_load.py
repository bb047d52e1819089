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

Replicas sharing one database and one index (issue 31), in place of the two modes above:

    .venv/bin/python benchmarks/server_load.py --replicas 2 [--levels 8,32] [--soak-restart 600]

- a throw-away PostgreSQL cluster (tests/postgres.py) with one database, `rag db upgrade` and a reader token
  from `rag token create --role reader --json`; every `rag serve` gets the same RAG_INDEX_DIR and
  RAG_DATABASE_URL, the extractive answerer and RAG_SERVER_RATE_LIMIT=10,000,000 (never reached, but the
  per-request rate-limit bookkeeping runs); every request carries `Authorization: Bearer <token>`;
- `--replicas N`: the levels against 1 replica, then against N fresh ones (client i asks replica i % N, as
  a round-robin load balancer would), so the figures sit side by side: requests/s, p50/p95/p99, errors,
  and each replica's VmHWM and share of the requests;
- `--soak-restart SECONDS`: the N replicas (1 without --replicas) under --soak-clients clients asking
  continuously (the soak's mix; a client waits 1 s after a failed request), and beside them a chat writer
  playing the app's part through `ChatStore.of(settings)` on the same database (start a chat, add a question
  and its answer, rate it; one write every --writer-every s; a write that raises is not counted and is
  tried again). At the middle PostgreSQL is stopped (fast shutdown), left down --restart-down s and
  started again on the same port. Verdicts: errors (HTTP status or transport error, recorded by 10 s) only
  from the stop to --grace s after PostgreSQL is back, every replica answering again after it; and nothing
  lost: every chat, message and rating the writer believes it wrote found in the database at the end, and
  the row counts taken just before the stop still there after the restart. Each replica's RSS is sampled as
  in the soak (growth after the first minute, goal < 20 MiB). Written to results/server_load_replicas.json;
  the one-server soak (--soak) is off here unless asked for.

The clients and the fake LLM run in this process on the same machine as the server: on a 2-core machine
the figures are those of the whole system, not of the server alone.
"""

from __future__ import annotations

import argparse
import contextlib
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
        env = child_env(index_dir, **{"RAG_SERVER_RATE_LIMIT": "0", **env})
        start = time.perf_counter()
        self.proc = subprocess.Popen([PYTHON, "-m", "rag", "serve", "--port", str(self.port)], env=env, cwd=work,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        RUNNING.append(self)  # stopped by stop_all() whatever happens next (an error, Ctrl-C, SIGTERM)
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
        if self in RUNNING:
            RUNNING.remove(self)
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


RUNNING: list[Server] = []  # the servers started and not yet stopped
STOPPING = threading.Event()  # set by stop_all: clients still running give up


def stop_all() -> None:
    STOPPING.set()
    for server in list(RUNNING):
        server.stop()


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
            return False, refused(response)
        answer = response.json()
        if self.answerer is None and answer["answerer"] != "llm":
            return True, "not llm"  # the LLM failed and the answer fell back (RAG_LLM_FALLBACK)
        return True, "abstained" if answer["abstained"] else "answered"

    def ask_stream(self, client: httpx.Client) -> tuple[bool, str]:
        body = {"question": self.question(), "stream": True, "answerer": self.answerer or "extractive"}
        with client.stream("POST", "/v1/ask", json=body) as response:
            text = response.read()
        if response.status_code != 200:
            return False, refused(response)
        if b"event: error" in text or b"event: answer" not in text:
            return False, "stream error event"
        return True, "streamed"

    def search(self, client: httpx.Client) -> tuple[bool, str]:
        response = client.post("/v1/search", json={"question": self.question()})
        return response.status_code == 200, "search" if response.status_code == 200 else refused(response)


def refused(response: httpx.Response) -> str:
    """A failed reply's outcome: its status; a 503 (a database restarting) must say when to retry."""
    if response.status_code == 503 and "retry-after" not in response.headers:
        return "http 503 without Retry-After"
    return f"http {response.status_code}"


def drive(url: str | list[str], clients: int, seconds: float, pick, records: list | None = None,
          headers: dict[str, str] | None = None, pause_after_error: float = 0.0, start: float | None = None) -> dict:
    """`clients` threads sending requests back to back for `seconds` (or until `pick` returns None); every
    request's (kind, latency s, ok, outcome, end time s from `start`, replica). With several URLs (replicas)
    client i sends all its requests to replica i % N, as a round-robin load balancer spreads connections.
    `pause_after_error`: a client waits that long after a failed request instead of asking again at once."""
    urls = [url] if isinstance(url, str) else url
    records = [] if records is None else records
    lock = threading.Lock()
    start = time.perf_counter() if start is None else start
    deadline = time.perf_counter() + seconds

    def client_loop(replica: int) -> None:
        with httpx.Client(base_url=urls[replica], timeout=120, headers=headers) as client:
            while time.perf_counter() < deadline and not STOPPING.is_set():
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
                    records.append((kind, ended - began, ok, detail, ended - start, replica))
                if not ok and pause_after_error:
                    time.sleep(min(pause_after_error, max(0.0, deadline - time.perf_counter())))

    threads = [threading.Thread(target=client_loop, args=(i % len(urls),), daemon=True) for i in range(clients)]
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


# ---------------------------------------------------------------- replicas sharing one database and one index

REPLICA_RATE_LIMIT = 10_000_000  # high, never reached, but not 0: each request's rate-limit bookkeeping runs
WRITER_OWNER = "server-load-writer"


class SharedState:
    """A throw-away PostgreSQL cluster (tests/postgres.py) with one database at this rag's schema, and a
    reader token made in it with the CLI, as an operator would."""

    def __init__(self, work: Path, index_dir: Path, stack: contextlib.ExitStack) -> None:
        from tests.postgres import Cluster, binaries

        found = binaries()
        if found is None:
            raise SystemExit("PostgreSQL is not installed (initdb not found): apt-get install postgresql")
        self.cluster = Cluster(found)
        stack.callback(self.cluster.remove)
        self.cluster.init()
        stack.callback(self._stop_quietly)  # runs before remove()
        self.cluster.start()
        self.url = self.cluster.url(self.cluster.create_database())
        env = child_env(index_dir, RAG_DATABASE_URL=self.url)
        upgraded = _cli(["db", "upgrade"], env, work)
        made = json.loads(_cli(["token", "create", "--role", "reader", "--name", "server_load", "--json"], env,
                               work).strip().splitlines()[-1])
        self.token, self.token_id = made["token"], made["id"]
        self.setup = {"postgresql": str(found), "port": self.cluster.port, "db_upgrade": upgraded.strip(),
                      "token": f"reader token {self.token_id} (`rag token create --role reader --json`)"}

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def env(self) -> dict[str, str]:
        return {"RAG_DATABASE_URL": self.url, "RAG_SERVER_RATE_LIMIT": str(REPLICA_RATE_LIMIT),
                "RAG_ANSWERER": "extractive"}

    def _stop_quietly(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.cluster.stop()


def _cli(argv: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run([PYTHON, "-m", "rag", *argv], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    if done.returncode:
        raise RuntimeError(f"rag {' '.join(argv[:2])} exited {done.returncode}: {done.stderr.strip()[-1500:]}")
    return done.stdout


def start_replicas(work: Path, index_dir: Path, shared: SharedState, count: int, name: str) -> list[Server]:
    """`count` servers on their own ports, one index folder and one database; started one after another."""
    servers = []
    for i in range(count):
        servers.append(Server(work, index_dir, f"{name}-{i}", **shared.env()))
        print(f"  replica {i} ready in {servers[-1].ready_s} s on port {servers[-1].port}", file=sys.stderr,
              flush=True)
    return servers


def replica_load(work: Path, index_dir: Path, shared: SharedState, qs: list[str], counts: list[int],
                 levels: list[int], seconds: float, warmup: int) -> dict:
    """The load levels against 1 replica, then N: fresh servers for each count (so each VmHWM is its own)."""
    results: dict[str, dict] = {}
    for count in counts:
        print(f"== {count} replica(s), PostgreSQL, extractive", file=sys.stderr, flush=True)
        servers = start_replicas(work, index_dir, shared, count, f"replicas{count}")
        urls = [s.url for s in servers]
        try:
            asker = Asker(qs, "extractive")
            for server in servers:  # warm-up, not counted: one client per replica
                drive(server.url, 1, 3600, _first(warmup, asker), headers=shared.auth())
            result: dict = {"replicas": count, "ready_s": [s.ready_s for s in servers], "levels": []}
            for clients in levels:
                run = drive(urls, clients, seconds, lambda: ("ask", asker.ask), headers=shared.auth())  # noqa: B023
                per_replica = [{"replica": i, **_brief(summary([r for r in run["records"] if r[5] == i],
                                                              run["wall_s"])), **server.memory()}
                               for i, server in enumerate(servers)]
                level = {"clients": clients, **summary(run["records"], run["wall_s"]),
                         "peak_rss_mib": [p["peak_rss_mib"] for p in per_replica],
                         "per_replica": per_replica, "load_average_1_min": round(os.getloadavg()[0], 2)}
                result["levels"].append(level)
                print(f"  {count} replica(s) {clients:>2} clients: {level.get('req_per_s')} req/s, "
                      f"p50 {level.get('p50_ms')} ms, p99 {level.get('p99_ms')} ms, {level['errors']} errors",
                      file=sys.stderr, flush=True)
        finally:
            result["server_stop"] = [s.stop() for s in servers]
        results[str(count)] = result
    return results


def _brief(figures: dict) -> dict:
    return {k: figures[k] for k in ("requests", "req_per_s", "p50_ms", "p95_ms", "p99_ms", "errors") if k in figures}


class ChatWriter:
    """The Streamlit app's part, through ChatStore.of(settings) on the shared database: start a chat, add a
    question and its answer, rate the answer, three turns a chat, one write every `every` seconds. A write
    that raises is not counted and is tried again (after `retry` seconds) until it goes through; what went
    through is kept by id, to be looked for in the database at the end."""

    def __init__(self, url: str, every: float, start: float, retry: float = 0.5) -> None:
        from rag.chats import ChatStore
        from rag.config import Settings

        self.store = ChatStore.of(Settings(_env_file=None, database_url=url))
        self.every, self.start, self.retry = every, start, retry
        self.chats: list[str] = []
        self.messages: dict[int, str] = {}  # message id -> its chat
        self.rated: dict[int, int] = {}  # answer's message id -> its rating
        self.failures: list[dict] = []  # each write that raised: when, which, why
        self.lock = threading.Lock()  # held for each write: pause() holds it to count between writes
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def begin(self) -> None:
        self.thread.start()

    def end(self) -> None:
        self.done.set()
        self.thread.join(timeout=60)

    def believed(self) -> dict:
        return {"chats": len(self.chats), "messages": len(self.messages), "feedback": len(self.rated)}

    def _run(self) -> None:
        turn = 0
        while True:
            chat = self._write("create", lambda: self.store.create(WRITER_OWNER).id, self.chats.append)
            if chat is None:
                return
            for _ in range(3):
                turn += 1
                if not self._turn(chat, turn):
                    return

    def _turn(self, chat: str, turn: int) -> bool:
        """A question, its answer and a rating of it; False when told to stop first."""
        def kept(message: int) -> None:
            self.messages[message] = chat

        question = f"Question {turn}: how did they cut cloud costs?"
        asked = self._write("add question", lambda: self.store.add(WRITER_OWNER, chat, "user", question), kept)
        answer = {"answer": f"Answer {turn}.", "abstained": False, "citations": []}
        answered = None if asked is None else self._write("add answer", lambda: self.store.add(
            WRITER_OWNER, chat, "assistant", answer["answer"], answer=answer), kept)
        if answered is None:
            return False
        rating = 1 if turn % 3 else -1

        def rated(stored: bool) -> None:
            if not stored:  # the store found no such answer of ours: a bug, not a restart
                raise RuntimeError(f"rate() stored nothing for message {answered}")
            self.rated[answered] = rating

        return self._write("rate", lambda: self.store.rate(WRITER_OWNER, answered, rating, "server_load soak",
                                                           {"answerer": "extractive"}), rated) is not None

    def _write(self, what: str, call, keep):
        """The write's value once it goes through (kept by `keep`, under the lock, so that a count taken
        between two writes sees it), or None when the writer is told to stop first."""
        while not self.done.wait(self.every):
            with self.lock:
                try:
                    value = call()
                    keep(value)
                    return value
                except Exception as exc:  # noqa: BLE001 - any failure is counted; the end checks what was kept
                    self.failures.append({"t_s": round(time.perf_counter() - self.start, 2), "write": what,
                                          "error": f"{type(exc).__name__}: {str(exc)[:160]}"})
            if self.done.wait(self.retry):
                return None
        return None

    def counts(self) -> dict:
        """The rows in the database, counted with SQL (not through the writer's own ids)."""
        with self.store.db.begin() as db:
            row = db.execute("SELECT (SELECT COUNT(*) FROM chats), (SELECT COUNT(*) FROM messages), "
                             "(SELECT COUNT(*) FROM feedback)").first()
        return {"chats": int(row[0]), "messages": int(row[1]), "feedback": int(row[2])}

    def missing(self) -> dict:
        """What the writer believes it wrote and the database does not hold; and what it holds beyond that
        (a write that raised after its commit: counted as not written, yet kept)."""
        chats = {c.id for c in self.store.chats(WRITER_OWNER)}
        found: dict[int, int | None] = {}
        for chat in chats:
            found.update({m.id: m.rating for m in self.store.messages(WRITER_OWNER, chat)})
        return {"chats": sorted(set(self.chats) - chats)[:20], "lost_chats": len(set(self.chats) - chats),
                "lost_messages": len(set(self.messages) - set(found)),
                "lost_feedback": sum(1 for m, rating in self.rated.items() if found.get(m) != rating),
                "extra_chats": len(chats - set(self.chats)), "extra_messages": len(set(found) - set(self.messages)),
                "extra_feedback": sum(1 for m, rating in found.items() if rating is not None and m not in self.rated)}


def soak_restart(work: Path, index_dir: Path, shared: SharedState, qs: list[str], seconds: float, replicas: int,
                 clients: int, every: float, down_s: float, grace_s: float, writer_every: float) -> dict:
    """The replicas under continuous load, a chat writer beside them, and PostgreSQL restarted at the middle."""
    print(f"== soak with a PostgreSQL restart, {seconds:.0f} s, {replicas} replica(s)", file=sys.stderr, flush=True)
    servers = start_replicas(work, index_dir, shared, replicas, "restart")
    asker = Asker(qs, "extractive")
    mix = itertools.count()
    kinds = [("ask", asker.ask)] * 6 + [("ask_stream", asker.ask_stream)] * 2 + [("search", asker.search)] * 2

    def pick():
        return kinds[next(mix) % len(kinds)]

    records: list = []
    samples: list[list[dict]] = [[] for _ in servers]
    window: dict = {}
    holder: dict = {}
    done = threading.Event()
    start = time.perf_counter()
    writer = ChatWriter(shared.url, writer_every, start)

    def elapsed() -> float:
        return round(time.perf_counter() - start, 2)

    def sample_once() -> None:
        for server, taken in zip(servers, samples, strict=True):
            taken.append({"t_s": round(time.perf_counter() - start, 1), "rss_mib": proc_status(server.pid, "VmRSS"),
                          "requests": sum(1 for r in records if r[5] == servers.index(server))})

    def sample_loop() -> None:
        n = 0
        while True:
            sample_once()
            n += 1
            if done.wait(max(0.0, every * n - (time.perf_counter() - start))):
                break

    def restart() -> None:
        if done.wait(seconds / 2):
            return
        with writer.lock:  # between two writes: what it believes it wrote, against what the database holds
            window["writer_before"], window["database_before"] = writer.believed(), writer.counts()
        window["stop_at_s"] = elapsed()
        print(f"  {window['stop_at_s']:.0f} s: stopping PostgreSQL", file=sys.stderr, flush=True)
        try:
            shared.cluster.stop()
            window["stopped_at_s"] = elapsed()
        except RuntimeError as exc:
            window["problem"] = str(exc)[-500:]
        if done.wait(down_s):
            return  # interrupted: the clean-up removes the cluster
        shared.cluster.start()  # on the same port
        window["back_at_s"] = elapsed()
        print(f"  {window['back_at_s']:.0f} s: PostgreSQL is back", file=sys.stderr, flush=True)
        with writer.lock:
            window["writer_after"], window["database_after"] = writer.believed(), writer.counts()

    def driven() -> None:
        holder.update(drive([s.url for s in servers], clients, seconds, pick, records, headers=shared.auth(),
                            pause_after_error=1.0, start=start))

    threads = [threading.Thread(target=f, daemon=True) for f in (sample_loop, restart, driven)]
    try:
        writer.begin()
        for thread in threads:
            thread.start()
        threads[2].join()
        threads[1].join()
    finally:
        writer.end()
        done.set()
        if threads[1].ident is not None:  # interrupted: the restart over (or given up) before the clean-up
            threads[1].join(timeout=150)
    sample_once()
    threads[0].join()
    peaks = [proc_status(s.pid, "VmHWM") for s in servers]
    stopped = [s.stop() for s in servers]
    believed, in_database, missing = writer.believed(), writer.counts(), writer.missing()

    grace_end = window.get("back_at_s", seconds) + grace_s
    allowed = (window.get("stop_at_s", seconds), grace_end)

    def inside(began: float, ended: float) -> bool:
        return began <= allowed[1] and ended >= allowed[0]

    errors = [r for r in records if not r[2]]
    outside = [r for r in errors if not inside(r[4] - r[1], r[4])]
    writer_outside = [f for f in writer.failures if not allowed[0] <= f["t_s"] <= allowed[1]]
    codes: dict[str, int] = {}
    for r in errors:
        codes[r[3]] = codes.get(r[3], 0) + 1
    recovered = []
    for i in range(len(servers)):
        after = [r[4] for r in records if r[5] == i and r[2] and r[4] - r[1] >= window.get("back_at_s", seconds)]
        failed = [r[4] for r in errors if r[5] == i]
        recovered.append({"replica": i, "first_success_after_back_s": round(min(after) - window["back_at_s"], 2)
                          if after and "back_at_s" in window else None,
                          "last_error_at_s": round(max(failed), 2) if failed else None,
                          "errors": len(failed)})
    errors_ok = not outside and not writer_outside and all(r["first_success_after_back_s"] is not None
                                                           for r in recovered)
    lost = missing["lost_chats"] + missing["lost_messages"] + missing["lost_feedback"]
    memory = [{"replica": i, "peak_rss_mib": peak, **memory_figures(taken)}
              for i, (peak, taken) in enumerate(zip(peaks, samples, strict=True))]
    return {
        "seconds": seconds, "replicas": replicas, "clients": clients,
        "mix": "6 asks : 2 streamed asks : 2 searches, extractive; client i asks replica i % N; "
               "a client waits 1 s after a failed request",
        "ready_s": [s.ready_s for s in servers], "restart": {**window, "down_s": down_s, "grace_s": grace_s,
                                                             "errors_allowed_from_to_s": list(allowed)},
        "requests": len(records), "errors": len(errors), "error_outcomes": codes,
        "errors_outside_window": len(outside),
        "errors_outside_window_sample": [{"t_s": round(r[4], 2), "replica": r[5], "kind": r[0], "outcome": r[3]}
                                         for r in outside[:10]],
        "errors_by_10_s": _errors_by(records, 10), "recovery": recovered,
        "all": summary(records, holder.get("wall_s", seconds)), "per_minute": _per_minute(records),
        "writer": {"every_s": writer_every, "believed_written": believed, "in_database": in_database,
                   "failed_writes": len(writer.failures), "failed_writes_outside_window": len(writer_outside),
                   "failures_sample": writer.failures[:10], **missing},
        "memory": memory, "samples": samples, "server_stop": stopped,
        "verdict": {"errors_only_during_restart": errors_ok,
                    "nothing_lost": lost == 0 and "database_after" in window and "problem" not in window
                    and all(window["database_after"][k] >= window["database_before"][k] for k in believed),
                    "memory_growth_below_goal": all(m["meets_goal"] for m in memory)},
    }


def _errors_by(records: list, every: float) -> list[dict]:
    """Requests and errors (by outcome) in each `every` seconds of the run: where the errors fall."""
    buckets: dict[int, list] = {}
    for r in records:
        buckets.setdefault(int(r[4] // every), []).append(r)
    out = []
    for b in sorted(buckets):
        failed: dict[str, int] = {}
        for r in buckets[b]:
            if not r[2]:
                failed[r[3]] = failed.get(r[3], 0) + 1
        out.append({"from_s": b * every, "requests": len(buckets[b]), "errors": sum(failed.values()), **(
            {"outcomes": failed} if failed else {})})
    return out


def restart_lines(soaked: dict) -> list[str]:
    w, r, v = soaked["writer"], soaked["restart"], soaked["verdict"]
    lines = [f"soak with a PostgreSQL restart, {soaked['seconds']:.0f} s, {soaked['replicas']} replica(s), "
             f"{soaked['clients']} clients: {soaked['requests']} requests, {soaked['errors']} errors "
             f"{soaked['error_outcomes']}; PostgreSQL stopped at {r.get('stop_at_s')} s, back at {r.get('back_at_s')} s "
             f"(errors allowed {r['errors_allowed_from_to_s'][0]}-{r['errors_allowed_from_to_s'][1]} s); "
             f"recovery {[x['first_success_after_back_s'] for x in soaked['recovery']]} s after it was back",
             f"chat writer: believed written {w['believed_written']}, in the database {w['in_database']}; "
             f"lost {w['lost_chats']} chats, {w['lost_messages']} messages, {w['lost_feedback']} feedback; "
             f"{w['failed_writes']} writes raised ({w['failed_writes_outside_window']} outside the window)",
             "memory: " + "; ".join(f"replica {m['replica']} RSS {m['rss_after_first_minute_mib']} -> "
                                    f"{m['rss_at_end_mib']} MiB (growth {m['growth_after_first_minute_mib']}, "
                                    f"VmHWM {m['peak_rss_mib']})" for m in soaked["memory"])]
    lines.append(f"VERDICT errors only during the restart: {'PASS' if v['errors_only_during_restart'] else 'FAIL'} "
                 f"({soaked['errors_outside_window']} HTTP errors and {w['failed_writes_outside_window']} failed writes "
                 "outside the window)")
    lines.append(f"VERDICT nothing lost: {'PASS' if v['nothing_lost'] else 'FAIL'} (chats/messages/feedback "
                 f"believed {w['believed_written']}, found {w['in_database']})")
    return lines


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up as Ctrl-C does


def table(runs: dict, first: str, memory: str) -> str:
    """The levels of each run (a mode, or a number of replicas) as a Markdown table; a run of several
    replicas gives each one's peak RSS."""
    rows = [f"| {first} | clients | requests | req/s | p50 ms | p95 ms | p99 ms | errors | {memory} |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for run, result in runs.items():
        for r in result["levels"]:
            rss = r["peak_rss_mib"]
            rss = " / ".join(map(str, rss)) if isinstance(rss, list) else rss
            rows.append(f"| {run} | {r['clients']} | {r['requests']} | {r.get('req_per_s')} | {r.get('p50_ms')} | "
                        f"{r.get('p95_ms')} | {r.get('p99_ms')} | {r['errors']} | {rss} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each load level")
    parser.add_argument("--levels", default="1,8,32", help="clients per level, comma-separated; empty: no levels")
    parser.add_argument("--warmup", type=int, default=12, help="asks before the first level, not counted")
    parser.add_argument("--soak", type=float, default=None,
                        help="seconds of the one-server soak; 0 skips it (default 600, or 0 with --replicas over 1 "
                        "or --soak-restart)")
    parser.add_argument("--soak-clients", type=int, default=8)
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--replicas", type=int, default=1,
                        help="over 1: the levels against 1 and then N replicas sharing one PostgreSQL and one index")
    parser.add_argument("--soak-restart", type=float, default=0.0,
                        help="seconds of a soak on the replicas with PostgreSQL restarted at the middle; 0 skips it")
    parser.add_argument("--restart-down", type=float, default=5.0, help="seconds PostgreSQL stays down")
    parser.add_argument("--grace", type=float, default=10.0,
                        help="seconds after PostgreSQL is back in which errors still count as the restart's")
    parser.add_argument("--writer-every", type=float, default=0.2, help="seconds between the chat writer's writes")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (3 s levels, 30 s soak), not saved")
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/server_load*.json")
    args = parser.parse_args()
    if args.replicas < 1:
        parser.error("--replicas takes 1 or more")
    shared_database = args.replicas > 1 or args.soak_restart > 0
    if args.soak is None:
        args.soak = 0.0 if shared_database else 600.0
    if args.quick:
        args.seconds, args.warmup = 3.0, 3
        args.soak = min(args.soak, 30.0)
        args.soak_restart = min(args.soak_restart, 60.0)
        args.sample_every = min(args.sample_every, 5.0)
    levels = [int(n) for n in args.levels.split(",") if n.strip()]
    qs = questions()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    began = time.perf_counter()
    signal.signal(signal.SIGTERM, _interrupted)
    with tempfile.TemporaryDirectory(prefix="rag-bench-serve-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        index_dir, ingest_s = build_index(work)
        shared = SharedState(work, index_dir, stack) if shared_database else None
        stack.callback(stop_all)  # first of the clean-ups: the servers, then the cluster, then its folder
        modes: dict = {}
        replicas: dict = {}
        if shared is None:
            for mode in ("extractive", "fake_llm"):
                print(f"== {mode}", file=sys.stderr, flush=True)
                modes[mode] = load_mode(work, index_dir, qs, mode, levels, args.seconds, args.warmup)
        elif levels:
            replicas = replica_load(work, index_dir, shared, qs, sorted({1, args.replicas}), levels, args.seconds,
                                    args.warmup)
        load_s = round(time.perf_counter() - began, 1)
        restarted = None
        if shared is not None and args.soak_restart > 0:
            restarted = soak_restart(work, index_dir, shared, qs, args.soak_restart, args.replicas, args.soak_clients,
                                     args.sample_every, args.restart_down, args.grace, args.writer_every)
        soaked = None
        if args.soak > 0:
            print(f"== soak {args.soak:.0f} s", file=sys.stderr, flush=True)
            soaked = soak(work, index_dir, qs, args.soak, args.soak_clients, args.sample_every)
    setup = {"corpus": "shipped (corpus/)", "ingest_s": ingest_s, "questions": len(qs),
             "question_files": [f"tests/data/{n}" for n in QUESTION_FILES],
             "seconds_per_level": args.seconds, "levels": levels, "warmup_asks": args.warmup,
             "clients": "threads in the benchmark process, one httpx.Client each, requests back to back",
             "errors": "any non-200 reply, transport failure or timeout (120 s), or an error event in a stream"}
    report = {
        "benchmark": "server_load_replicas" if shared else "server_load", "machine": machine(),
        "load_average_1_5_15_min": {"at_start": load_at_start, "at_end": [round(x, 2) for x in os.getloadavg()]},
        "command": " ".join(["benchmarks/server_load.py", *sys.argv[1:]]),
    }
    if shared is None:
        report["setup"] = {**setup,
                           "fake_llm": "tests/fake_openai.py FakeOpenAI(default=scripted_llm) in the benchmark process",
                           "peak_rss": "VmHWM of the `rag serve` process after the level (cumulative over its levels)"}
        report.update({"load": modes, "load_wall_s": load_s})
    else:
        report["setup"] = {**setup, **shared.setup, "replicas": args.replicas,
                           "servers": f"`rag serve` processes sharing RAG_INDEX_DIR and RAG_DATABASE_URL, extractive, "
                                      f"RAG_SERVER_RATE_LIMIT={REPLICA_RATE_LIMIT}; each request carries the reader "
                                      "token; client i asks replica i % N (round robin)",
                           "peak_rss": "VmHWM of each `rag serve` process after the level (cumulative over its levels)"}
        report.update({"replica_load": replicas, "load_wall_s": load_s, "soak_restart": restarted})
    report.update({"soak": soaked, "goal_soak_growth_mib_below": GOAL_SOAK_GROWTH_MIB})
    if modes:
        print(table(modes, "mode", "peak RSS MiB (VmHWM)"), file=sys.stderr)
    if replicas:
        print(table(replicas, "replicas", "VmHWM MiB per replica"), file=sys.stderr)
    if restarted:
        print("\n" + "\n".join(restart_lines(restarted)), file=sys.stderr)
    if soaked:
        print(f"\nsoak {soaked['seconds']:.0f} s, {soaked['clients']} clients: RSS {soaked['rss_after_first_minute_mib']}"
              f" MiB after 1 min, {soaked['rss_at_end_mib']} MiB at the end, growth "
              f"{soaked['growth_after_first_minute_mib']} MiB (goal < {GOAL_SOAK_GROWTH_MIB}), slope "
              f"{soaked['slope_mib_per_10_min']} MiB/10 min (second half {soaked['slope_second_half_mib_per_10_min']}); "
              f"{soaked['requests']} requests, {soaked['errors']} errors",
              file=sys.stderr)
    if not (args.no_save or args.quick):
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / ("server_load_replicas.json" if shared else "server_load.json")).write_text(
            json.dumps(report, indent=2) + "\n")
    emit(report)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the clean-ups have run (servers, cluster, folders)
        print("server_load: interrupted; its servers and PostgreSQL cluster are stopped", file=sys.stderr)
        sys.exit(130)
