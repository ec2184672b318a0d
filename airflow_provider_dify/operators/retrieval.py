"""The operator that searches a Dify knowledge base."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.operators._base import (
    DifyBaseOperator,
    bad_arguments_fail_the_task,
    check_dataset_and_document,
    check_number,
    check_string,
    native_value,
    skip_check,
)
from airflow_provider_dify.operators._content import HASH_FIELD, metadata_values
from airflow_provider_dify.operators._documents import (
    resolve_dataset,
)
from airflow_provider_dify.operators.datasets import check_retrieval_model

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: Dify accepts queries of at most this many characters.
MAX_QUERY = 250
LOGICAL_OPERATORS: tuple[str, ...] = ("and", "or")
#: Comparison operators of metadata filtering conditions (strings, numbers, times).
COMPARISON_OPERATORS: tuple[str, ...] = (
    "contains",
    "not contains",
    "start with",
    "end with",
    "is",
    "is not",
    "empty",
    "not empty",
    "in",
    "not in",
    "=",
    "≠",
    ">",
    "<",
    "≥",
    "≤",
    "before",
    "after",
)
#: Operators that take no value.
VALUELESS_OPERATORS: tuple[str, ...] = ("empty", "not empty")


def check_metadata_filter(value: Any, argument: str = "metadata_filter") -> dict[str, Any] | None:
    """
    Dify's ``metadata_filtering_conditions``: ``{"logical_operator": "and"|"or", "conditions": [...]}``, or
    just the list of conditions (joined with ``and``). Each condition is ``{"name", "comparison_operator",
    "value"}``.
    """
    value = native_value(value, argument)
    if value is None:
        return None
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        value = {"logical_operator": "and", "conditions": list(value)}
    if not isinstance(value, Mapping):
        raise ValueError(f"{argument}: pass a list of conditions or a dict with 'conditions', got {value!r}.")
    logical = value.get("logical_operator", "and")
    if logical not in LOGICAL_OPERATORS:
        raise ValueError(f"{argument}['logical_operator']: must be 'and' or 'or', got {logical!r}.")
    conditions = value.get("conditions")
    if not isinstance(conditions, Sequence) or isinstance(conditions, (str, bytes)) or not conditions:
        raise ValueError(f"{argument}['conditions']: pass a non-empty list of conditions.")
    checked = []
    for index, condition in enumerate(conditions):
        where = f"{argument}['conditions'][{index}]"
        if not isinstance(condition, Mapping):
            raise ValueError(f"{where}: must be a dict with name, comparison_operator and value.")
        check_string(condition.get("name"), f"{where}['name']")
        operator = condition.get("comparison_operator")
        if operator not in COMPARISON_OPERATORS:
            raise ValueError(
                f"{where}['comparison_operator']: {operator!r} is not one of {', '.join(COMPARISON_OPERATORS)}."
            )
        if operator not in VALUELESS_OPERATORS and condition.get("value") is None:
            raise ValueError(f"{where}['value']: the operator {operator!r} needs a value.")
        checked.append(dict(condition))
    return {"logical_operator": logical, "conditions": checked}


def compact_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """One retrieval hit, kept small: ids, document name, content, score, metadata (child chunks when any)."""
    segment = record.get("segment") or {}
    document = segment.get("document") or {}
    raw_metadata = document.get("doc_metadata")
    if isinstance(raw_metadata, Mapping):
        metadata = dict(raw_metadata)
    else:
        metadata = metadata_values({"doc_metadata": raw_metadata})
    metadata.pop(HASH_FIELD, None)
    compact: dict[str, Any] = {
        "segment_id": segment.get("id"),
        "document_id": segment.get("document_id") or document.get("id"),
        "document_name": document.get("name"),
        "content": segment.get("content"),
        "score": record.get("score"),
        "metadata": metadata,
    }
    if segment.get("answer"):
        compact["answer"] = segment["answer"]
    children = record.get("child_chunks") or []
    if children:
        compact["child_chunks"] = [{"content": child.get("content"), "score": child.get("score")} for child in children]
    return compact


class DifyRetrieveOperator(DifyBaseOperator):
    """
    Search a knowledge base and return the hits.

    Without ``retrieval_model`` the search suits the knowledge base: keyword search on an ``economy`` one
    (Dify's own default, semantic search, fails there), semantic search otherwise, with ``top_k`` hits. A
    partial ``retrieval_model`` is completed with those defaults. ``metadata_filter`` keeps only documents
    whose metadata match.

    Returns (XCom) ``{dataset_id, dataset_name, query, search_method, records, console_url}``; each record is
    ``{segment_id, document_id, document_name, content, score, metadata}`` (plus ``answer`` and
    ``child_chunks`` when the document has them). Keyword-search scores are 0.

    :param query: what to search for (at most 250 characters).
    :param dataset_id: the knowledge base's id (or give ``dataset_name``).
    :param dataset_name: the knowledge base's exact name (or give ``dataset_id``).
    :param retrieval_model: Dify's retrieval settings (``search_method``, ``top_k``, ``reranking_enable``,
        ``score_threshold_enabled``, ``score_threshold``...); missing keys take the defaults above.
    :param top_k: hits wanted when ``retrieval_model`` does not say (default 3).
    :param metadata_filter: a list of conditions ``{"name", "comparison_operator", "value"}`` (all must match),
        or ``{"logical_operator": "and"|"or", "conditions": [...]}``.
    :param dify_conn_id: the ``dify`` connection.
    """

    template_fields: Sequence[str] = (
        "dataset_id",
        "dataset_name",
        "query",
        "retrieval_model",
        "top_k",
        "metadata_filter",
        "dify_conn_id",
    )

    def __init__(
        self,
        *,
        query: str,
        dataset_id: str | None = None,
        dataset_name: str | None = None,
        retrieval_model: dict[str, Any] | None = None,
        top_k: int = 3,
        metadata_filter: list[dict[str, Any]] | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.query = query
        self.dataset_id = dataset_id
        self.dataset_name = dataset_name
        self.retrieval_model = retrieval_model
        self.top_k = top_k
        self.metadata_filter = metadata_filter
        self._check(build=True)

    def _check(self, *, build: bool) -> dict[str, Any]:
        check_dataset_and_document(self, build=build, document=False)
        checked: dict[str, Any] = {}
        if not skip_check(self.query, build):
            checked["query"] = check_string(self.query, "query", max_length=MAX_QUERY, text=True)
        if not skip_check(self.retrieval_model, build):
            checked["retrieval_model"] = check_retrieval_model(self.retrieval_model)
        if not skip_check(self.top_k, build):
            top_k = check_number(self.top_k, "top_k", minimum=1)
            if top_k is None or int(top_k) != top_k:
                raise ValueError(f"top_k: must be a whole number >= 1, got {self.top_k!r}.")
            checked["top_k"] = int(top_k)
        if not skip_check(self.metadata_filter, build):
            checked["metadata_filter"] = check_metadata_filter(self.metadata_filter)
        return checked

    def _retrieval_model(self, dataset: Mapping[str, Any], checked: Mapping[str, Any]) -> dict[str, Any]:
        from airflow_provider_dify.hooks.dify import default_retrieval_model

        model = {**default_retrieval_model(dataset, top_k=checked["top_k"]), **(checked.get("retrieval_model") or {})}
        if dataset.get("indexing_technique") == "economy" and model["search_method"] != "keyword_search":
            raise ValueError(
                f"retrieval_model['search_method']: knowledge base {dataset.get('name')!r} is an economy one and"
                f" supports only 'keyword_search', not {model['search_method']!r}."
            )
        if checked.get("metadata_filter"):
            model["metadata_filtering_conditions"] = checked["metadata_filter"]
        return model

    def execute(self, context: Context) -> dict[str, Any]:
        """Search the knowledge base; return the compact records."""
        with bad_arguments_fail_the_task():
            checked = self._check(build=False)
        hook = self.hook
        dataset = resolve_dataset(hook, dataset_id=self.dataset_id, dataset_name=self.dataset_name)
        dataset_id = str(dataset["id"])
        with bad_arguments_fail_the_task():
            model = self._retrieval_model(dataset, checked)
        url = self.push_console_url(context, dataset_id)
        answer = hook.retrieve(dataset_id, checked["query"], retrieval_model=model)
        records = [compact_record(record) for record in (answer or {}).get("records") or []]
        self.log.info("%d record(s) for the query in knowledge base %r", len(records), dataset.get("name"))
        return {
            "dataset_id": dataset_id,
            "dataset_name": dataset.get("name"),
            "query": checked["query"],
            "search_method": model["search_method"],
            "records": records,
            "console_url": url,
        }
