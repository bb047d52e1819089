"""Files uploaded through a user interface, saved into the corpus folder under a safe name."""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from pathlib import Path

from .corpus import SUPPORTED_SUFFIXES
from .errors import UserError

_UNSAFE = re.compile(r"[^\w.\- ()]+")
_MAX_NAME = 120


class UploadRefused(UserError):
    """One uploaded file that was not saved, and why."""


def safe_name(name: str) -> str:
    """The file name alone (no folders, no '..', no control or shell characters), never hidden."""
    base = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    stem, suffix = os.path.splitext(base)
    if not suffix and stem.startswith("."):  # ".md": a hidden file's name is all suffix
        stem, suffix = "", stem
    stem = _UNSAFE.sub("_", stem).strip(" ._") or "upload"
    return stem[: _MAX_NAME] + suffix.lower()


def save_upload(folder: Path, name: str, data: bytes, max_bytes: int) -> Path:
    """Save it in folder; an existing file with other content is kept and the upload gets a new name."""
    cleaned = safe_name(name)
    suffix = Path(cleaned).suffix
    if suffix not in SUPPORTED_SUFFIXES:
        raise UploadRefused(f"unsupported file type {suffix or '(none)'}")
    if len(data) > max_bytes:
        raise UploadRefused(f"larger than the {max_bytes:,}-byte limit (RAG_MAX_FILE_BYTES)")
    if not data.strip():
        raise UploadRefused("empty file")
    try:
        return _claim(folder, cleaned, data)
    except OSError as exc:
        # The folder's path is the server's business: the setting names it for whoever runs it.
        why = exc.strerror or type(exc).__name__
        raise UploadRefused(f"could not be saved in the upload folder, RAG_UPLOAD_DIR ({why})") from None


def _claim(folder: Path, cleaned: str, data: bytes) -> Path:
    """Write a private temporary file, then link it under the first free name: two uploads of one name
    at once get two files, and no reader ever sees a half-written one."""
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        stem, suffix = Path(cleaned).stem, Path(cleaned).suffix
        for number in range(1, 1000):
            target = folder / (cleaned if number == 1 else f"{stem} ({number}){suffix}")
            if target.is_file() and target.read_bytes() == data:
                return target  # the same file again
            try:
                os.link(temporary, target)
                return target
            except FileExistsError:
                continue
        raise UploadRefused(f"too many files named like {cleaned}")
    finally:
        os.unlink(temporary)
