"""Operators that create and delete Dify knowledge bases ("datasets")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.exceptions import DifyConflictError, DifyNotFoundError
from airflow_provider_dify.operators._base import (
    DifyBaseOperator,
    bad_arguments_fail_the_task,
    check_choice,
    check_dataset_and_document,
    check_mapping,
    check_string,
    given,
    skip_check,
)
from airflow_provider_dify.operators._documents import INDEXING_TECHNIQUES
from airflow_provider_dify.operators._lineage import KnowledgeBaseLineageMixin

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

PERMISSIONS: tuple[str, ...] = ("only_me", "all_team_members", "partial_members")
SEARCH_METHODS: tuple[str, ...] = ("semantic_search", "full_text_search", "hybrid_search", "keyword_search")
IF_EXISTS: tuple[str, ...] = ("reuse", "error")
#: Dify's limits for a knowledge base's name and description.
MAX_DATASET_NAME = 40
MAX_DESCRIPTION = 400


def check_retrieval_model(value: Any, argument: str = "retrieval_model") -> dict[str, Any] | None:
    """A retrieval model dict whose ``search_method`` (when given) is one Dify knows."""
    model = check_mapping(value, argument)
    if model is not None and "search_method" in model:
        check_choice(model["search_method"], SEARCH_METHODS, f"{argument}['search_method']")
    return model


def dataset_manifest(dataset: dict[str, Any], action: str, url: str | None) -> dict[str, Any]:
    """What a dataset operator returns: ids, name, settings and the action taken (never documents)."""
    return {
        "dataset_id": dataset.get("id"),
        "dataset_name": dataset.get("name"),
        "action": action,
        "indexing_technique": dataset.get("indexing_technique"),
        "doc_form": dataset.get("doc_form"),
        "console_url": url,
    }


class DifyCreateDatasetOperator(KnowledgeBaseLineageMixin, DifyBaseOperator):
    """
    Create an empty Dify knowledge base, or reuse the one that already has the name.

    Returns (XCom) ``{dataset_id, dataset_name, action, indexing_technique, doc_form, console_url}``, where
    ``action`` is ``created`` or ``reused``. The knowledge base is looked up by name first, so a re-run, a retry
    or a backfill writes nothing when it exists.

    :param name: the knowledge base's name (1-40 characters, unique in the workspace).
    :param description: its description (up to 400 characters).
    :param indexing_technique: ``high_quality`` (embeddings) or ``economy`` (keyword index); ``None`` lets the
        first document decide.
    :param permission: ``only_me`` (Dify's default), ``all_team_members`` or ``partial_members``.
    :param embedding_model: the embedding model (``high_quality``), e.g. ``text-embedding-3-small``.
    :param embedding_model_provider: its provider, e.g. ``langgenius/openai/openai``.
    :param retrieval_model: the default retrieval settings (``search_method``, ``top_k``...).
    :param if_exists: ``reuse`` (default) returns the existing knowledge base of that name; ``error`` fails.
    :param dify_conn_id: the ``dify`` connection.
    """

    template_fields: Sequence[str] = (
        "name",
        "description",
        "indexing_technique",
        "permission",
        "embedding_model",
        "embedding_model_provider",
        "retrieval_model",
        "if_exists",
        "dify_conn_id",
    )
    knowledge_base_name_argument = "name"

    def __init__(
        self,
        *,
        name: str,
        description: str | None = None,
        indexing_technique: str | None = None,
        permission: str | None = None,
        embedding_model: str | None = None,
        embedding_model_provider: str | None = None,
        retrieval_model: dict[str, Any] | None = None,
        if_exists: str = "reuse",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.description = description
        self.indexing_technique = indexing_technique
        self.permission = permission
        self.embedding_model = embedding_model
        self.embedding_model_provider = embedding_model_provider
        self.retrieval_model = retrieval_model
        self.if_exists = if_exists
        self._check(build=True)
        self.declare_knowledge_base(dataset_name=name)

    def _check(self, *, build: bool) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if not skip_check(self.name, build):
            check_string(self.name, "name", max_length=MAX_DATASET_NAME, single_line=True)
        if not skip_check(self.description, build) and self.description is not None:
            if not isinstance(self.description, str) or len(self.description) > MAX_DESCRIPTION:
                raise ValueError(f"description: must be a string of at most {MAX_DESCRIPTION} characters.")
            fields["description"] = self.description
        for argument, allowed in (("indexing_technique", INDEXING_TECHNIQUES), ("permission", PERMISSIONS)):
            value = getattr(self, argument)
            if given(value) and not skip_check(value, build):
                fields[argument] = check_choice(value, allowed, argument)
        if not skip_check(self.if_exists, build) and self.if_exists not in IF_EXISTS:
            raise ValueError(f"if_exists: {self.if_exists!r} is not one of {', '.join(IF_EXISTS)}.")
        if not skip_check(self.retrieval_model, build):
            retrieval_model = check_retrieval_model(self.retrieval_model)
            if retrieval_model:
                fields["retrieval_model"] = retrieval_model
        for argument in ("embedding_model", "embedding_model_provider"):
            value = getattr(self, argument)
            if given(value) and not skip_check(value, build):
                fields[argument] = check_string(value, argument)
        if given(self.embedding_model_provider) and not given(self.embedding_model):
            raise ValueError("embedding_model: Dify needs embedding_model together with embedding_model_provider.")
        return fields

    def execute(self, context: Context) -> dict[str, Any]:
        """Find the knowledge base by name; create it when it does not exist."""
        with bad_arguments_fail_the_task():
            fields = self._check(build=False)
        hook = self.hook
        existing = hook.find_dataset_by_name(self.name)
        action = "reused"
        if existing is None:
            try:
                dataset = hook.create_dataset(self.name, **fields)
                action = "created"
            except DifyConflictError as error:
                # Created by someone else since the lookup, or by an earlier attempt whose answer was lost.
                existing = hook.find_dataset_by_name(self.name)
                if existing is None:
                    raise
                self.log.info("Knowledge base %r appeared meanwhile (%s)", self.name, error.message)
        if existing is not None:
            if self.if_exists == "error":
                raise DifyConflictError(
                    f"name: a knowledge base named {self.name!r} already exists ({existing.get('id')}) and"
                    " if_exists='error'; use if_exists='reuse' to use it.",
                    status=409,
                    code="dataset_name_duplicate",
                )
            dataset = existing
            wanted = fields.get("indexing_technique")
            if wanted and dataset.get("indexing_technique") and wanted != dataset.get("indexing_technique"):
                self.log.warning(
                    "Reusing knowledge base %r, which indexes with %r, not the %r asked for",
                    self.name,
                    dataset.get("indexing_technique"),
                    wanted,
                )
        self.log.info("Knowledge base %r (%s): %s", self.name, dataset.get("id"), action)
        url = self.push_console_url(context, str(dataset["id"]))
        return self.report_knowledge_base(context, dataset_manifest(dataset, action, url))


class DifyDeleteDatasetOperator(KnowledgeBaseLineageMixin, DifyBaseOperator):
    """
    Delete a Dify knowledge base with all its documents, given by id or by name.

    Returns (XCom) ``{dataset_id, dataset_name, action, ...}`` with ``action`` ``deleted`` or ``missing``. A
    knowledge base that does not exist is a success (logged) unless ``ignore_missing=False``, so a re-run
    after a delete succeeds. A knowledge base that apps still use (HTTP 409 ``dataset_in_use``) fails the task
    with a message saying so.

    :param dataset_id: the knowledge base's id (or give ``dataset_name``).
    :param dataset_name: the knowledge base's exact name (or give ``dataset_id``).
    :param ignore_missing: succeed when there is nothing to delete (default); ``False`` fails instead.
    :param dify_conn_id: the ``dify`` connection.
    """

    template_fields: Sequence[str] = ("dataset_id", "dataset_name", "dify_conn_id")

    def __init__(
        self,
        *,
        dataset_id: str | None = None,
        dataset_name: str | None = None,
        ignore_missing: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset_id = dataset_id
        self.dataset_name = dataset_name
        self.ignore_missing = ignore_missing
        self._check(build=True)
        self.declare_knowledge_base(dataset_name=dataset_name, dataset_id=dataset_id)

    def _check(self, *, build: bool) -> None:
        check_dataset_and_document(self, build=build, document=False)

    def _missing(self, what: str) -> dict[str, Any]:
        if not self.ignore_missing:
            raise DifyNotFoundError(f"{what} does not exist (ignore_missing=False).", status=404)
        self.log.info("%s does not exist; nothing to delete", what)
        return dataset_manifest(
            {"id": self.dataset_id if given(self.dataset_id) else None, "name": self.dataset_name}, "missing", None
        )

    def execute(self, context: Context) -> dict[str, Any]:
        """Look the knowledge base up, then delete it."""
        with bad_arguments_fail_the_task():
            self._check(build=False)
        hook = self.hook
        if given(self.dataset_id):
            what = f"Knowledge base {self.dataset_id}"
            try:
                dataset = hook.get_dataset(str(self.dataset_id).strip())
            except DifyNotFoundError:
                return self._missing(what)
        else:
            what = f"Knowledge base {self.dataset_name!r}"
            dataset = hook.find_dataset_by_name(str(self.dataset_name))
            if dataset is None:
                return self._missing(what)
        dataset_id = str(dataset["id"])
        try:
            hook.delete_dataset(dataset_id)
        except DifyNotFoundError:
            return self._missing(what)
        except DifyConflictError as error:
            if error.code == "dataset_in_use" or "in use" in (error.message or "").lower():
                raise DifyConflictError(
                    f"{what} ({dataset_id}) is in use by {dataset.get('app_count') or 'one or more'} Dify app(s);"
                    " remove it from those apps' context, then run the task again.",
                    status=error.status,
                    code=error.code,
                    method=error.method,
                    path=error.path,
                ) from error
            raise
        self.log.info("Deleted knowledge base %r (%s)", dataset.get("name"), dataset_id)
        return self.report_knowledge_base(context, dataset_manifest(dataset, "deleted", None))
