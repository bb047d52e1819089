"""Peak memory of the Streamlit app after one answer, driven in headless Chromium.

    .venv/bin/python benchmarks/app_memory.py [--index-dir DIR]

Starts `streamlit run app.py` on a free port with RAG_INDEX_DIR at a built index (scripts/screenshot.py's
helpers), asks one question through the browser, then reads the server process's VmHWM (peak RSS)
from /proc. The floor is a fresh process that only imports sentence_transformers.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from common import PYTHON, QUESTIONS, ROOT, SHIPPED_CORPUS, emit, env_for, fresh_process, machine, ratio
from query import build

sys.path.insert(0, str(ROOT / "scripts"))
from screenshot import ask, browser_page, serve_app, wait_idle  # noqa: E402


def status_mib(pid: int, field: str) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return round(int(re.search(rf"^{field}:\s*(\d+) kB", text, re.M).group(1)) / 1024, 1)


def server_pid(port: str) -> int:
    """The streamlit child this process started on that port."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int(re.search(r"^PPid:\s*(\d+)", (entry / "status").read_text(), re.M).group(1))
        except (OSError, AttributeError):
            continue
        if ppid == os.getpid() and b"streamlit" in cmdline and port.encode() in cmdline:
            return int(entry.name)
    raise RuntimeError("streamlit server process not found")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index-dir", type=Path)
    args = parser.parse_args()
    index_dir = build(args.index_dir)
    env = env_for(index_dir, SHIPPED_CORPUS, RAG_ANSWERER="extractive")
    for name in [k for k in os.environ if k.startswith("RAG_")]:
        del os.environ[name]  # serve_app layers env over os.environ
    with serve_app(env) as url, browser_page() as page:
        pid = server_pid(url.rsplit(":", 1)[1])
        page.goto(url)
        wait_idle(page)
        idle = status_mib(pid, "VmHWM")
        seconds = ask(page, QUESTIONS[-1], 0)
        peak, rss = status_mib(pid, "VmHWM"), status_mib(pid, "VmRSS")
    floor = fresh_process([PYTHON, "-c", "import sentence_transformers"], env, index_dir.parent, 3)
    emit({
        "benchmark": "app_memory", "machine": machine(),
        "app_peak_rss_mib_after_one_answer": peak, "app_rss_mib_after_one_answer": rss,
        "app_peak_rss_mib_before_question": idle, "first_answer_in_browser_s": round(seconds, 2),
        "floor_import_sentence_transformers_peak_rss_mib": floor["peak_rss_mib"],
        "app_vs_import": ratio(peak, floor["peak_rss_mib"]),
    })


if __name__ == "__main__":
    main()
