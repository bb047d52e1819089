"""End to end in a real browser: `streamlit run app.py` headless, driven by Debian's Chromium."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import screenshot as browser  # noqa: E402

pytestmark = pytest.mark.slow
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
# The visible text of the answer's chat message (collapsed expanders show their label only), or null.
VISIBLE_ANSWER = """() => {
    const messages = document.querySelectorAll('[data-testid="stChatMessageContent"]');
    return messages.length < 2 ? null : messages[1].innerText;
}"""


def test_question_in_the_browser_shows_a_cited_answer(shipped_index, tmp_path):
    from playwright.sync_api import expect

    assert Path(browser.CHROMIUM).exists(), \
        "no Debian chromium: run `make test` (it installs it) or apt-get install chromium"
    env = {"RAG_INDEX_DIR": str(shipped_index), "RAG_CHATS_PATH": str(tmp_path / "chats.sqlite3")}
    with browser.serve_app(env) as url, browser.browser_page() as page:
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
        page.reload()  # the chat is in the address and the chat store: it comes back whole
        browser.wait_idle(page)
        messages = page.get_by_test_id("stChatMessageContent")
        expect(messages).to_have_count(4)
        expect(messages.last).to_contain_text("two weeks")
        expect(messages.nth(1).get_by_test_id("stExpander").first).to_contain_text("CQRS Patterns")
    assert (tmp_path / "answer.png").stat().st_size > 10_000
    print(f"first answer {first:.2f}s, second {second:.2f}s")


def test_the_browser_never_shows_an_unchecked_sentence(shipped_index):
    """A sloppy LLM streams slowly; the answer on the page is polled while it streams."""
    from fake_openai import FakeOpenAI, reply
    from playwright.sync_api import expect
    from test_llm import SLOPPY

    removed = ("Kubernetes", "[9]", "evil.example", "pixel", "three million", "Unicorns")
    with FakeOpenAI() as fake:
        fake.then(reply(SLOPPY, pace=0.05))
        env = {"RAG_INDEX_DIR": str(shipped_index), "OPENAI_API_KEY": "sk-browser-test", "OPENAI_BASE_URL": fake.url,
               "RAG_ANSWERER": "llm", "RAG_LLM_FALLBACK": "false"}
        with browser.serve_app(env) as url, browser.browser_page() as page:
            page.goto(url)
            browser.wait_idle(page)
            box = page.get_by_test_id("stChatInputTextArea")
            box.fill("Why did the database fail during traffic spikes?")
            box.press("Enter")
            seen: list[str] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # everything the answer's message shows, as it is drawn
                text = page.evaluate(VISIBLE_ANSWER)
                if text is not None:
                    seen.append(text)
                    assert not [word for word in removed if word in text], text
                    if "Removed 2 claim(s)" in text and page.locator(IDLE).count():
                        break
                time.sleep(0.02)
            answer = page.get_by_test_id("stChatMessageContent").nth(1)
            expect(answer).to_contain_text("PgBouncer")
            expect(answer.get_by_test_id("stExpander").last).to_contain_text("Removed 2 claim(s)")
    assert len(set(seen)) >= 3, seen  # it was watched while it changed


def test_upload_in_the_browser_then_answers_cite_the_page_and_follow_a_terminal_ingest(shipped_index, tmp_path):
    """Drag-and-drop (the file input behind it) of a PDF and a locked PDF; then an ingest from a terminal
    is answered from on the next question, without a restart."""
    import shutil
    import subprocess

    from documents import make_pdf
    from playwright.sync_api import expect

    shutil.copytree(shipped_index, tmp_path / "vectorstore")
    uploads = tmp_path / "to-upload"
    fleet = make_pdf(uploads / "fleet report.pdf", [
        ["# Storage migration", "The archive clusters moved to erasure coding in nine days."],
        ["# Results", "Disk failures fell by a third after the controllers were replaced."]], title="Disk fleet report")
    locked = make_pdf(uploads / "locked.pdf", [["Secret text."]], password="pw")
    env = {"RAG_INDEX_DIR": str(tmp_path / "vectorstore"), "RAG_CORPUS_DIR": str(tmp_path / "corpus")}
    with browser.serve_app(env, cwd=tmp_path) as url, browser.browser_page() as page:
        page.goto(url)
        browser.wait_idle(page)
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_test_id("stFileUploaderDropzoneInput").set_input_files([str(fleet), str(locked)])
        sidebar.get_by_role("button", name="Upload and index").click()
        expect(sidebar).to_contain_text("Read uploads/fleet report.pdf", timeout=240_000)
        expect(sidebar).to_contain_text("Skipped uploads/locked.pdf: encrypted PDF")
        expect(sidebar).to_contain_text("2 indexed")
        expect(page.get_by_role("heading", name="Ask your documents")).to_be_visible()
        browser.ask(page, "How fast did the archive clusters move to erasure coding?", 0)
        answer = page.get_by_test_id("stChatMessageContent").last
        expect(answer).to_contain_text("nine days")
        expect(answer.get_by_test_id("stExpander").first).to_contain_text("Disk fleet report")
        answer.get_by_test_id("stExpander").first.click()
        expect(answer).to_contain_text("p. 1")

        (tmp_path / "quokka.md").write_text("# Quokka migration\n\nThe quokka team migrated to CockroachDB in 2023.\n")
        done = subprocess.run([sys.executable, "-m", "rag", "ingest", "quokka.md"], cwd=tmp_path, capture_output=True,
                              env={**os.environ, **env})
        assert done.returncode == 0, done.stderr
        browser.ask(page, "What did the quokka team migrate to?", 1)
        expect(page.get_by_test_id("stChatMessageContent").last).to_contain_text("CockroachDB")
    # Uploads land beside the index, never in the corpus folder or the source tree.
    assert (tmp_path / "uploads" / "fleet report.pdf").read_bytes() == fleet.read_bytes()
    assert not (tmp_path / "corpus").exists()


def test_served_on_all_interfaces_the_browser_is_asked_for_the_password_first(shipped_index, tmp_path):
    from playwright.sync_api import expect

    password = "browser-pw-SENTINEL"
    env = {"RAG_INDEX_DIR": str(shipped_index), "RAG_CHATS_PATH": str(tmp_path / "chats.sqlite3"),
           "RAG_APP_PASSWORD": password}
    with browser.serve_app(env, address="0.0.0.0") as url, browser.browser_page() as page:
        page.goto(url)
        browser.wait_idle(page)
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.get_by_test_id("stChatInputTextArea")).to_have_count(0)
        expect(page.get_by_test_id("stSidebar")).to_have_count(0)
        box = page.get_by_label("Password", exact=True)
        box.fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("Wrong password.")).to_be_visible()
        expect(page.get_by_test_id("stChatInputTextArea")).to_have_count(0)
        box.fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_test_id("stChatInputTextArea")).to_be_visible(timeout=60_000)
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar).to_contain_text("Signed in as reader")
        expect(sidebar.get_by_role("button", name="Re-ingest")).to_have_count(0)
        expect(page.locator("body")).not_to_contain_text(password)


def test_two_people_in_their_own_browsers_never_see_each_others_chats(shipped_index, tmp_path):
    """Ada and Bob, added with `rag user add` (password piped in), each sign in in their own browser context
    (their own cookies and session); Bob's list holds nothing of Ada's and her chat's address shows him nothing."""
    import shutil
    import subprocess

    from playwright.sync_api import expect, sync_playwright

    shutil.copytree(shipped_index, tmp_path / "vectorstore")
    env = {"RAG_INDEX_DIR": str(tmp_path / "vectorstore"), "RAG_CHATS_PATH": str(tmp_path / "chats.sqlite3")}
    people = {"Ada": "ada-browser-pw-SENTINEL", "Bob": "bob-browser-pw-SENTINEL"}
    for name, password in people.items():
        added = subprocess.run([sys.executable, "-m", "rag", "user", "add", name, "--role", "reader"],
                               input=password + "\n", capture_output=True, text=True, env={**os.environ, **env})
        assert added.returncode == 0, added.stderr
    question = "What tool fixed the database running out of connections?"  # not one of the examples shown

    def signed_in(context, name: str):
        page = context.new_page()
        page.goto(url)
        browser.wait_idle(page)
        expect(page.get_by_test_id("stSidebar")).to_have_count(0)  # nothing before the sign-in
        page.get_by_label("Name", exact=True).fill(name)
        page.get_by_label("Password", exact=True).fill(people[name])
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_test_id("stSidebar")).to_contain_text(f"Signed in as {name} (reader)", timeout=60_000)
        browser.wait_idle(page)
        return page

    with browser.serve_app(env) as url, sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=browser.CHROMIUM, args=browser.CHROMIUM_ARGS)
        try:
            ada = signed_in(chromium.new_context(viewport={"width": 1100, "height": 1000}), "Ada")
            browser.ask(ada, question, 0)
            expect(ada.get_by_test_id("stChatMessageContent").last).to_contain_text("PgBouncer")
            expect(ada.get_by_test_id("stSidebar")).to_contain_text(question)
            ada_chat = ada.url  # ...?chat=<id>
            assert "chat=" in ada_chat

            bob = signed_in(chromium.new_context(viewport={"width": 1100, "height": 1000}), "Bob")
            expect(bob.get_by_test_id("stSidebar")).not_to_contain_text(question)
            bob.goto(ada_chat)  # Ada's address, pasted into Bob's browser; he signs in again (a new session)
            browser.wait_idle(bob)
            bob.get_by_label("Name", exact=True).fill("Bob")
            bob.get_by_label("Password", exact=True).fill(people["Bob"])
            bob.get_by_role("button", name="Sign in").click()
            expect(bob.get_by_text("There is no chat at this address among yours")).to_be_visible(timeout=60_000)
            browser.wait_idle(bob)
            expect(bob.get_by_test_id("stChatMessage")).to_have_count(0)
            expect(bob.locator("body")).not_to_contain_text(question)
            expect(bob.locator("body")).not_to_contain_text("PgBouncer")

            ada.reload()  # Ada's chat is still hers, whole
            browser.wait_idle(ada)
            ada.get_by_label("Name", exact=True).fill("Ada")
            ada.get_by_label("Password", exact=True).fill(people["Ada"])
            ada.get_by_role("button", name="Sign in").click()
            expect(ada.get_by_test_id("stChatMessage")).to_have_count(2, timeout=60_000)
            for page in (ada, bob):
                for password in people.values():
                    expect(page.locator("body")).not_to_contain_text(password)
        finally:
            chromium.close()
