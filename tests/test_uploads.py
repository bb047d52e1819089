"""Uploaded files land in the corpus folder under a safe name, and never over another file."""

from __future__ import annotations

import pytest

from rag.uploads import UploadRefused, safe_name, save_upload


@pytest.mark.parametrize(("name", "saved"), [
    ("../../etc/passwd.md", "passwd.md"),
    ("C:\\Users\\me\\Report Q3.PDF", "Report Q3.pdf"),
    (".bashrc.md", "bashrc.md"),
    ("rm -rf $(whoami);.txt", "rm -rf _(whoami).txt"),
    ("\u202egnp.md", "gnp.md"),
    (".md", "upload.md"),
])
def test_names_lose_folders_and_shell_characters(name, saved):
    assert safe_name(name) == saved


def test_an_upload_never_replaces_another_file(tmp_path):
    first = save_upload(tmp_path, "notes.md", b"# A\n\nOne.\n", 1000)
    again = save_upload(tmp_path, "notes.md", b"# A\n\nOne.\n", 1000)
    other = save_upload(tmp_path, "notes.md", b"# B\n\nTwo.\n", 1000)
    assert first == again == tmp_path / "notes.md" and other == tmp_path / "notes (2).md"
    assert first.read_bytes() == b"# A\n\nOne.\n" and other.read_bytes() == b"# B\n\nTwo.\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes (2).md", "notes.md"]


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("big.pdf", b"%PDF" + b"x" * 2000, "larger than the 1,000-byte limit"),
    ("tool.exe", b"MZ", "unsupported file type .exe"),
    ("empty.md", b"  \n", "empty file"),
])
def test_refused_uploads_say_why_and_write_nothing(tmp_path, name, data, reason):
    with pytest.raises(UploadRefused, match=reason):
        save_upload(tmp_path / "corpus", name, data, 1000)
    assert not (tmp_path / "corpus").exists()


def test_a_folder_that_cannot_take_the_file_is_one_clear_refusal(tmp_path):
    (tmp_path / "corpus").write_text("a file where the folder should be")
    with pytest.raises(UploadRefused, match="could not be saved in"):
        save_upload(tmp_path / "corpus", "notes.md", b"# A\n\nOne.\n", 1000)
