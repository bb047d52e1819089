"""What a paper or report holds besides its text: reference lists, lone figure and page numbers, junk
metadata titles. Such lines never become passages or section labels: they outrank the text that answers
(a reference entry shares every name of a question about the work it cites)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..types import Paragraph

_REFERENCE_HEADING = re.compile(
    r"^(?:[\dIVX]+\.?\s+)?(references?|bibliography|works cited|literature cited|cited works|sources|"
    r"citations|reference list|notes and references|endnotes|footnotes|(?:table of )?contents|"
    r"list of (?:figures|tables))\s*:?$",
    re.I)
_DOT_LEADERS = re.compile(r"(?:\.\s?){4,}\s*\d{1,4}$")
# "[12] ..." or "12. ..." at the start, then the marks of a citation: a URL, "accessed", "et al.", "vol."/"pp.",
# or an author written "Wilkinson, S.," (a year in brackets alone is not enough: numbered lists have those).
_ENTRY_NUMBER = re.compile(r"^(?:\[\d{1,3}\]|\d{1,3}\.)\s+\S")
_CITATION_MARKS = re.compile(
    r"https?://|www\.|\bdoi\b|\baccessed\b|\bretrieved from\b|\bet al\b|\bvol\.|\bpp\.|"
    r"\bin proceedings\b|\bproc\.|\barxiv\b|\bisbn\b|\b[A-Z][a-z]+, (?:[A-Z]\.\s?){1,3}[,:;]")
_AUTHOR_LIST = re.compile(r"^[A-Z][A-Za-z'-]+, (?:[A-Z]\.\s?){1,3}(?:,|and|&|:)")
_LONE_LABEL = re.compile(r"^(?:\d{1,4}|(?=[ivxlc])c?x{0,3}(?:ix|iv|v?i{0,3})|(?:fig(?:ure)?|tab(?:le)?|eq(?:uation)?|"
                         r"listing|chart)\.?\s*\d{1,3}[a-z]?[.:]?|\(\d{1,3}\))$", re.I)
_JUNK_TITLE = re.compile(r"^(?:microsoft (?:word|powerpoint|excel)\b.*|untitled.*|title|document\d*|"
                         r"slide \d+|.*\.(?:docx?|pdf|tex|dvi|rtf|odt|pptx?|indd|qxd)|[\W\d_]*)$", re.I)


# After a word and a space, or right after punctuation: not a list's "[1] ..." nor code's "array[3]".
_CITATION_NUMBERS = re.compile(r"(?:(?<=[\w.,;:)])\s|(?<=[.,;:)]))\[\d{1,3}(?:\s?[,–-]\s?\d{1,3})*\]")


def without_citation_numbers(text: str) -> str:
    """The text less its numbered citations ("as shown [12]." -> "as shown."): debris to a reader, and
    an answer's own [n] markers would be confused with them."""
    return _CITATION_NUMBERS.sub("", text)


def is_reference_heading(text: str) -> bool:
    """A heading over a list: references, a bibliography, the contents, a list of figures."""
    return bool(_REFERENCE_HEADING.match(" ".join(text.split())))


def is_reference_entry(text: str) -> bool:
    """A bibliography entry: numbered and carrying a citation's marks, or opening with an author list."""
    text = " ".join(text.split())
    if _AUTHOR_LIST.match(text) and _CITATION_MARKS.search(text):
        return True
    return bool(_ENTRY_NUMBER.match(text)) and bool(_CITATION_MARKS.search(text))


def is_lone_label(text: str) -> bool:
    """A page, figure, table or equation number left on a line of its own, or a contents line with dot
    leaders ("2.1 Naming ........ 4")."""
    return bool(_LONE_LABEL.match(text.strip()) or _DOT_LEADERS.search(text))


def real_title(title: str | None) -> str:
    """The metadata title when it names the document: "" for a writer's placeholder or a file name."""
    title = " ".join((title or "").split())
    return "" if len(title) < 3 or _JUNK_TITLE.match(title) else title


def body_text(paragraphs: Iterable[Paragraph]) -> list[Paragraph]:
    """The paragraphs that are text: not under a references or contents heading, not shaped like a
    reference entry, not a lone label."""
    return [p for p in paragraphs if not (is_reference_heading(p.section) or is_reference_entry(p.text)
                                          or is_lone_label(p.text))]
