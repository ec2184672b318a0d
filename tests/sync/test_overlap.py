"""Document syncs while other runs and other writers change the knowledge base: exact final state, every time.

Each test asserts what the emulator's own store holds at the end (every wanted document exactly once, none
deleted and re-created) and the requests that were made. The two-writer cases run 20 seeded rounds each.
"""

from __future__ import annotations

import functools
import random
import threading
from typing import Any

import pytest

from airflow_provider_dify.operators._content import HASH_FIELD, metadata_values
from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator
from bench.environment import minimal_context

pytestmark = pytest.mark.dify_emulator(indexing_seconds=0.01, queue_pickup_seconds=0.0, status_change_seconds=0.0)

ROUNDS = 20
DELETE = "/datasets/{dataset_id}/documents/{document_id}"


def rows(count: int, version: str = "v1", start: int = 1) -> list[dict[str, Any]]:
    return [{"id": f"{number}.txt", "t": f"record {number} {version}"} for number in range(start, start + count)]


def sync(dataset_id: str, records: list[dict[str, Any]], **operator: Any) -> DifySyncDocumentsOperator:
    settings = {
        "key_field": "id",
        "name_prefix": "doc-",
        "text_template": "{{ t }}",
        "scope": "overlap",
        "delete_missing": True,
        "indexing_technique": "economy",
        **operator,
    }
    return DifySyncDocumentsOperator(task_id="sync", dataset_id=dataset_id, records=records, **settings)


def run_sync(dataset_id: str, records: list[dict[str, Any]], **operator: Any) -> dict[str, Any]:
    """Execute the sync as a task would (outside a DAG run)."""
    return sync(dataset_id, records, **operator).execute(minimal_context())


def wanted_names(records: list[dict[str, Any]]) -> set[str]:
    return {f"doc-{row['id']}" for row in records}


def stored(dify: Any, dataset_id: str) -> dict[str, list[dict[str, Any]]]:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for document in dify.documents(dataset_id):
        by_name.setdefault(document["name"], []).append(document)
    return by_name


def assert_exact(dify: Any, dataset_id: str, records: list[dict[str, Any]]) -> dict[str, str]:
    """Every record is exactly one document with its text and hash; nothing else of the scope is left."""
    by_name = stored(dify, dataset_id)
    ours = {name: docs for name, docs in by_name.items() if name.startswith("doc-")}
    assert set(ours) == wanted_names(records)
    texts = {f"doc-{row['id']}": row["t"] for row in records}
    for name, documents in ours.items():
        assert len(documents) == 1, f"{name} is {len(documents)} documents"
        assert documents[0]["text"] == texts[name]
        assert metadata_values(documents[0]).get(HASH_FIELD)
    return {name: docs[0]["id"] for name, docs in ours.items()}


def deleted_ids(dify: Any) -> set[str]:
    return {call.path.rsplit("/", 1)[-1] for call in dify.calls if call.method == "DELETE" and call.status == 204}


def test_documents_created_between_list_pages_delete_nothing_wanted(dify_fast_retries: Any) -> None:
    """Dify lists newest first: a create between pages shows one document twice. It is one document."""
    dify = dify_fast_retries
    dataset_id = dify.create_dataset("page-shift-down")["id"]
    records = rows(130)  # two list pages
    assert sync(dataset_id, records).execute(minimal_context())["counts"]["created"] == 130
    assert dify.wait_for_indexing()
    ids = assert_exact(dify, dataset_id, records)
    for seed in range(ROUNDS):
        dify.reset_counters()
        created = random.Random(seed).randint(1, 5)
        writer = dify.write_between_pages(dataset_id, after_page=1, create=created, name_prefix=f"other-{seed}-")
        manifest = sync(dataset_id, records).execute(minimal_context())
        assert len(writer.created) == created
        assert manifest["counts"] == {
            "records": 130,
            "created": 0,
            "updated": 0,
            "unchanged": 130,
            "deleted": 0,
            "failed": 0,
        }
        assert dify.write_count() == 0
        assert assert_exact(dify, dataset_id, records) == ids  # the same documents: none deleted, none re-created


def test_documents_deleted_between_list_pages_hide_nothing_wanted(dify_fast_retries: Any) -> None:
    """A delete by someone else between pages shifts a document out of sight: it is not written again."""
    dify = dify_fast_retries
    dataset_id = dify.create_dataset("page-shift-up")["id"]
    records = rows(120)
    sync(dataset_id, records).execute(minimal_context())
    assert dify.wait_for_indexing()
    ids = assert_exact(dify, dataset_id, records)
    for seed in range(ROUNDS):
        rng = random.Random(seed)
        deletes, creates = rng.randint(1, 3), rng.randint(0, 3)
        for number in range(deletes + 1):  # newest, so on page 1: deleting them moves wanted documents up
            dify.create_document(dataset_id, f"other-{seed}-{number}", f"someone else's notes {number}")
        dify.reset_counters()
        writer = dify.write_between_pages(
            dataset_id,
            after_page=1,
            delete=deletes,
            create=creates,
            delete_prefix="other-",
            name_prefix=f"new-{seed}-",
            seed=seed,
        )
        manifest = sync(dataset_id, records).execute(minimal_context())
        assert len(writer.deleted) == deletes
        assert manifest["counts"]["unchanged"] == 120 and manifest["counts"]["created"] == 0
        assert dify.write_count() == 0, [c for c in dify.calls if c.method != "GET"]
        assert assert_exact(dify, dataset_id, records) == ids


def _seed_scope(dify: Any, hook: Any, dataset_id: str, rng: random.Random, records: list[dict[str, Any]]) -> dict:
    """What earlier runs and colleagues left: old versions, second copies, documents no record wants."""
    from airflow_provider_dify.operators._copies import document_survivor

    for row in records:
        name = f"doc-{row['id']}"
        if rng.random() < 0.4:
            dify.create_document(dataset_id, name, f"{row['t']} (old)")
            if rng.random() < 0.5:  # a true second copy of the name, newer (create-by-file, duplicate=False)
                path = dify_tmp(name, f"{row['t']} (copy)")
                hook.create_document_by_file(
                    dataset_id,
                    path,
                    filename=name,
                    duplicate=False,
                    indexing_technique="economy",
                    process_rule={"mode": "automatic"},
                )
    for number in range(rng.randint(0, 3)):
        dify.create_document(dataset_id, f"doc-gone-{number}.txt", "a record the source no longer has")
    dify.complete_indexing()
    by_name = stored(dify, dataset_id)
    return {name: str(document_survivor(docs)[0]["id"]) for name, docs in by_name.items() if len(docs) > 1}


_TMP: list[Any] = []


def dify_tmp(name: str, text: str) -> str:
    import tempfile
    from pathlib import Path

    directory = Path(tempfile.mkdtemp(prefix="dify-overlap-"))
    _TMP.append(directory)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def run_together(tasks: list[Any]) -> list[Any]:
    """Run callables on threads released at the same moment; return their results (or raise the first error)."""
    barrier = threading.Barrier(len(tasks))
    results: list[Any] = [None] * len(tasks)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        barrier.wait()
        try:
            results[index] = tasks[index]()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(len(tasks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]
    return results


def test_two_document_syncs_on_one_scope_converge_exactly(dify_fast_retries: Any) -> None:
    """Two runs of one export over one scope at once, on seeded leftovers: both succeed, the set is exact."""
    from airflow_provider_dify.hooks.dify import DifyHook

    dify = dify_fast_retries
    hook = DifyHook()
    for seed in range(ROUNDS):
        rng = random.Random(seed)
        dataset_id = dify.create_dataset(f"two-syncs-{seed}")["id"]
        records = rows(rng.randint(6, 12))
        survivors = _seed_scope(dify, hook, dataset_id, rng, records)
        dify.reset_counters()
        manifests = run_together([functools.partial(run_sync, dataset_id, records)] * 2)
        for manifest in manifests:
            assert manifest["counts"]["failed"] == 0, manifest["failed"]
        assert dify.wait_for_indexing()
        ids = assert_exact(dify, dataset_id, records)
        for name, document_id in survivors.items():
            assert ids[name] == document_id, f"round {seed}: {name} lost its oldest copy"
        assert not deleted_ids(dify) & set(ids.values()), f"round {seed}: a wanted document was deleted"
        assert sum(len(m["deleted"]) for m in manifests) == len(deleted_ids(dify))
