"""
Text handling of the emulator: process rules, chunking, keyword extraction and text extraction from files.

Deliberately simple, documented in docs/emulator.md:

- a *token* is 4 characters (``ceil(len(text) / 4)``): ``max_tokens=500`` means chunks of up to 2,000
  characters;
- ``automatic`` mode merges paragraphs (``"\\n\\n"``, then sentences, then words) into chunks of up to
  ``max_tokens`` with ``chunk_overlap`` tokens of overlap, like Dify's recursive splitter;
- ``custom`` mode splits on the given separator first (every piece becomes a chunk) and only splits pieces
  longer than ``max_tokens`` further;
- keywords are the (up to) 10 most frequent words of a chunk that are not stop words, longer words first on
  ties, case kept (Dify's economy index is case-sensitive too).
"""

from __future__ import annotations

import html
import io
import math
import re
import zipfile
from html.parser import HTMLParser
from typing import Any

CHARS_PER_TOKEN = 4
MAX_KEYWORDS = 10

AUTOMATIC_RULES: dict[str, Any] = {
    "pre_processing_rules": [
        {"id": "remove_extra_spaces", "enabled": True},
        {"id": "remove_urls_emails", "enabled": False},
    ],
    "segmentation": {"delimiter": "\n", "max_tokens": 500, "chunk_overlap": 50},
}

_RECURSIVE_SEPARATORS = ["\n\n", "。", ". ", " ", ""]

STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are aren as at be because been before being
    below between both but by can cannot could couldn did didn do does doesn doing don down during each
    few for from further had hadn has hasn have haven having he her here hers herself him himself his
    how i if in into is isn it its itself just let me more most mustn my myself no nor not now of off on
    once only or other ought our ours ourselves out over own same shan she should shouldn so some such
    than that the their theirs them themselves then there these they this those through to too under
    until up very via was wasn we were weren what when where which while who whom why will with won
    would wouldn you your yours yourself yourselves s t ll re ve d m o y
    """.split()  # noqa: SIM905 - a word list reads best as text
)

_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)
_URL_RE = re.compile(r"https?://[^\s]+|www\.[^\s]+")
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_EXTRA_NEWLINES_RE = re.compile(r"\n{3,}")
_EXTRA_SPACES_RE = re.compile(r"[\t\f\r\x20\u00a0\u1680\u180e\u2000-\u200a\u202f\u205f\u3000]{2,}")


def estimate_tokens(text: str) -> int:
    """Tokens of a text in the emulator's model: one token per 4 characters, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def extract_keywords(text: str, limit: int = MAX_KEYWORDS) -> list[str]:
    """The most frequent non-stop-words of ``text`` (longer words win ties), at most ``limit``."""
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for index, word in enumerate(_WORD_RE.findall(text)):
        if len(word) < 2 or word.isdigit() or word.lower() in STOPWORDS:
            continue
        if word not in counts:
            counts[word] = 0
            first[word] = index
        counts[word] += 1
    ranked = sorted(counts, key=lambda w: (-counts[w], -len(w), first[w]))
    return ranked[:limit]


def query_keywords(query: str) -> list[str]:
    """Keywords of a retrieval query (same extraction as for chunks)."""
    return extract_keywords(query, MAX_KEYWORDS)


def words(text: str) -> set[str]:
    """Lower-cased words of a text without stop words (used by the fake semantic search)."""
    return {w.lower() for w in _WORD_RE.findall(text) if w.lower() not in STOPWORDS}


# --------------------------------------------------------------------------------------------------
# process rules
# --------------------------------------------------------------------------------------------------


def rules_for(mode: str, rules: dict[str, Any] | None) -> dict[str, Any]:
    """The effective rules of a process rule: the automatic defaults, or the given custom rules."""
    if mode == "automatic" or not rules:
        return AUTOMATIC_RULES
    return rules


def _preprocess(text: str, rules: dict[str, Any]) -> str:
    enabled = {item.get("id") for item in rules.get("pre_processing_rules") or [] if item.get("enabled")}
    if "remove_extra_spaces" in enabled:
        text = _EXTRA_NEWLINES_RE.sub("\n\n", text)
        text = _EXTRA_SPACES_RE.sub(" ", text)
    if "remove_urls_emails" in enabled:
        text = _EMAIL_RE.sub("", text)
        text = _URL_RE.sub("", text)
    return text


def _segmentation(rules: dict[str, Any], key: str = "segmentation") -> tuple[str, int, int]:
    seg = rules.get(key) or {}
    separator = seg.get("separator", seg.get("delimiter", "\n")) or "\n"
    separator = separator.encode("utf-8").decode("unicode_escape") if "\\" in separator else separator
    max_tokens = int(seg.get("max_tokens") or 500)
    overlap = int(seg.get("chunk_overlap") or 0)
    return separator, max(1, max_tokens), max(0, overlap)


def _merge(pieces: list[str], separator: str, size: int, overlap: int) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    total = 0
    sep_len = len(separator)
    for piece in pieces:
        length = len(piece)
        if current and total + length + sep_len > size:
            chunk = separator.join(current).strip()
            if chunk:
                chunks.append(chunk)
            while current and (total > overlap or total + length + sep_len > size):
                total -= len(current[0]) + (sep_len if len(current) > 1 else 0)
                current.pop(0)
        current.append(piece)
        total += length + (sep_len if len(current) > 1 else 0)
    chunk = separator.join(current).strip()
    if chunk:
        chunks.append(chunk)
    return chunks


def _recursive_split(text: str, separators: list[str], size: int, overlap: int) -> list[str]:
    separator = ""
    rest: list[str] = []
    for index, candidate in enumerate(separators):
        if candidate == "" or candidate in text:
            separator = candidate
            rest = separators[index + 1 :]
            break
    if separator == "":
        step = max(1, size - overlap)
        return [text[i : i + size] for i in range(0, len(text), step) if text[i : i + size].strip()]
    final: list[str] = []
    good: list[str] = []
    for piece in text.split(separator):
        if len(piece) < size:
            good.append(piece)
            continue
        if good:
            final.extend(_merge(good, separator, size, overlap))
            good = []
        final.extend(_recursive_split(piece, rest, size, overlap) if rest else [piece])
    if good:
        final.extend(_merge(good, separator, size, overlap))
    return final


def _fixed_split(text: str, separator: str, size: int, overlap: int) -> list[str]:
    chunks: list[str] = []
    for piece in text.split(separator) if separator else [text]:
        piece = piece.strip()
        if not piece:
            continue
        if len(piece) > size:
            chunks.extend(c.strip() for c in _recursive_split(piece, _RECURSIVE_SEPARATORS, size, overlap))
        else:
            chunks.append(piece)
    return [c for c in chunks if c]


def split_text(text: str, mode: str, rules: dict[str, Any] | None) -> list[tuple[str, list[str]]]:
    """
    Split a document into chunks according to its process rule.

    :return: ``(chunk, child_chunks)`` pairs; child chunks are only produced in ``hierarchical`` mode.
    """
    effective = rules_for(mode, rules)
    text = _preprocess(text, effective)
    if not text.strip():
        return []
    separator, max_tokens, overlap = _segmentation(effective)
    size, overlap_chars = max_tokens * CHARS_PER_TOKEN, overlap * CHARS_PER_TOKEN
    if mode == "hierarchical":
        if effective.get("parent_mode") == "full-doc":
            parents = [text.strip()]
        else:
            parents = _fixed_split(text, separator, size, overlap_chars)
        sub_sep, sub_tokens, sub_overlap = _segmentation(effective, "subchunk_segmentation")
        return [
            (
                parent,
                _fixed_split(parent, sub_sep, sub_tokens * CHARS_PER_TOKEN, sub_overlap * CHARS_PER_TOKEN),
            )
            for parent in parents
        ]
    if mode == "custom":
        chunks = _fixed_split(text, separator, size, overlap_chars)
    else:
        chunks = [c.strip() for c in _recursive_split(text, _RECURSIVE_SEPARATORS, size, overlap_chars)]
    return [(chunk, []) for chunk in chunks if chunk]


def split_children(content: str, rules: dict[str, Any] | None) -> list[str]:
    """Child chunks of one parent chunk (hierarchical mode)."""
    effective = rules or {}
    sub_sep, sub_tokens, sub_overlap = _segmentation(effective, "subchunk_segmentation")
    return _fixed_split(content, sub_sep, sub_tokens * CHARS_PER_TOKEN, sub_overlap * CHARS_PER_TOKEN)


# --------------------------------------------------------------------------------------------------
# text extraction from uploaded files
# --------------------------------------------------------------------------------------------------

TEXT_EXTENSIONS = frozenset(
    {
        "txt",
        "md",
        "markdown",
        "mdx",
        "csv",
        "vtt",
        "properties",
        "json",
        "jsonl",
        "xml",
        "yaml",
        "yml",
        "log",
        "tsv",
    }
)
HTML_EXTENSIONS = frozenset({"html", "htm"})


class _HtmlText(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title"})
    _BLOCK = frozenset(
        {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _docx_text(data: bytes) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            xml = archive.read("word/document.xml").decode("utf-8", "replace")
    except (zipfile.BadZipFile, KeyError, OSError):
        return None
    xml = re.sub(r"</w:p>", "\n\n", xml)
    return html.unescape(re.sub(r"<[^>]+>", "", xml)).strip()


def extract_text(filename: str, extension: str, data: bytes) -> str:
    """Text of an uploaded file: decoded for text formats, tags stripped for HTML, a placeholder otherwise."""
    if extension in TEXT_EXTENSIONS:
        return _decode(data)
    if extension in HTML_EXTENSIONS:
        parser = _HtmlText()
        parser.feed(_decode(data))
        parser.close()
        return re.sub(r"\n{3,}", "\n\n", "".join(parser.parts)).strip()
    if extension == "docx":
        text = _docx_text(data)
        if text:
            return text
    return f"{filename}: {extension} file of {len(data)} bytes (content not extracted by the emulator)."
