"""
Text handling of the emulator: process rules, chunking, keyword extraction and text extraction from files.

It follows Dify's own code (documented in docs/emulator.md):

- splitting: Dify's recursive character splitter; ``max_tokens`` and ``chunk_overlap`` count characters,
  ``automatic`` mode uses Dify's automatic rule (500 characters, 50 of overlap), ``custom`` mode cuts at the
  rule's separator first and splits longer pieces further, each chunk loses leading punctuation;
- keywords: jieba's TF-IDF extraction (the library and call of Dify's keyword table handler) with stop
  words, ``keyword_number`` keywords a chunk (10 by default), the parts of compound keywords added;
  jieba is imported on first use only.
"""

from __future__ import annotations

import html
import io
import logging
import math
import re
import threading
import zipfile
from html.parser import HTMLParser
from typing import Any

CHARS_PER_TOKEN = 4
#: Keywords a chunk gets when its dataset does not say otherwise (Dify's ``keyword_number`` default).
MAX_KEYWORDS = 10

AUTOMATIC_RULES: dict[str, Any] = {
    "pre_processing_rules": [
        {"id": "remove_extra_spaces", "enabled": True},
        {"id": "remove_urls_emails", "enabled": False},
    ],
    "segmentation": {"delimiter": "\n", "max_tokens": 500, "chunk_overlap": 50},
}

#: The separators Dify's splitters fall back on, in order (the last one splits into characters).
SEPARATORS = ("\n\n", "。", ". ", " ", "")

#: Stop words of the keyword index. jieba never keeps a word shorter than 2 characters, so only longer ones
#: matter, except for the parts of a compound keyword (``4.15`` -> ``4``, ``15``), where single digits are
#: dropped too: the English list (NLTK's, which Dify's list starts with), common Chinese function words,
#: digits and numerals.
STOPWORDS = frozenset(
    """
    a about above after again against ain all am an and any are aren aren't as at be because been before
    being below between both but by can couldn couldn't d did didn didn't do does doesn doesn't doing don
    don't down during each few for from further had hadn hadn't has hasn hasn't have haven haven't having he
    her here hers herself him himself his how i if in into is isn isn't it it's its itself just ll m ma me
    mightn mightn't more most mustn mustn't my myself needn needn't no nor not now o of off on once only or
    other our ours ourselves out over own re s same shan shan't she she's should should've shouldn
    shouldn't so some such t than that that'll the their theirs them themselves then there these they this
    those through to too under until up ve very was wasn wasn't we were weren weren't what when where which
    while who whom why will with won won't wouldn wouldn't y you you'd you'll you're you've your yours
    yourself yourselves
    人民 末##末 哎呀 哎哟 俺们 按照 吧哒 罢了 本着 比方 比如 鄙人 彼此 别的 别说 并且 不比 不成 不单 不但 不独
    不管 不光 不过 不仅 不拘 不论 不怕 不然 不如 不特 不惟 不问 不只 朝着 趁着 除此之外 除非 除了 此间 此外 从而
    但是 当着 的话 等等 叮咚 对于 多少 而况 而且 而是 而外 而言 而已 尔后 反过来 反过来说 反之 非但 非徒 否则
    嘎登 各个 各位 各种 各自 根据 故此 固然 关于 果然 果真 哈哈 何处 何况 何时 哼唷 呼哧 还是 还有 换句话说
    换言之 或是 或者 极了 及其 及至 即便 即或 即令 即若 即使 几时 既然 既是 继而 加之 假如 假若 假使 鉴于 较之
    接着 结果 紧接着 进而 尽管 经过 就是 就是说 具体地说 具体说来 开始 开外 可见 可是 可以 况且 来着 例如 连同
    两者 另外 另一方面 慢说 漫说 每当 莫若 某个 某些 哪边 哪儿 哪个 哪里 哪年 哪怕 哪天 哪些 哪样 那边 那儿
    那个 那会儿 那里 那么 那么些 那么样 那时 那些 那样 乃至 你们 宁可 宁肯 宁愿 啪达 旁人 凭借 其次 其二 其他
    其它 其一 其余 其中 起见 岂但 恰恰相反 前后 前者 然而 然后 然则 人家 任何 任凭 如此 如果 如何 如其 如若
    如上所述 若非 若是 上下 尚且 设若 设使 甚而 甚么 甚至 省得 时候 什么 什么样 使得 是的 首先 谁知 顺着 似的
    虽然 虽说 虽则 随着 所以 他们 他人 它们 她们 倘或 倘然 倘若 倘使 通过 同时 万一 为何 为了 为什么 为着 嗡嗡
    我们 呜呼 乌乎 无论 无宁 毋宁 相对而言 向着 沿着 要不 要不然 要不是 要么 要是 也罢 也好 一般 一旦 一方面
    一来 一切 一样 一则 依照 以便 以及 以免 以至 以至于 以致 抑或 因此 因而 因为 由此可见 由于 有的 有关 有些
    于是 于是乎 与此同时 与否 与其 越是 云云 再说 再者 在下 咱们 怎么 怎么办 怎么样 怎样 照着 这边 这儿 这个
    这会儿 这就是说 这里 这么 这么点儿 这么些 这么样 这时 这些 这样 正如 之类 之所以 之一 只是 只限 只要 只有
    至于 诸位 着呢 自从 自个儿 自各儿 自己 自家 自身 综上所述 总的来看 总的来说 总的说来 总而言之 总之 纵令
    纵然 纵使 遵照 作为 喔唷 按理 按期 按时 按说 暗中 八成 白白 保管 保险 本人 本身 必定 必将 必须 别人 并非 不必
    不常 不大 不得 不会 不少 不同 不能 不要 不再 才能 差不多 常常 充分 出来 出去 从来 大约 大家 当然 到处 的确
    多次 方才 非常 刚才 更加 互相 或许 基本 基于 很多 后来 忽然 -- .. >> ...
    0 1 2 3 4 5 6 7 8 9 A 一 二 三 四 五 六 七 八 九 零
    """.split()  # noqa: SIM905 - a word list reads best as text
)

_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)
_SUBTOKEN_RE = re.compile(r"\w+")
_URL_RE = re.compile(r"https?://[^\s]+|www\.[^\s]+")
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_EXTRA_NEWLINES_RE = re.compile(r"\n{3,}")
_EXTRA_SPACES_RE = re.compile(r"[\t\f\r\x20\u00a0\u1680\u180e\u2000-\u200a\u202f\u205f\u3000]{2,}")
#: What Dify strips from the start of every chunk after splitting (punctuation and symbols).
_LEADING_SYMBOLS_RE = re.compile(r"^[\u2000-\u206F\u2E00-\u2E7F\u3000-\u303F\"#$%&'()*+,./:;<=>?@^_`~]+")

_extractor_lock = threading.Lock()
_extractor: Any = None


def estimate_tokens(text: str) -> int:
    """Tokens of a text in the emulator's model (high-quality datasets only): one per 4 characters, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _tfidf() -> Any:
    """jieba's TF-IDF extractor with the stop words above, built once (jieba is imported here, lazily)."""
    global _extractor
    with _extractor_lock:
        if _extractor is None:
            try:
                import jieba
                import jieba.analyse
            except ImportError as error:  # pragma: no cover - the extra is part of [test]
                raise ImportError(
                    "The Dify emulator's keyword index needs jieba: pip install 'airflow-provider-dify[emulator]'."
                ) from error
            jieba.setLogLevel(logging.WARNING)
            extractor = jieba.analyse.TFIDF()
            extractor.stop_words = set(STOPWORDS)
            _extractor = extractor
        return _extractor


def load_keyword_index() -> None:
    """Load jieba and its dictionary now (about a second, once per process) rather than on a first chunk."""
    _tfidf().extract_tags(sentence="warm up", topK=1)


def extract_keywords(text: str, limit: int | None = MAX_KEYWORDS) -> list[str]:
    """
    The keywords Dify's economy index gives a text: jieba's TF-IDF top ``limit`` (ties: first appearance),
    then the parts of a keyword that has several (``4.15`` adds ``15``), stop words left out.
    """
    tags = _tfidf().extract_tags(sentence=text, topK=limit or MAX_KEYWORDS)
    keywords = list(dict.fromkeys(tags))
    for tag in tags:
        parts = _SUBTOKEN_RE.findall(tag)
        if len(parts) > 1:
            keywords.extend(part for part in parts if part not in STOPWORDS and part not in keywords)
    return keywords


def query_keywords(query: str) -> list[str]:
    """Keywords of a retrieval query: the same extraction, 10 at most (Dify ignores the dataset's number here)."""
    return extract_keywords(query, MAX_KEYWORDS)


def words(text: str) -> set[str]:
    """Lower-cased words of a text without stop words (used by the fake semantic search)."""
    return {w.lower() for w in _WORD_RE.findall(text) if w.lower() not in STOPWORDS}


# --------------------------------------------------------------------------------------------------
# process rules and splitting (Dify's splitters count characters)
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
    return separator, max(1, max_tokens), max(0, min(overlap, max_tokens))


class CharacterSplitter:
    """
    Dify's recursive character splitter (``api/core/rag/splitter/``): lengths are characters, a separator is
    kept at the end of the piece before it, small pieces are merged up to ``size`` with ``overlap``
    characters carried over, and a piece too long for one separator is split with the next one.

    :param size: the largest chunk, in characters (the rule's ``max_tokens``).
    :param overlap: characters shared by neighbouring chunks (the rule's ``chunk_overlap``).
    :param fixed_separator: custom rules: the text is first cut at this separator (``None``: automatic).
    """

    def __init__(self, size: int, overlap: int, fixed_separator: str | None = None) -> None:
        self.size = size
        self.overlap = overlap
        self.fixed_separator = fixed_separator

    def split(self, text: str) -> list[str]:
        """The chunks of a text, cleaned as Dify cleans them (leading symbols removed, stripped, none empty)."""
        if self.fixed_separator is None:
            pieces = self._split_recursively(text, list(SEPARATORS))
        else:
            pieces = []
            for piece in text.split(self.fixed_separator) if self.fixed_separator else [text]:
                pieces.extend(self._split_long(piece) if len(piece) > self.size else [piece])
        chunks = []
        for piece in pieces:
            if piece.strip():
                cleaned = _LEADING_SYMBOLS_RE.sub("", piece).strip()
                if cleaned:
                    chunks.append(cleaned)
        return chunks

    @staticmethod
    def _cut_keeping(text: str, separator: str) -> list[str]:
        if not separator:
            pieces = list(text)
        else:
            parts = re.split(f"({re.escape(separator)})", text)
            pieces = [parts[i - 1] + parts[i] for i in range(1, len(parts), 2)]
            if len(parts) % 2:
                pieces.append(parts[-1])
        return [piece for piece in pieces if piece not in ("", "\n")]

    def _merge(self, pieces: list[str]) -> list[str]:
        """Merge small pieces (joined without a separator: each kept its own) into chunks of ``size``."""
        chunks: list[str] = []
        current: list[str] = []
        total = 0
        for piece in pieces:
            length = len(piece)
            if total + length > self.size and current:
                joined = "".join(current).strip()
                if joined:
                    chunks.append(joined)
                while total > self.overlap or (total + length > self.size and total > 0):
                    total -= len(current[0])
                    current = current[1:]
            current.append(piece)
            total += length
        joined = "".join(current).strip()
        if joined:
            chunks.append(joined)
        return chunks

    def _split_recursively(self, text: str, separators: list[str]) -> list[str]:
        """Automatic mode: pick the first separator the text has (Dify tests them as regular expressions)."""
        separator, rest = separators[-1], []
        for index, candidate in enumerate(separators):
            if candidate == "":
                separator = candidate
                break
            if re.search(candidate, text):
                separator, rest = candidate, separators[index + 1 :]
                break
        return self._collect(self._cut_keeping(text, separator), rest, self._split_recursively)

    def _collect(self, pieces: list[str], rest: list[str], deeper: Any) -> list[str]:
        chunks: list[str] = []
        good: list[str] = []
        for piece in pieces:
            if len(piece) < self.size:
                good.append(piece)
                continue
            if good:
                chunks.extend(self._merge(good))
                good = []
            chunks.extend(deeper(piece, rest) if rest else [piece])
        if good:
            chunks.extend(self._merge(good))
        return chunks

    def _split_long(self, text: str) -> list[str]:
        """Custom mode: a piece longer than ``size`` (separators found by plain search, spaces dropped)."""
        separators = list(SEPARATORS)
        separator, rest = separators[-1], []
        for index, candidate in enumerate(separators):
            if candidate == "":
                separator = candidate
                break
            if candidate in text:
                separator, rest = candidate, separators[index + 1 :]
                break
        if separator == " ":
            pieces = re.split(r" +", text)
        elif separator:
            parts = text.split(separator)
            pieces = [part + separator for part in parts[:-1]] + parts[-1:]
        else:
            pieces = list(text)
        pieces = [p for p in pieces if p != ""] if separator == "\n" else [p for p in pieces if p not in ("", "\n")]
        if separator:
            return self._collect(pieces, rest, self._split_recursively)
        chunks: list[str] = []
        current, length, carried, carried_length = "", 0, "", 0
        for char in pieces:
            if length + 1 <= self.size - self.overlap:
                current, length = current + char, length + 1
            elif length + 1 <= self.size:
                current, length = current + char, length + 1
                carried, carried_length = carried + char, carried_length + 1
            else:
                chunks.append(current)
                current, length = carried + char, carried_length + 1
                carried, carried_length = "", 0
        if current:
            chunks.append(current)
        return chunks


def _splitter(mode: str, rules: dict[str, Any], key: str = "segmentation") -> CharacterSplitter:
    separator, size, overlap = _segmentation(rules, key)
    if mode in ("custom", "hierarchical"):
        return CharacterSplitter(size, overlap, separator)
    _, size, overlap = _segmentation(AUTOMATIC_RULES)
    return CharacterSplitter(size, overlap)


def split_text(text: str, mode: str, rules: dict[str, Any] | None) -> list[tuple[str, list[str]]]:
    """
    Split a document into chunks according to its process rule, as Dify does.

    :return: ``(chunk, child_chunks)`` pairs; child chunks are only produced in ``hierarchical`` mode.
    """
    effective = rules_for(mode, rules)
    text = _preprocess(text, effective)
    if not text.strip():
        return []
    if mode == "hierarchical":
        if effective.get("parent_mode") == "full-doc":
            parents = [text.strip()]
        else:
            parents = _splitter(mode, effective).split(text)
        children = _splitter(mode, effective, "subchunk_segmentation")
        return [(parent, children.split(parent)) for parent in parents]
    return [(chunk, []) for chunk in _splitter(mode, effective).split(text)]


def split_children(content: str, rules: dict[str, Any] | None) -> list[str]:
    """Child chunks of one parent chunk (hierarchical mode)."""
    return _splitter("hierarchical", rules or {}, "subchunk_segmentation").split(content)


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
