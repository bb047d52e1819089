"""Drive the real app in headless Chromium: start `streamlit run app.py`, ask, screenshot.

    .venv/bin/python scripts/screenshot.py [--out docs/screenshot.png] [--question "..."]

Uses Debian's chromium (/usr/lib/chromium/chromium) through Playwright's bundled driver; nothing is
downloaded. The end-to-end test uses the same helpers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/lib/chromium/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_app(env: dict[str, str], cwd: Path = ROOT, timeout: float = 60, address: str = "127.0.0.1") -> Iterator[str]:
    """Run the app headless on a free port of `address`; yield its loopback URL once /_stcore/health says ok."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
               "--server.port", str(port), "--server.address", address, "--browser.gatherUsageStats", "false",
               "--client.toolbarMode", "minimal", "--server.fileWatcherType", "none"]  # as `make run`
    server = subprocess.Popen(command, cwd=cwd, env={**os.environ, **env},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            if server.poll() is not None:
                raise RuntimeError("streamlit exited before it was healthy")
            time.sleep(0.3)
        else:
            raise TimeoutError("streamlit did not become healthy")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


@contextlib.contextmanager
def browser_page(width: int = 1100, height: int = 1000):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def wait_idle(page, timeout_ms: int = 60_000) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_ms)


def ask(page, question: str, answers_before: int, timeout_ms: int = 60_000) -> float:
    """Type a question, wait until its answer's sources are on the page; return the seconds it took."""
    from playwright.sync_api import expect

    started = time.perf_counter()
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(question)
    box.press("Enter")
    messages = page.get_by_test_id("stChatMessage")
    expect(messages).to_have_count(answers_before * 2 + 2, timeout=timeout_ms)
    expect(messages.last.get_by_test_id("stExpander").first).to_be_visible(timeout=timeout_ms)
    seconds = time.perf_counter() - started
    wait_idle(page, timeout_ms)
    return seconds


def screenshot(page, path: Path) -> None:
    page.evaluate("document.fonts.ready")
    page.screenshot(path=str(path), full_page=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--question", default="How did they move to structured logging?")
    parser.add_argument("--follow-up", default="and how long did that take?", help="asked next ('' for none)")
    args = parser.parse_args()
    chats = tempfile.TemporaryDirectory(prefix="rag-screenshot-")  # the shot leaves no chat behind
    with chats, serve_app({"RAG_CHATS_PATH": f"{chats.name}/chats.sqlite3"}) as url, browser_page() as page:
        page.goto(url)
        wait_idle(page)
        seconds = ask(page, args.question, 0)
        if args.follow_up:
            seconds = ask(page, args.follow_up, 1)
        page.get_by_test_id("stExpander").last.click()
        page.get_by_test_id("stExpanderDetails").last.wait_for(state="visible")
        page.wait_for_timeout(600)  # the expander's opening animation
        screenshot(page, args.out)
    print(f"answer shown after {seconds:.2f}s; saved {args.out}")


if __name__ == "__main__":
    main()
