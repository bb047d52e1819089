"""End to end in a real browser: `streamlit run app.py` headless, driven by Debian's Chromium."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import screenshot as browser  # noqa: E402

pytestmark = pytest.mark.slow


def test_question_in_the_browser_shows_a_cited_answer(shipped_index, tmp_path):
    from playwright.sync_api import expect

    assert Path(browser.CHROMIUM).exists(), \
        "no Debian chromium: run `make test` (it installs it) or apt-get install chromium"
    with browser.serve_app({"RAG_INDEX_DIR": str(shipped_index)}) as url, browser.browser_page() as page:
        page.goto(url)
        browser.wait_idle(page)
        first = browser.ask(page, "Why did the database fail during traffic spikes?", 0)
        answer = page.get_by_test_id("stChatMessageContent").last
        expect(answer).to_contain_text("[1]")
        expect(answer).to_contain_text("connection limit")
        expect(answer.get_by_test_id("stExpander").first).to_contain_text(
            "Your First 3 Days with CQRS Patterns: A Survival Guide")
        second = browser.ask(page, "and how long did the logging migration take?", 1)
        expect(page.get_by_test_id("stChatMessageContent").last).to_contain_text("two weeks")
        browser.screenshot(page, tmp_path / "answer.png")
    assert (tmp_path / "answer.png").stat().st_size > 10_000
    print(f"first answer {first:.2f}s, second {second:.2f}s")
