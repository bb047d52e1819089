"""Showing model and corpus text in markdown interfaces without letting it link, embed or format."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .answer.citations import ADDRESS, host_of, trusted
from .answer.conversation import added_subject

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~$])")
# Streamlit's colours, icons and emoji shortcodes (":red[x]", ":material/x:", ":smile:"), with "[" escaped.
_DIRECTIVE = re.compile(r":(?=[a-z/_-]+(?:\\\[|:))")
_URL_START = re.compile(r"(?i)\b(https?|ftp|www)(\S)|(?<=\w)(@)(?=\w)")


def safe_markdown(text: str) -> str:
    """Markdown that shows the text as written: escaped syntax, so no link, image, HTML or emphasis,
    and URLs broken by a zero-width space so they are not auto-linked either."""
    escaped = _DIRECTIVE.sub(r"\\:", _MARKDOWN_SPECIAL.sub(r"\\\1", text))
    return _URL_START.sub(lambda m: f"{m.group(1)}\u200b{m.group(2)}" if m.group(1) else "@\u200b", escaped)


def rewrite_note(question: str, standalone: str, read_as: str | None = None, limit: int = 240) -> str | None:
    """How a follow-up was read, as a sentence: "Read as: How long did the move to structured logging take?";
    None when the question was searched as asked. `read_as` is the Answer's (the LLM's rewrite, or the
    follow-up in the earlier question's words); an answer stored before it existed has none, and then the
    rule's keyword rewrite ("... (about: move structured logging)") is not shown, only that it followed up."""
    if not standalone or standalone == question:
        return None
    if read_as and read_as.strip() != question.strip():
        shown = read_as.strip()
    elif added_subject(question, standalone) is not None:
        return "Read as a follow-up to the question before it"
    else:
        shown = standalone
    return "Read as: " + (shown if len(shown) <= limit else shown[:limit - 3].rstrip() + "...")


_CODE = re.compile(r"(```.*?```|`[^`\n]+`)", re.S)
_TOKEN = re.compile(
    r"!\[(?P<alt>[^\]\n]*)\]\([^)\n]*\)"  # an image: never shown, its alt text is
    r"|\[(?P<label>[^\]\n]+)\]\(\s*<?(?P<href>[^)\s>]+)>?(?:\s+\"[^\"\n]*\")?\s*\)"  # a link
    r"|(?P<url>" + ADDRESS + ")")  # a bare address or e-mail, which would be linked
# A link that leaves the web: anything but http(s), mailto and scheme-less (relative) addresses.
_SCRIPT_SCHEME = re.compile(r"(?i)\s*(?!https?:|mailto:)[a-z][a-z0-9+.-]*:(?!//)")
_LINK_DEFINITION = re.compile(r"(?m)^(\s{0,3})\[([^\]\n]+)\]:")
# Raw HTML, and Streamlit's own syntax: colours and icons (":red[x]", ":material/x:") and LaTeX ("$x$").
_ACTIVE = re.compile(r"[<>$]|:(?=[a-z/_-]+[\[:])")


def answer_markdown(text: str, passages: list[str], hosts: Sequence[str] = ()) -> str:
    """An answer as Markdown that keeps emphasis, lists, headings and code, keeps a link only when a
    passage holds its address, and never shows an image, raw HTML or a link the sources do not have. A
    kept link to a host outside `hosts` (allow-listed, with subdomains) is shown unlinked, with a warning."""
    return "".join(part if index % 2 else _prose(part, passages, hosts) for index, part in enumerate(_CODE.split(text)))


def _prose(text: str, passages: list[str], hosts: Sequence[str]) -> str:
    out, at = [], 0
    for match in _TOKEN.finditer(text):
        out += [_plain(text[at:match.start()]), _token(match, passages, hosts)]
        at = match.end()
    return "".join(out + [_plain(text[at:])])


def _plain(text: str) -> str:
    text = _LINK_DEFINITION.sub(r"\1\\[\2\\]:", text)  # "[1]: http://..." would turn markers into links
    return _ACTIVE.sub(lambda m: "\\" + m.group(0), text)


def _token(match: re.Match, passages: list[str], hosts: Sequence[str]) -> str:
    if match.group("alt") is not None:
        return safe_markdown(match.group("alt"))
    address = match.group("href") or match.group("url")
    whole = re.compile(re.escape(address) + r"(?=[.,;:!?]*(?:[\s<>()\[\]\"']|$))")  # itself, not a prefix of one
    sourced = any(whole.search(p) for p in passages)
    label = safe_markdown(match.group("label")) if match.group("label") is not None else None
    if _SCRIPT_SCHEME.match(address):  # javascript:, data:, vbscript:... never a link, not even as text
        return label if label is not None else safe_markdown(address)
    if not sourced:
        return label if label is not None else safe_markdown(address)
    host = host_of(address)
    if not trusted(host, hosts):  # a planted "reset your password at ..." is in its source too
        shown = f"{label} ({safe_markdown(address)})" if label is not None else safe_markdown(address)
        return f"{shown} ⚠ *outside link to {safe_markdown(host)}: check it before you open it*"
    return f"[{label}]({address})" if label is not None else address


def source_label(source: dict) -> str:
    """"Title › Section, p. 4" for one source of a passage (its JSON form)."""
    pages = ""
    if source.get("page") is not None:
        end = source.get("page_end") or source["page"]
        pages = f", p. {source['page']}" if end == source["page"] else f", pp. {source['page']}–{end}"
    return source["title"] + (f" › {source['section']}" if source.get("section") else "") + pages
