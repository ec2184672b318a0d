"""The operator that runs a knowledge base's knowledge pipeline and waits for the documents it produced."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.hooks.operations import PIPELINE_DATASOURCE_TYPES
from airflow_provider_dify.operators._base import (
    DifyIndexingWaitOperator,
    bad_arguments_fail_the_task,
    check_choice,
    check_dataset_and_document,
    check_mapping,
    native_value,
    skip_check,
)
from airflow_provider_dify.operators._documents import PIPELINE_RUNTIME_MODE, local_file, resolve_dataset
from airflow_provider_dify.operators._lineage import KnowledgeBaseLineageMixin

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_dify.hooks.dify import DifyHook


def datasource_item_name(datasource_type: str, item: Mapping[str, Any]) -> str | None:
    """The name Dify gives the document a datasource item becomes (a file's, page's or crawled page's name)."""
    if datasource_type == "website_crawl":
        return item.get("title")
    if datasource_type == "online_document":
        page = item.get("page") or {}
        return page.get("page_name") if isinstance(page, Mapping) else None
    return item.get("name")


class DifyRunPipelineOperator(KnowledgeBaseLineageMixin, DifyIndexingWaitOperator):
    """
    Run the knowledge pipeline of a ``rag_pipeline`` knowledge base on files or datasource items, then wait
    (in the worker, or deferred to the triggerer) until the documents it produced are indexed.

    A published pipeline run creates one document per item at once, all in one batch, and indexes them in the
    background; this operator waits for that batch through the same trigger as every other wait. Local
    ``files`` are uploaded first (the pipeline file upload) and become ``local_file`` items.

    Re-runs and retries do not produce a document twice: with ``skip_existing`` (the default) an item whose
    document name (a file's name, a page's title) is already in the knowledge base is not run again (its
    document is still waited for), and the hook never repeats a run whose outcome is unknown.

    Returns (XCom) ``{dataset_id, dataset_name, granularity: "documents", counts: {created, unchanged}, batch,
    document_ids, documents, skipped, console_url}`` (plus ``indexing``, the per-document results, with
    ``wait_for_indexing``); ``documents`` are ``{id, name}``; ``skipped`` are the names of items not run again.
    A run that produced documents reports the knowledge base's change as the other writing operators do (an
    asset event, OpenLineage facets).

    :param dataset_id: the knowledge base's id (or give ``dataset_name``).
    :param dataset_name: the knowledge base's exact name (or give ``dataset_id``).
    :param files: local paths (or ``ObjectStoragePath``/URLs) to run the pipeline on, as ``local_file`` items.
    :param datasource_info_list: datasource items to run it on instead, as Dify takes them (``local_file``:
        ``{reference, name}``; ``online_document``: ``{workspace_id, page, credential_id}``; ``website_crawl``:
        ``{url, title}``; ``online_drive``: ``{id, type, bucket, name}``).
    :param datasource_type: the items' type; ``local_file`` with ``files``.
    :param start_node_id: the datasource node to start from; by default the pipeline's only node of
        ``datasource_type`` (see ``DifyHook.list_pipeline_datasource_plugins``).
    :param inputs: the pipeline's input variables.
    :param skip_existing: leave out items whose document already exists (by name).
    :param wait_for_indexing: wait until the produced documents are indexed (default ``True``).
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param indexing_timeout: seconds to wait for the indexing.
    :param poll_interval: seconds between polls of the indexing status.
    :param stall_timeout: seconds without progress before the wait fails (``None``: never).
    :param dify_conn_id: the ``dify`` connection.
    """

    template_fields: Sequence[str] = (
        "dataset_id",
        "dataset_name",
        "files",
        "datasource_info_list",
        "start_node_id",
        "inputs",
        "dify_conn_id",
    )

    def __init__(
        self,
        *,
        dataset_id: str | None = None,
        dataset_name: str | None = None,
        files: Sequence[Any] | str | None = None,
        datasource_info_list: Sequence[Mapping[str, Any]] | str | None = None,
        datasource_type: str = "local_file",
        start_node_id: str | None = None,
        inputs: Mapping[str, Any] | str | None = None,
        skip_existing: bool = True,
        wait_for_indexing: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset_id = dataset_id
        self.dataset_name = dataset_name
        self.files = files
        self.datasource_info_list = datasource_info_list
        self.datasource_type = datasource_type
        self.start_node_id = start_node_id
        self.inputs = inputs
        self.skip_existing = bool(skip_existing)
        self.wait_for_indexing = bool(wait_for_indexing)
        self._check(build=True)
        self.declare_knowledge_base(dataset_name=dataset_name, dataset_id=dataset_id)

    def _check(self, *, build: bool) -> dict[str, Any]:
        check_dataset_and_document(self, build=build, document=False)
        check_choice(self.datasource_type, PIPELINE_DATASOURCE_TYPES, "datasource_type")
        if (self.files is None) == (self.datasource_info_list is None):
            raise ValueError(
                "files or datasource_info_list: pass exactly one of them (files=['/data/report.pdf'] or"
                " datasource_info_list=[{'url': ..., 'title': ...}])."
            )
        if self.files is not None and self.datasource_type != "local_file":
            raise ValueError(
                f"datasource_type: files are local_file items; pass datasource_type='local_file', not"
                f" {self.datasource_type!r}, or give datasource_info_list."
            )
        checked: dict[str, Any] = {}
        if not skip_check(self.inputs, build):
            checked["inputs"] = check_mapping(self.inputs, "inputs") or {}
        for argument in ("files", "datasource_info_list"):
            value = getattr(self, argument)
            if value is None or skip_check(value, build):
                continue
            items = native_value(value, argument)
            if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence) or not items:
                raise ValueError(f"{argument}: pass a non-empty list, got {items!r}.")
            if argument == "datasource_info_list":
                for index, item in enumerate(items):
                    if not isinstance(item, Mapping):
                        raise ValueError(f"{argument}[{index}]: each item is a dict, got {type(item).__name__}.")
                    if self.skip_existing and not datasource_item_name(self.datasource_type, item):
                        raise ValueError(
                            f"{argument}[{index}]: skip_existing needs the name the document gets"
                            f" ({'title' if self.datasource_type == 'website_crawl' else 'name'}); add it or"
                            " pass skip_existing=False."
                        )
            checked[argument] = list(items)
        return checked

    def _start_node(self, hook: DifyHook, dataset_id: str) -> str:
        if self.start_node_id:
            return str(self.start_node_id)
        nodes = [
            node
            for node in hook.list_pipeline_datasource_plugins(dataset_id)
            if node.get("datasource_type") == self.datasource_type
        ]
        if len(nodes) != 1:
            found = ", ".join(f"{n.get('node_id')} ({n.get('title')})" for n in nodes) or "none"
            raise ValueError(
                f"start_node_id: the pipeline has {len(nodes)} {self.datasource_type} datasource node(s) ({found});"
                " pass start_node_id=... to pick one."
            )
        return str(nodes[0]["node_id"])

    def execute(self, context: Context) -> dict[str, Any]:
        """Upload the files, run the pipeline on the items not yet there, and wait for the documents."""
        with bad_arguments_fail_the_task():
            checked = self._check(build=False)
        hook = self.hook
        dataset = resolve_dataset(hook, dataset_id=self.dataset_id, dataset_name=self.dataset_name)
        dataset_id = str(dataset["id"])
        if dataset.get("runtime_mode") != PIPELINE_RUNTIME_MODE:
            from airflow.providers.common.compat.sdk import AirflowFailException

            raise AirflowFailException(
                f"dataset: knowledge base {dataset.get('name')!r} has no knowledge pipeline (runtime_mode"
                f" {dataset.get('runtime_mode')!r}); write its documents with DifyCreateDocumentOperator or"
                " DifySyncDocumentsOperator."
            )
        with bad_arguments_fail_the_task():
            start_node_id = self._start_node(hook, dataset_id)
        existing: dict[str, str] = {}
        if self.skip_existing:
            for document in hook.iter_documents(dataset_id):
                existing.setdefault(str(document.get("name")), str(document["id"]))
        items, skipped = self._items(hook, checked, existing)
        batch: str | None = None
        produced: list[dict[str, Any]] = []
        if items:
            answer = hook.run_pipeline(
                dataset_id,
                inputs=checked.get("inputs") or {},
                datasource_type=self.datasource_type,  # type: ignore[arg-type]
                datasource_info_list=items,
                start_node_id=start_node_id,
            )
            batch = answer.get("batch")
            produced = [{"id": d["id"], "name": d.get("name")} for d in answer.get("documents") or []]
            self.log.info("Pipeline run: batch %s, %d document(s)", batch, len(produced))
        if skipped:
            self.log.info("Already in the knowledge base, not run again: %s", ", ".join(skipped))
        url = self.push_console_url(context, dataset_id)
        manifest: dict[str, Any] = {
            "dataset_id": dataset_id,
            "dataset_name": dataset.get("name"),
            "granularity": "documents",
            "counts": {"created": len(produced), "unchanged": len(skipped)},
            "batch": batch,
            "document_ids": [d["id"] for d in produced],
            "documents": produced,
            "skipped": skipped,
            "console_url": url,
        }
        # Skipped items were run before (an earlier try that failed after the run, or an earlier DAG run): their
        # documents are waited for too, so that a retry returns only once everything the task ran is indexed.
        waited = manifest["document_ids"] + [existing[name] for name in skipped]
        if self.wait_for_indexing and waited:
            manifest["indexing"] = self.wait_until_indexed(
                context,
                dataset_id=dataset_id,
                batch=batch if not skipped else None,
                document_ids=waited,
                manifest=manifest,
            )
        return self.report_knowledge_base(context, manifest)

    def _items(
        self, hook: DifyHook, checked: Mapping[str, Any], existing: Mapping[str, str]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """The datasource items to run (files uploaded first), and the names left out as already there."""
        items: list[dict[str, Any]] = []
        skipped: list[str] = []
        for item in checked.get("datasource_info_list") or []:
            name = datasource_item_name(self.datasource_type, item)
            if name is not None and name in existing:
                skipped.append(name)
            else:
                items.append(dict(item))
        for file in checked.get("files") or []:
            with bad_arguments_fail_the_task(), local_file(file) as (path, filename):
                if filename in existing:
                    skipped.append(filename)
                    continue
                upload = hook.upload_pipeline_file(path, filename=filename)
            items.append({"reference": upload["id"], "name": upload.get("name") or filename})
        return items, skipped

    def execute_complete(
        self, context: Context, event: Mapping[str, Any] | None = None, manifest: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the indexing trigger: return the manifest with the indexing results."""
        return self.report_knowledge_base(context, self.resumed_manifest(context, event, manifest))
