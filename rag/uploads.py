"""Files uploaded through a user interface, saved into the corpus folder under a safe name."""

from __future__ import annotations

import hashlib
import os
import re
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
    folder.mkdir(parents=True, exist_ok=True)
    target, number = folder / cleaned, 1
    while target.exists():
        if hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest():
            return target  # the same file again
        number += 1
        target = folder / f"{Path(cleaned).stem} ({number}){suffix}"
    partial = target.with_name(f".{target.name}.part")
    partial.write_bytes(data)
    os.replace(partial, target)  # never a half-written file under its real name
    return target
