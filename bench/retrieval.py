# ruff: noqa: RUF001 - the Chinese rows use full-width punctuation, as Chinese text does
"""
Section "retrieval quality" (issue 13): does the chunk sync change what retrieval finds?

200 product-like rows (SKUs, numbers; English, Chinese and mixed) are written three ways into three economy
knowledge bases of the emulator, whose keyword index is Dify's (jieba TF-IDF, 10 keywords a chunk): by
``DifySyncChunksOperator`` (content-addressed chunks), as the same texts added as plain chunks, and as the
earlier versions wrote them (the text plus a ``[key: <id>]`` line). 60 queries each name one row; the figure
is how often that row's chunk comes first. Then 20 rows change and the sync runs again: the writes per
changed record are counted.
"""

from __future__ import annotations

import time
from typing import Any

from bench.environment import emulator_missing, minimal_context, new_dataset, running_emulator
from bench.report import SectionResult
from bench.sizes import Sizes

TITLE = "8. Retrieval quality: what the chunk sync adds to a chunk"
QUESTION = (
    "Does the chunk sync change what retrieval finds, compared with the same texts added as plain chunks, and"
    " what does a changed record cost?"
)
TEMPLATE = "{{ text }}"
KEYWORD_SEARCH = {"search_method": "keyword_search", "reranking_enable": False, "score_threshold_enabled": False}

_EN = [
    ("Espresso machine", "EM", "tank {b} ml, {c} months warranty"),
    ("Burr grinder", "BG", "hopper {b} g, {a} settings"),
    ("Electric kettle", "KT", "{b} watts, {c} months warranty"),
    ("Cast iron pan", "CP", "weighs {b} g, {a} cm"),
    ("Milk frother", "MF", "jug {b} ml, {a} modes"),
    ("Kitchen scale", "SC", "capacity {b} g, {c} months warranty"),
    ("Pour-over dripper", "PD", "serves {b} cl, {a} holes"),
]
_ZH = [
    ("咖啡机", "CM", "压力{a}巴，水箱 {b} 毫升，保修{c}个月，运往欧盟需要七天"),
    ("磨豆机", "GR", "研磨档位{a}个，豆仓 {b} 克，保修{c}个月"),
    ("电热水壶", "EK", "容量{a}升，功率 {b} 瓦，保修{c}个月"),
    ("铸铁锅", "IP", "直径{a}厘米，重量 {b} 克，终身保修"),
]
_MIXED = [
    ("Travel mug 旅行杯", "TM", "keeps hot {a} hours, 容量 {b} ml, warranty {c} 个月"),
    ("Tea infuser 茶漏", "TI", "mesh {a} µm, 不锈钢, holds {b} ml, warranty {c} months"),
]
#: The unit word after each row's number ``{b}`` (the number is unique: a permutation of the row ids).
_UNITS = {"EM": "tank", "BG": "hopper", "KT": "watts", "CP": "weighs", "MF": "jug", "SC": "capacity", "PD": "serves"}


def catalogue(count: int = 200) -> list[dict[str, Any]]:
    """
    Product-like rows ``{"id", "sku", "text", "number"}``: 70% English, 20% Chinese, 10% mixed.

    Every SKU is unique, and so is every row's ``number`` (a tank size, a weight...), drawn from the same
    range as the row ids: an id written into the content then competes with the numbers queries ask for.
    """
    rows = []
    for index in range(count):
        kind = index % 10
        family = _ZH if kind in (3, 7) else _MIXED if kind == 5 else _EN
        name, prefix, pattern = family[index % len(family)]
        sku = f"{prefix}-{1000 + index * 37 % 9000:04d}"
        number = 1000 + index * 37 % count
        facts = pattern.format(a=2 + index % 17, b=number, c=6 + index % 30)
        separator = "：" if family is _ZH else ": "
        rows.append(
            {"id": str(1000 + index), "sku": sku, "number": number, "text": f"{name} {sku}{separator}{facts}."}
        )
    return rows


def queries(rows: list[dict[str, Any]], count: int = 60) -> list[tuple[str, str]]:
    """
    ``(query, id of the row it names)`` for every ``len / count``-th row: its SKU ("key facts about EM-1037",
    "CM-1111 的保修") or its number ("tank of 1148").
    """
    step = max(1, len(rows) // count)
    out = []
    for index, row in enumerate(rows[::step][:count]):
        prefix = row["sku"].split("-")[0]
        chinese = any("\u4e00" <= char <= "\u9fff" for char in row["text"])
        if index % 2 and prefix in _UNITS:
            query = f"{_UNITS[prefix]} of {row['number']}"
        elif chinese:
            query = f"{row['sku']} 的保修" if index % 4 else f"{row['sku']} 多少钱"
        else:
            query = f"key facts about {row['sku']}" if index % 4 else f"{row['sku']} warranty"
        out.append((query, row["id"]))
    return out


def first_hits(hook: Any, dataset_id: str, asked: list[tuple[str, str]], text_of: dict[str, str]) -> dict[str, Any]:
    """How often the named row's chunk comes first, and which hits' contents are not a row's text."""
    model = {**KEYWORD_SEARCH, "top_k": 3}
    right = 0
    foreign: list[str] = []
    for query, row_id in asked:
        found = hook.retrieve(dataset_id, query, retrieval_model=model).get("records") or []
        contents = [str((hit.get("segment") or {}).get("content")) for hit in found]
        right += bool(contents) and contents[0].startswith(text_of[row_id])
        foreign += [content for content in contents if content not in text_of.values()]
    return {"right_first": right, "queries": len(asked), "foreign_contents": foreign}


def load_plain(hook: Any, dataset_id: str, contents: list[str]) -> str:
    """A document holding ``contents`` as plain chunks (added 100 a request); returns its id."""

    document = hook.create_document_by_text(
        dataset_id, "plain", "", indexing_technique="economy", process_rule={"mode": "automatic"}
    )["document"]
    _wait_completed(hook, dataset_id, document["id"])
    for start in range(0, len(contents), 100):
        hook.add_segments(dataset_id, document["id"], [{"content": text} for text in contents[start : start + 100]])
    return document["id"]


def _wait_completed(hook: Any, dataset_id: str, document_id: str) -> None:
    deadline = time.monotonic() + 30
    while hook.get_document(dataset_id, document_id).get("indexing_status") != "completed":
        if time.monotonic() > deadline:
            raise RuntimeError("the plain document was not indexed in 30 s")
        time.sleep(0.02)


def sync_operator(dataset_id: str, rows: list[dict[str, Any]], **options: Any) -> Any:
    """The chunk sync of the rows (key: the row id, text: the row's text)."""
    from airflow_provider_dify.operators.sync import DifySyncChunksOperator

    return DifySyncChunksOperator(
        task_id="sync_catalogue",
        dataset_id=dataset_id,
        records=rows,
        key_field="id",
        text_template=TEMPLATE,
        document_name="catalogue",
        indexing_technique="economy",
        poll_interval=0.05,
        **options,
    )


def measure(count: int = 200, asked: int = 60, changed: int = 20) -> dict[str, Any]:
    """Run the three loads and the change; return the figures."""
    from airflow_provider_dify.hooks.dify import DifyHook

    rows = catalogue(count)
    text_of = {row["id"]: row["text"] for row in rows}
    questions = queries(rows, asked)
    with running_emulator(indexing_seconds=0.01, queue_pickup_seconds=0) as dify:
        hook = DifyHook()
        synced, plain, keyed = (new_dataset(hook, f"bench-rq-{name}") for name in ("sync", "plain", "keyed"))
        manifest = sync_operator(synced, rows).execute(minimal_context())
        load_plain(hook, plain, [row["text"] for row in rows])
        load_plain(hook, keyed, [f"{row['text']}\n\n[key: {row['id']}]" for row in rows])
        outcome = {
            "sync": first_hits(hook, synced, questions, text_of),
            "plain": first_hits(hook, plain, questions, text_of),
            "key_lines": first_hits(hook, keyed, questions, text_of),
        }
        chunks = dify.segments(synced, manifest["document_id"])
        keyed_chunks = dify.segments(keyed, _only_document(dify, keyed))
        key_in_keywords = sum(1 for seg in keyed_chunks if "key" in seg["keywords"])
        id_in_keywords = sum(1 for seg, row in zip(keyed_chunks, rows, strict=True) if row["id"] in seg["keywords"])
        new_rows = [
            {**row, "text": row["text"].replace(".", " (revised).", 1)} if index % (count // changed) == 0 else row
            for index, row in enumerate(rows)
        ]
        changed_records = sum(1 for old, new in zip(rows, new_rows, strict=True) if old != new)
        dify.reset_counters()
        second = sync_operator(synced, new_rows).execute(minimal_context())
        writes, chunk_writes = dify.write_count(), second["counts"]["added"] + second["counts"]["deleted"]
        reads = dify.count(method="GET")
        dify.reset_counters()
        sync_operator(synced, new_rows).execute(minimal_context())
        unchanged_writes, unchanged_reads = dify.write_count(), dify.count(method="GET")
        hook.close()
    return {
        **outcome,
        "chunks": len(chunks),
        "chunks_differing_from_text": sum(1 for seg in chunks if seg["content"] not in text_of.values()),
        "key_lines_with_key_keyword": key_in_keywords,
        "key_lines_with_id_keyword": id_in_keywords,
        "changed_records": changed_records,
        "change_requests": writes,
        "change_chunk_writes": chunk_writes,
        "change_reads": reads,
        "unchanged_writes": unchanged_writes,
        "unchanged_reads": unchanged_reads,
        "records": count,
    }


def _only_document(dify: Any, dataset_id: str) -> str:
    [document] = dify.documents(dataset_id)
    return document["id"]


def run(sizes: Sizes) -> SectionResult:
    """The section: 200 rows and 60 queries on every size (a few seconds); fewer on the smoke test's sizes."""
    reason = emulator_missing()
    if reason:
        return SectionResult("retrieval", TITLE, question=QUESTION, not_measured=reason)
    small = sizes.export_records < 100  # the smoke test's sizes
    figures = measure(count=40 if small else 200, asked=12 if small else 60, changed=4 if small else 20)
    asked = figures["sync"]["queries"]
    rows = [
        [
            name,
            f"{figures[key]['right_first']} of {asked}",
            f"{len(figures[key]['foreign_contents'])}",
        ]
        for name, key in (
            ("chunk sync (content-addressed, this version)", "sync"),
            ("the same texts as plain chunks", "plain"),
            ("text + `[key: id]` line (earlier versions)", "key_lines"),
        )
    ]
    changed = figures["changed_records"]
    rows.append(
        [
            f"a change of {changed} records (this version)",
            f"cost: {figures['change_requests'] / changed:.2f} write requests per changed record",
            f"({figures['change_chunk_writes'] / changed:.0f} chunk writes each: a delete and an add)",
        ]
    )
    numbers = {
        "sync_right_first": float(figures["sync"]["right_first"]),
        "plain_right_first": float(figures["plain"]["right_first"]),
        "key_lines_right_first": float(figures["key_lines"]["right_first"]),
        "queries": float(asked),
        "sync_foreign_hits": float(len(figures["sync"]["foreign_contents"])),
        "requests_per_changed_record": figures["change_requests"] / changed,
        "chunk_writes_per_changed_record": figures["change_chunk_writes"] / changed,
        "change_reads": float(figures["change_reads"]),
        "unchanged_writes": float(figures["unchanged_writes"]),
        "unchanged_reads": float(figures["unchanged_reads"]),
    }
    notes = [
        f"{figures['records']} rows (70% English, 20% Chinese, 10% mixed), each with a SKU and numbers;"
        f" {asked} queries naming one row by its SKU or one of its numbers (\"key facts about EM-1037\","
        " \"CM-1111 的保修\", \"tank of 1148\"), keyword search, top 3."
        " The emulator's keyword index is Dify's: jieba's TF-IDF, 10 keywords a chunk, Dify's query matching.",
        f"Key lines: `key` was one of the 10 keywords of {figures['key_lines_with_key_keyword']} of"
        f" {figures['records']} chunks, the row id of {figures['key_lines_with_id_keyword']}: a query with the word"
        " `key` matches all those chunks, one with a number also the row whose id it is, and every hit's content"
        " ends with the key line.",
        f"The synced chunks: {figures['chunks']} chunks, {figures['chunks_differing_from_text']} whose content"
        " differs from its record's text (no header chunk: the holder has no text of its own).",
        f"A change of {changed} records: {figures['change_requests']} write requests ({changed} deletes, the adds"
        f" in one batched request), {figures['change_reads']} read requests (the listing, and the listing that"
        " verifies after writing). Earlier versions made 1 update per changed record, at the retrieval cost above."
        f" An unchanged re-run: {figures['unchanged_writes']} writes, {figures['unchanged_reads']} reads.",
    ]
    return SectionResult(
        "retrieval",
        TITLE,
        question=QUESTION,
        header=["chunks written as", "right chunk first", "hits whose content is not the record's text"],
        rows=rows,
        figures=numbers,
        notes=notes,
        summary=(
            f"right chunk first: {figures['sync']['right_first']}/{asked} synced = plain"
            f" {figures['plain']['right_first']}/{asked} (key lines: {figures['key_lines']['right_first']}/{asked});"
            f" {numbers['requests_per_changed_record']:.2f} requests per changed record"
        ),
    )
