"""The pure reconciliation plans: which documents and chunks a sync writes, and which it leaves alone."""

from __future__ import annotations

from typing import Any

from airflow_provider_dify.operators._content import HASH_FIELD
from airflow_provider_dify.operators.sync._chunk_sync import (
    chunk_content,
    key_of_chunk,
    plan_chunks,
    survivor_order,
    text_of_legacy_chunk,
)
from airflow_provider_dify.operators.sync._document_sync import SCOPE_FIELD, plan_documents
from airflow_provider_dify.operators.sync._records import RecordRenderer, RenderedRecord, render_all


def rendered(rows: list[dict[str, Any]], **renderer: Any) -> list[RenderedRecord]:
    items, failures = render_all(RecordRenderer(**{"key_field": "id", "text_template": "{{ t }}", **renderer}), rows)
    assert failures == []
    return items


def listed(name: str, content_hash: str | None, scope: str | None = None, **fields: Any) -> dict[str, Any]:
    metadata = []
    if content_hash:
        metadata.append({"id": "f1", "name": HASH_FIELD, "type": "string", "value": content_hash})
    if scope:
        metadata.append({"id": "f2", "name": SCOPE_FIELD, "type": "string", "value": scope})
    metadata.append({"id": "built-in", "name": "document_name", "type": "string", "value": name})
    return {"id": f"id-{name}", "name": name, "enabled": True, "archived": False, "doc_metadata": metadata, **fields}


def hashes_of(items: list[RenderedRecord]) -> dict[str, str]:
    return {item.name: item.content_hash() for item in items}


def test_documents_plan_create_update_unchanged_delete() -> None:
    items = rendered([{"id": 1, "t": "one"}, {"id": 2, "t": "two, changed"}, {"id": 3, "t": "three"}], name_prefix="p-")
    old_two = rendered([{"id": 2, "t": "two"}], name_prefix="p-")[0].content_hash()
    documents = [
        listed("p-2", old_two, "s"),
        listed("p-3", items[2].content_hash(), "s"),
        listed("p-9", "sha256:gone", "s"),
        listed("p-8", "sha256:other", "other-scope"),
        listed("unrelated", None),
    ]
    plan = plan_documents(items, hashes_of(items), documents, scope="s", name_prefix="p-", delete_missing=True)
    assert [item.name for item in plan.create] == ["p-1"]
    assert [(item.name, doc["id"]) for item, doc in plan.update] == [("p-2", "id-p-2")]
    assert [item.name for item, _ in plan.unchanged] == ["p-3"]
    assert [doc["name"] for doc in plan.delete] == ["p-9"]  # not the other scope's, not the unscoped one
    assert plan.failures == []


def test_documents_plan_without_delete_missing_deletes_nothing() -> None:
    items = rendered([{"id": 1, "t": "one"}], name_prefix="p-")
    plan = plan_documents(items, hashes_of(items), [listed("p-9", "sha256:x", "s")], scope="s", name_prefix="p-")
    assert plan.delete == [] and [item.name for item in plan.create] == ["p-1"]


def test_documents_plan_scoped_by_name_prefix() -> None:
    items = rendered([{"id": 1, "t": "one"}], name_prefix="a-")
    documents = [listed("a-2", "sha256:x"), listed("b-2", "sha256:x")]
    plan = plan_documents(items, hashes_of(items), documents, scope=None, name_prefix="a-", delete_missing=True)
    assert [doc["name"] for doc in plan.delete] == ["a-2"]


def test_documents_plan_metadata_only_change() -> None:
    items = rendered([{"id": 1, "t": "one", "price": 12.5}], name_prefix="p-", metadata_fields=["price"])
    document = listed("p-1", items[0].content_hash(), "s")
    document["doc_metadata"].append({"id": "f3", "name": "price", "type": "number", "value": "12.5"})
    plan = plan_documents(items, hashes_of(items), [document], scope="s", name_prefix="p-")
    assert len(plan.unchanged) == 1  # "12.5" as listed equals 12.5
    document["doc_metadata"][-1]["value"] = "11.0"
    plan = plan_documents(items, hashes_of(items), [document], scope="s", name_prefix="p-")
    assert len(plan.metadata_only) == 1 and plan.update == []


def test_documents_plan_refuses_a_name_owned_by_another_scope() -> None:
    items = rendered([{"id": 1, "t": "one"}], name_prefix="p-")
    plan = plan_documents(
        items, hashes_of(items), [listed("p-1", "sha256:x", "theirs")], scope="mine", name_prefix="p-"
    )
    assert plan.create == plan.update == [] and "belongs to scope 'theirs'" in plan.failures[0]["error"]


def test_documents_plan_disabled_document_with_new_content_fails_clearly() -> None:
    items = rendered([{"id": 1, "t": "new"}], name_prefix="p-")
    plan = plan_documents(items, hashes_of(items), [listed("p-1", "sha256:old", "s", enabled=False)], scope="s")
    assert plan.update == [] and "disabled in Dify" in plan.failures[0]["error"]


def test_documents_plan_failed_records_are_never_deleted() -> None:
    plan = plan_documents(
        [], {}, [listed("p-1", "sha256:x", "s")], scope="s", name_prefix="p-", delete_missing=True, keep_names=["p-1"]
    )
    assert plan.delete == []


def test_documents_plan_removes_extra_copies_of_a_name() -> None:
    items = rendered([{"id": 1, "t": "one"}], name_prefix="p-")
    oldest = listed("p-1", items[0].content_hash(), "s", created_at=1)
    copy = dict(listed("p-1", None, None, created_at=2), id="copy")
    plan = plan_documents(items, hashes_of(items), [copy, oldest], scope="s", name_prefix="p-", delete_missing=True)
    assert [doc["id"] for doc in plan.delete] == ["copy"] and len(plan.unchanged) == 1


def test_documents_plan_keeps_the_same_copy_whatever_the_listing_order() -> None:
    items = rendered([{"id": 1, "t": "one"}], name_prefix="p-")
    copies = [dict(listed("p-1", None, "s", created_at=5), id=name) for name in ("b", "a", "c")]
    for order in (copies, copies[::-1], copies[1:] + copies[:1]):
        plan = plan_documents(items, hashes_of(items), order, scope="s", name_prefix="p-", delete_missing=True)
        assert sorted(doc["id"] for doc in plan.delete) == ["b", "c"]  # same age: the smaller id survives
        assert [document["id"] for _record, document in plan.update] == ["a"]


def test_documents_plan_takes_a_document_listed_twice_for_one_document() -> None:
    items = rendered([{"id": 1, "t": "one"}], name_prefix="p-")
    document = listed("p-1", items[0].content_hash(), "s", created_at=1)
    plan = plan_documents(items, hashes_of(items), [document, dict(document)], scope="s", delete_missing=True)
    assert plan.delete == [] and len(plan.unchanged) == 1


def test_documents_plan_scope_members_renamed_or_without_scope_value() -> None:
    items = rendered([{"id": 1, "t": "one"}], name_prefix="p-")
    renamed = listed("renamed by hand", "sha256:x", "s")
    unscoped = listed("p-7", "sha256:y", None)
    foreign = listed("p-8", "sha256:z", "other")
    other = listed("notes", None, None)
    plan = plan_documents(
        items, hashes_of(items), [renamed, unscoped, foreign, other], scope="s", name_prefix="p-", delete_missing=True
    )
    assert sorted(doc["name"] for doc in plan.delete) == ["p-7", "renamed by hand"]


def chunk(content: str, position: int, **fields: Any) -> dict[str, Any]:
    return {"id": f"c{position}", "position": position, "content": content, "enabled": True, "created_at": 1, **fields}


def test_a_chunk_is_the_record_s_text_and_nothing_else() -> None:
    [item] = rendered([{"id": "sku-1", "t": "Kettle\n"}], names=False)
    assert chunk_content(item) == "Kettle"
    assert key_of_chunk("Kettle\n\n[key: sku-1]") == "sku-1"  # chunks of earlier versions are still read
    assert text_of_legacy_chunk("Kettle\n\n[key: sku-1]") == "Kettle"
    assert key_of_chunk("no key here") is None


def test_content_addressed_plan() -> None:
    items = rendered([{"id": 1, "t": "one"}, {"id": 2, "t": "two, changed"}, {"id": 3, "t": "three"}], names=False)
    existing = [
        chunk("Products", 1),  # the header
        chunk("two", 2),  # record 2 before its change
        chunk("three", 3, created_at=100),
        chunk("three", 4, created_at=90),  # an older copy: it survives
        chunk("gone", 5),
    ]
    plan = plan_chunks(items, existing, keyed=True, header="Products")
    assert sorted(wanted.content for wanted in plan.add) == ["one", "two, changed"]
    assert plan.update == [] and [wanted.key for wanted in plan.unchanged] == ["3"]
    assert sorted(old["id"] for old in plan.delete) == ["c2", "c3", "c5"]
    assert plan.copies == 1 and plan.kept == 1


def test_copies_survive_by_one_rule_whatever_the_listing_order() -> None:
    items = rendered([{"id": 1, "t": "one"}], names=False)
    copies = [
        chunk("one", 2, id="b", created_at=10),  # same second, same position (two overlapping adds): smaller id
        chunk("one", 2, id="a", created_at=10),  # survives
        chunk("one", 1, id="c", created_at=11),  # a lower position, but younger
        chunk("one", 3, id="0", created_at=10),  # same second, higher position
        chunk("one", 4, id="z", created_at=5, enabled=False),  # disabled: never preferred
    ]
    for order in (copies, copies[::-1], copies[1:] + copies[:1]):
        plan = plan_chunks(items, order, keyed=False, header="")
        assert sorted(old["id"] for old in plan.delete) == ["0", "b", "c", "z"] and plan.copies == 4
        assert survivor_order(order[0]) != survivor_order(order[1])


def test_content_chunk_plan() -> None:
    items = rendered([{"id": 1, "t": "one"}, {"id": 2, "t": "two"}, {"id": 3, "t": "two"}], names=False)
    existing = [chunk("Products: header", 1), chunk("one", 2), chunk("stale", 3)]
    plan = plan_chunks(items, existing, keyed=False, header="Products: header")
    assert [wanted.content for wanted in plan.add] == ["two"]
    assert plan.duplicates == 1
    assert [old["id"] for old in plan.delete] == ["c3"]
    assert len(plan.unchanged) == 1 and plan.kept == 1


def test_chunks_of_earlier_versions_are_rewritten_in_place() -> None:
    items = rendered([{"id": 1, "t": "one"}, {"id": 2, "t": "two, changed"}, {"id": 3, "t": "three"}], names=False)
    existing = [
        chunk("one\n\n[key: 1]", 1),
        chunk("two\n\n[key: 2]", 2),  # changed since: rewritten with the new text
        chunk("three", 3),  # already of the new form
        chunk("three\n\n[key: 3]", 4),  # so this one is a copy
        chunk("gone\n\n[key: 9]", 5),
    ]
    plan = plan_chunks(items, existing, keyed=True, header="")
    assert sorted((wanted.key, old["id"]) for wanted, old in plan.update) == [("1", "c1"), ("2", "c2")]
    assert plan.update[0][0].changes(plan.update[0][1]) == {"content": "one"}
    assert sorted(old["id"] for old in plan.delete) == ["c4", "c5"] and plan.add == []
    unkeyed = plan_chunks(rendered([{"id": 1, "t": "one"}], names=False), existing[:1], keyed=False, header="")
    assert [old["id"] for _, old in unkeyed.update] == ["c1"]  # matched by its text


def test_records_that_failed_to_render_protect_unclaimed_chunks() -> None:
    items = rendered([{"id": 1, "t": "one"}], names=False)
    existing = [chunk("one", 1), chunk("maybe the failed record's", 2), chunk("old\n\n[key: 7]", 3)]
    plan = plan_chunks(items, existing, keyed=True, header="", keep_keys=["5"])
    assert [old["id"] for old in plan.delete] == ["c3"] and plan.kept == 1
    assert plan_chunks(items, existing, keyed=True, header="", keep_keys=["7"]).delete == []


def test_chunk_plan_without_delete_missing_keeps_unknown_chunks() -> None:
    items = rendered([{"id": 1, "t": "one"}], names=False)
    plan = plan_chunks(items, [chunk("stale", 1)], keyed=True, header="h", delete_missing=False)
    assert plan.delete == [] and plan.kept == 1 and len(plan.add) == 1


def test_chunk_plan_compares_user_keywords_only() -> None:
    [item] = rendered([{"id": 1, "t": "one", "k": "alpha,beta"}], names=False, keywords_field="k")
    same = chunk("one", 1, keywords=["beta", "alpha"])
    assert len(plan_chunks([item], [same], keyed=True, header="h").unchanged) == 1
    other = chunk("one", 1, keywords=["one"])
    plan = plan_chunks([item], [other], keyed=True, header="h")
    assert plan.update[0][0].changes(other) == {"content": "one", "keywords": ["alpha", "beta"]}
    [plain] = rendered([{"id": 1, "t": "one"}], names=False)
    assert len(plan_chunks([plain], [other], keyed=True, header="h").unchanged) == 1  # Dify's keywords are its own
