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


def _operator_thread() -> None:
    """Airflow 2.11 checks "execute called outside a task runner" through a thread-local that only a thread which
    ran a task has set up; set it up in this thread (Airflow 3 has no such check)."""
    try:
        from airflow.models.baseoperator import ExecutorSafeguard
    except ImportError:
        return
    sentinel = getattr(ExecutorSafeguard, "_sentinel", None)
    if sentinel is not None and not hasattr(sentinel, "callers"):
        sentinel.callers = {}


def run_together(tasks: list[Any]) -> list[Any]:
    """Run callables on threads released at the same moment; return their results (or raise the first error)."""
    barrier = threading.Barrier(len(tasks))
    results: list[Any] = [None] * len(tasks)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        _operator_thread()
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
        before = dify.documents(dataset_id)
        surplus = {doc["id"] for doc in before if doc["name"].startswith("doc-gone-")} | {
            doc["id"] for doc in before if doc["name"] in survivors and doc["id"] != survivors[doc["name"]]
        }
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
        assert deleted_ids(dify) == surplus, f"round {seed}: deleted other than the extra copies and leftovers"


def test_documents_another_run_re_indexes_are_written_within_the_task(dify_fast_retries: Any) -> None:
    """'Document is not available' (another run re-queued it) is waited out, not a failure."""
    dify = dify_fast_retries
    dataset_id = dify.create_dataset("re-indexed")["id"]
    run_sync(dataset_id, rows(10))
    assert dify.wait_for_indexing()
    ids = assert_exact(dify, dataset_id, rows(10))
    dify.configure(indexing_seconds=0.15)
    dify.reset_counters()
    writer = dify.write_between_pages(dataset_id, reindex=4, delete_prefix="doc-", seed=7)
    changed = rows(10, "v2")
    manifest = run_sync(dataset_id, changed)
    assert len(writer.reindexed) == 4
    assert manifest["counts"]["updated"] == 10 and manifest["counts"]["failed"] == 0
    assert dify.count("POST", "/datasets/{dataset_id}/documents/{document_id}/update-by-text", status=400) >= 1
    assert dify.wait_for_indexing()
    assert assert_exact(dify, dataset_id, changed) == ids


def test_a_document_that_vanished_is_dropped_from_its_metadata_batch(dify_fast_retries: Any) -> None:
    dify = dify_fast_retries
    dataset_id = dify.create_dataset("vanished")["id"]
    records = [{**row, "tier": "a"} for row in rows(6)]
    run_sync(dataset_id, records, metadata_fields=["tier"])
    assert dify.wait_for_indexing()
    ids = assert_exact(dify, dataset_id, records)
    dify.reset_counters()
    # Right after the listing (one page), someone deletes doc-3.txt: the plan still writes its metadata.
    writer = dify.write_between_pages(dataset_id, delete=1, delete_prefix="doc-3.txt")
    retiered = [{**row, "tier": "b"} for row in records]
    manifest = run_sync(dataset_id, retiered, metadata_fields=["tier"])
    assert writer.deleted == [ids["doc-3.txt"]]
    assert manifest["counts"]["failed"] == 0 and manifest["counts"]["updated"] == 6
    assert dify.count("POST", "/datasets/{dataset_id}/documents/metadata", status=400) == 1
    assert dify.count("POST", "/datasets/{dataset_id}/document/create-by-text") == 1  # doc-3 written again
    assert dify.wait_for_indexing()
    now = assert_exact(dify, dataset_id, retiered)
    assert {name: id_ for name, id_ in now.items() if name != "doc-3.txt"} == {
        name: id_ for name, id_ in ids.items() if name != "doc-3.txt"
    }
    assert {metadata_values(doc)["tier"] for doc in dify.documents(dataset_id)} == {"b"}


def test_a_knowledge_base_deleted_mid_run_fails_the_task_at_once(dify_fast_retries: Any) -> None:
    from airflow_provider_dify.exceptions import DifyDatasetNotFoundError

    dify = dify_fast_retries
    dataset = dify.create_dataset("deleted-mid-run")
    dify.delete_dataset_after(
        dataset["id"], requests=5, method="POST", route="/datasets/{dataset_id}/document/create-by-text"
    )
    with pytest.raises(DifyDatasetNotFoundError, match="'deleted-mid-run'") as raised:
        run_sync(dataset["id"], rows(200), max_workers=4)
    assert raised.value.dataset_id == dataset["id"] and raised.value.status == 404
    assert dify.find_dataset("deleted-mid-run") is None
    # Only the requests already on their way when it vanished were sent (4 workers), not the other 195. The
    # emulator records calls as they end, so one sent before the delete may be recorded after a 404.
    calls = dify.calls
    creates = [call for call in calls if call.path.endswith("/document/create-by-text")]
    assert 5 <= len(creates) <= 5 + 4
    first_refusal = next(index for index, call in enumerate(calls) if call.status == 404)
    # After the first 404, only those already on their way: refused too, or creates the server took first.
    after = calls[first_refusal + 1 :]
    assert all(call.status == 404 or call.path.endswith("/document/create-by-text") for call in after)


@pytest.mark.dify_emulator(ignore_paging=True)
def test_a_server_that_ignores_paging_is_read_completely_once(dify_emulator: Any) -> None:
    from airflow_provider_dify.hooks.dify import DifyHook

    dify = dify_emulator
    dataset_id = dify.create_dataset("old-server")["id"]
    for number in range(150):
        dify.create_document(dataset_id, f"doc-{number}", f"text {number}", wait=False)
    dify.complete_indexing()
    holder = dify.create_document(dataset_id, "holder", "header")
    hook = DifyHook()
    hook.add_segments(dataset_id, holder["id"], [{"content": f"chunk {n}"} for n in range(250)])
    dify.reset_counters()
    assert len({doc["id"] for doc in hook.iter_documents(dataset_id)}) == 151
    assert len([seg["id"] for seg in hook.iter_segments(dataset_id, holder["id"])]) == 251  # with the header chunk
    assert dify.count("GET") == 2


def test_scope_members_renamed_or_unscoped_by_hand(dify_emulator: Any) -> None:
    """A member renamed by hand is still the scope's (its scope value), so it is deleted, not orphaned; one whose
    scope value was removed is still the scope's by its name prefix, so it gets its scope value back."""
    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators.sync._document_sync import SCOPE_FIELD

    dify = dify_emulator
    dataset_id = dify.create_dataset("hand-edits")["id"]
    records = rows(4)
    run_sync(dataset_id, records)
    assert dify.wait_for_indexing()
    ids = assert_exact(dify, dataset_id, records)
    hook = DifyHook()
    hook.update_document_by_text(dataset_id, ids["doc-1.txt"], name="renamed by a colleague")
    scope_field = next(f for f in hook.list_metadata_fields(dataset_id)["doc_metadata"] if f["name"] == SCOPE_FIELD)
    hook.delete_metadata_field(dataset_id, scope_field["id"])  # every document loses its scope value
    dify.create_document(dataset_id, "doc-9.txt", "unscoped leftover")
    assert dify.wait_for_indexing()
    manifest = run_sync(dataset_id, records)
    assert {entry["name"] for entry in manifest["deleted"]} == {"doc-9.txt"}
    # The renamed one lost its scope value with the field, and its name left the prefix: no run owns it.
    assert manifest["counts"]["created"] == 1
    assert dify.wait_for_indexing()
    assert_exact(dify, dataset_id, records)
    assert {scope_of_doc(doc) for doc in dify.documents(dataset_id) if doc["name"].startswith("doc-")} == {"overlap"}
    # Renamed while its scope value is there: deleted by the next run (its text lives in doc-2.txt too).
    current = assert_exact(dify, dataset_id, records)
    hook.update_document_by_text(dataset_id, current["doc-2.txt"], name="doc two, renamed")
    assert dify.wait_for_indexing()
    manifest = run_sync(dataset_id, records)
    assert {entry["name"] for entry in manifest["deleted"]} == {"doc two, renamed"}
    assert manifest["counts"]["created"] == 1
    assert "doc two, renamed" not in stored(dify, dataset_id)


def scope_of_doc(document: dict[str, Any]) -> Any:
    from airflow_provider_dify.operators.sync._document_sync import scope_of

    return scope_of(document)


def test_an_unchanged_re_run_reads_the_list_and_writes_nothing(dify_emulator: Any) -> None:
    """The cost guard on a small scale: 250 unchanged documents = 1 dataset read + 3 list pages, 0 writes."""
    dify = dify_emulator
    dataset_id = dify.create_dataset("rerun-cost")["id"]
    records = rows(250)
    run_sync(dataset_id, records)
    assert dify.wait_for_indexing()
    dify.reset_counters()
    manifest = run_sync(dataset_id, records)
    assert manifest["counts"]["unchanged"] == 250
    assert dify.write_count() == 0
    assert dify.count("GET", "/datasets/{dataset_id}") == 1
    assert dify.count("GET", "/datasets/{dataset_id}/documents") == 3
    assert len(dify.calls) == 4


def test_a_first_sync_reads_the_metadata_fields_once_before_it_writes(dify_emulator: Any) -> None:
    """The reads before the first create are round trips every document waits for: each is made once."""
    dify = dify_emulator
    dataset_id = dify.create_dataset("first-run-cost")["id"]
    dify.reset_counters()
    manifest = run_sync(dataset_id, rows(3))
    assert manifest["counts"]["created"] == 3
    before_writes = [(call.method, call.route) for call in dify.calls[: [c.method for c in dify.calls].index("POST")]]
    assert sorted(before_writes) == sorted(
        [
            ("GET", "/datasets/{dataset_id}"),
            ("GET", "/datasets/{dataset_id}/documents"),
            ("GET", "/datasets/{dataset_id}/metadata"),
        ]
    )
    assert dify.count("GET", "/datasets/{dataset_id}/metadata") == 1
    assert dify.count("POST", "/datasets/{dataset_id}/metadata") == 2  # the content hash and scope fields, once each


def test_chunks_added_and_deleted_between_list_pages_are_listed_once(dify_emulator: Any) -> None:
    """The chunk list pages by position: adds land at the end, deletes shift later pages up."""
    from airflow_provider_dify.hooks.dify import DifyHook

    dify = dify_emulator
    dataset_id = dify.create_dataset("chunk-pages")["id"]
    holder = dify.create_document(dataset_id, "holder", "header")
    hook = DifyHook()
    hook.add_segments(dataset_id, holder["id"], [{"content": f"other-{n} early"} for n in range(5)])
    hook.add_segments(dataset_id, holder["id"], [{"content": f"record {n}"} for n in range(150)])
    for seed in range(ROUNDS):
        kept = {seg["id"] for seg in dify.segments(dataset_id, holder["id"]) if seg["content"].startswith("record")}
        writer = dify.write_between_pages(
            dataset_id, document_id=holder["id"], create=2, delete=1, delete_prefix="other-", seed=seed
        )
        listed = [seg["id"] for seg in hook.iter_segments(dataset_id, holder["id"])]
        assert len(listed) == len(set(listed))
        assert kept <= set(listed)  # none of the untouched chunks hidden by the delete
        assert set(writer.created) <= set(listed)
        assert len(writer.deleted) == 1


def test_a_knowledge_base_deleted_during_a_chunk_sync_fails_it_at_once(dify_fast_retries: Any) -> None:
    from airflow_provider_dify.exceptions import DifyDatasetNotFoundError
    from airflow_provider_dify.operators.sync import DifySyncChunksOperator

    dify = dify_fast_retries
    dataset_id = dify.create_dataset("chunks-deleted-mid-run")["id"]
    add = "/datasets/{dataset_id}/documents/{document_id}/segments"
    dify.delete_dataset_after(dataset_id, requests=3, method="POST", route=add)
    operator = DifySyncChunksOperator(
        task_id="chunks",
        dataset_id=dataset_id,
        document_name="holder",
        records=[{"id": number, "t": f"record {number}"} for number in range(300)],
        key_field="id",
        text_template="{{ t }}",
        batch_size=10,
        indexing_technique="economy",
        poll_interval=0.05,
    )
    with pytest.raises(DifyDatasetNotFoundError, match="'chunks-deleted-mid-run'"):
        operator.execute(minimal_context())
    calls = dify.calls
    adds = [index for index, call in enumerate(calls) if call.method == "POST" and call.route == add]
    assert len(calls) - adds[2] - 1 <= operator.max_workers  # only the adds already on their way; 27 never sent


def _stale_plan(dify: Any, dataset_id: str, records: list[dict[str, Any]]) -> tuple[Any, Any, dict[str, str]]:
    """A plan made from a listing read now, to be carried out after the knowledge base changed."""
    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators.sync._document_sync import DocumentSync, needed_fields, plan_documents
    from airflow_provider_dify.operators.sync._records import RecordRenderer, render_all

    hook = DifyHook()
    dataset = hook.get_dataset(dataset_id)
    rendered, failures = render_all(
        RecordRenderer(key_field="id", name_prefix="doc-", text_template="{{ t }}"), records
    )
    assert failures == []
    options = {"process_rule": None, "indexing_technique": "economy", "doc_form": None}
    hashes = {record.name: record.content_hash({"process_rule": {"mode": "automatic"}}) for record in rendered}
    listed = list(hook.iter_documents(dataset_id))
    plan = plan_documents(rendered, hashes, listed, scope="overlap", name_prefix="doc-", delete_missing=True)
    fields = needed_fields(hook, dataset_id, rendered, scope="overlap", scope_field="airflow_sync_scope")
    sync = DocumentSync(hook, dataset, options=options, scope="overlap", name_prefix="doc-")
    return plan, lambda: sync.run(plan, hashes, fields), hashes


def test_a_copy_is_not_deleted_once_the_survivor_is_gone(dify_emulator: Any) -> None:
    """Two runs never delete different copies and lose both: the survivor is looked up again before a delete."""
    from airflow_provider_dify.hooks.dify import DifyHook

    dify = dify_emulator
    dataset_id = dify.create_dataset("copies")["id"]
    records = rows(2)
    run_sync(dataset_id, records)
    assert dify.wait_for_indexing()
    ids = assert_exact(dify, dataset_id, records)
    path = dify_tmp("doc-1.txt", "record 1 v1")
    DifyHook().create_document_by_file(
        dataset_id, path, duplicate=False, indexing_technique="economy", process_rule={"mode": "automatic"}
    )
    assert dify.wait_for_indexing()
    plan, carry_out, _ = _stale_plan(dify, dataset_id, records)
    [copy] = plan.delete
    assert copy["id"] != ids["doc-1.txt"]
    DifyHook().delete_document(dataset_id, ids["doc-1.txt"])  # another run (or a colleague) removed the survivor
    result = carry_out()
    assert result.deleted == [] and result.failed == []
    assert [doc["id"] for doc in stored(dify, dataset_id)["doc-1.txt"]] == [copy["id"]]  # the name still has one


def test_a_document_that_left_the_scope_is_not_deleted(dify_emulator: Any) -> None:
    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators.sync._document_sync import SCOPE_FIELD

    dify = dify_emulator
    dataset_id = dify.create_dataset("left-scope")["id"]
    run_sync(dataset_id, rows(3))
    assert dify.wait_for_indexing()
    ids = assert_exact(dify, dataset_id, rows(3))
    plan, carry_out, _ = _stale_plan(dify, dataset_id, rows(2))
    assert [doc["name"] for doc in plan.delete] == ["doc-3.txt"]
    hook = DifyHook()
    field = next(f for f in hook.list_metadata_fields(dataset_id)["doc_metadata"] if f["name"] == SCOPE_FIELD)
    operation = {"document_id": ids["doc-3.txt"], "metadata_list": [{**field, "value": "someone-else"}]}
    hook.update_documents_metadata(dataset_id, [{**operation, "partial_update": True}])
    result = carry_out()
    assert result.deleted == []
    assert "doc-3.txt" in stored(dify, dataset_id)
