"""Loaders: the listing format, Markdown, plain text, HTML, and bad files skipped by name."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import SHIPPED_CORPUS

from rag.corpus import is_heading, load_paths

SEED_TITLES = [
    "Building Resilient Systems with Desktop App Frameworks and Remix",
    "From Monolithic Apps to Angular: A Authentication Systems Journey",
    "Your First 3 Days with CQRS Patterns: A Survival Guide",
    "Your First 14 Days with Prompt Engineering: A Survival Guide",
    "Revisiting AI Agent Orchestration After 5 Month in Production",
]


def load(*paths, max_bytes=5_000_000):
    return load_paths([Path(p) for p in paths], max_bytes, Path.cwd())


def test_seed_loads_as_five_posts_with_exact_titles():
    result = load(SHIPPED_CORPUS)
    assert [p.title for p in result.posts] == SEED_TITLES
    assert {p.category for p in result.posts} == {"Case Studies"}
    assert result.skipped == []


def test_seed_sections_follow_their_headings():
    posts = {p.title: p for p in load(SHIPPED_CORPUS).posts}
    first = [(para.section, para.text[:30]) for para in posts[SEED_TITLES[0]].paragraphs]
    assert first == [
        ("", "The team experimented with mob"),
        ("", "Structured logging was the sin"),
        ("Incident Post-Mortem", "Our cost optimization effort s"),
        ("The Migration Path", "Our initial benchmark numbers "),
        ("The Migration Path", "Post-mortems without action it"),
        ("The Migration Path", "We’re still iterating on all o"),
    ]
    last = posts[SEED_TITLES[4]]
    assert [p.section for p in last.paragraphs].count("Cost Breakdown") == 6
    assert {p.section for p in posts[SEED_TITLES[1]].paragraphs} == {""}
    # headings are not paragraphs
    assert all(not is_heading(p.text) for post in posts.values() for p in post.paragraphs)


def test_markdown_title_sections_front_matter_and_code(tmp_path):
    (tmp_path / "a.md").write_text(
        "---\ncategory: Infra\n---\n# Moving to Kafka\n\nWe moved queues to Kafka.\nIt took a year.\n\n"
        "## Results\n\nLatency fell by half.\n\n```\ncode line one\n\ncode line two\n```\n"
    )
    (post,) = load(tmp_path / "a.md").posts
    assert (post.title, post.category) == ("Moving to Kafka", "Infra")
    assert [(p.section, p.text) for p in post.paragraphs] == [
        ("", "We moved queues to Kafka. It took a year."),
        ("Results", "Latency fell by half."),
        ("Results", "``` code line one code line two ```"),
    ]


def test_html_drops_scripts_and_boilerplate(tmp_path):
    (tmp_path / "page.html").write_text(
        "<html><head><title>Edge caching</title><script>alert('x')</script></head><body>"
        "<nav>Home | About</nav><h1>Edge caching</h1><p>We put a CDN in front.</p>"
        "<h2>Numbers</h2><ul><li>Hit rate rose to <b>94%</b>.</li></ul>"
        "<footer>(c) corp</footer><script>steal()</script></body></html>"
    )
    (post,) = load(tmp_path / "page.html").posts
    assert post.title == "Edge caching"
    assert [(p.section, p.text) for p in post.paragraphs] == [
        ("", "We put a CDN in front."), ("Numbers", "Hit rate rose to 94%.")]


def test_plain_text_title_from_first_short_line_or_file_name(tmp_path):
    (tmp_path / "notes.txt").write_text("Queue Rewrite\n\nWe rewrote the queue.\n")
    (tmp_path / "on-call_handbook.txt").write_text("Pages go to the primary first.\n")
    titles = sorted(p.title for p in load(tmp_path).posts)
    assert titles == ["On call handbook", "Queue Rewrite"]


def test_folders_are_read_recursively_and_sorted(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "two.md").write_text("# Two\n\nSecond post.\n")
    (tmp_path / "one.md").write_text("# One\n\nFirst post.\n")
    (tmp_path / ".hidden.md").write_text("# Hidden\n\nNot read.\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    result = load(tmp_path)
    assert [p.title for p in result.posts] == ["One", "Two"]
    assert sorted(p.path for p in result.posts) == ["b/two.md", "one.md"]


def test_bad_files_are_skipped_by_name_and_the_rest_load(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.md").write_text("# Good\n\nA fine paragraph.\n")
    (folder / "empty.md").write_text("  \n\n")
    (folder / "binary.txt").write_bytes(b"abc\x00\x01\x02" * 10)
    (folder / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (folder / "huge.md").write_text("# Huge\n\n" + "word " * 400)
    outside = tmp_path / "secret.md"
    outside.write_text("# Secret\n\nOutside the corpus.\n")
    os.symlink(outside, folder / "link.md")
    result = load(folder, max_bytes=1000)
    assert [p.title for p in result.posts] == ["Good"]
    reasons = {s.path: s.reason for s in result.skipped}
    assert set(reasons) == {"docs/empty.md", "docs/binary.txt", "docs/latin1.txt", "docs/huge.md", "docs/link.md"}
    assert "empty" in reasons["docs/empty.md"]
    assert "binary" in reasons["docs/binary.txt"]
    assert "UTF-8" in reasons["docs/latin1.txt"]
    assert "RAG_MAX_FILE_BYTES" in reasons["docs/huge.md"]
    assert "outside" in reasons["docs/link.md"]


def test_unreadable_file_is_skipped(tmp_path):
    if os.geteuid() == 0:
        # root reads anything: stand in a folder named like a file instead
        (tmp_path / "locked.md").mkdir()
        (tmp_path / "x.md").write_text("# X\n\nText.\n")
        assert [p.title for p in load(tmp_path).posts] == ["X"]
        return
    (tmp_path / "locked.md").write_text("# Locked\n\nText.\n")
    (tmp_path / "locked.md").chmod(0)
    result = load(tmp_path)
    assert result.posts == [] and "unreadable" in result.skipped[0].reason


def test_a_link_loop_is_skipped_with_a_warning_and_the_rest_load(tmp_path):
    (tmp_path / "good.md").write_text("# Good\n\nA fine paragraph.\n")
    os.symlink("self.md", tmp_path / "self.md")  # points to itself
    os.symlink("b.md", tmp_path / "a.md")
    os.symlink("a.md", tmp_path / "b.md")
    os.symlink("gone.md", tmp_path / "dangling.md")
    for parse in (True, False):  # reading, and fingerprinting for `rag info`
        result = load_paths([tmp_path], 5_000_000, tmp_path, parse=parse)
        reasons = {s.path: s.reason for s in result.skipped}
        assert set(reasons) == {"self.md", "a.md", "b.md", "dangling.md"}
        assert all("broken link" in reason for reason in reasons.values())
        assert list(result.fingerprints) == ["good.md"]
    assert [p.title for p in load(tmp_path).posts] == ["Good"]


def test_deeply_nested_folders_are_read_without_a_recursion_limit(tmp_path):
    deep = tmp_path
    for _ in range(1100):  # deeper than Python's default recursion limit (mkdir(parents=True) recurses)
        deep = deep / "d"
        deep.mkdir()
    try:
        (deep / "bottom.md").write_text("# Bottom\n\nFar down.\n")
        (tmp_path / "top.md").write_text("# Top\n\nUp here.\n")
        assert [p.title for p in load(tmp_path).posts] == ["Top", "Bottom"]
    finally:  # pytest's clean-up (shutil.rmtree) recurses too, and would fail on it later
        (deep / "bottom.md").unlink(missing_ok=True)
        while deep != tmp_path:
            deep.rmdir()
            deep = deep.parent
