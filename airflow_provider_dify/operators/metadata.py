"""The operator that sets metadata values of a document."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.operators._base import (
    DifyBaseOperator,
    bad_arguments_fail_the_task,
    check_dataset_and_document,
    check_mapping,
    skip_check,
)
from airflow_provider_dify.operators._content import validate_metadata
from airflow_provider_dify.operators._documents import (
    metadata_matches,
    resolve_target,
    write_metadata,
)
from airflow_provider_dify.operators._lineage import KnowledgeBaseLineageMixin

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class DifyUpdateDocumentMetadataOperator(KnowledgeBaseLineageMixin, DifyBaseOperator):
    """
    Set metadata values of one document (given by id or by name); other fields keep their values.

    Missing metadata fields are created (``number`` for numbers, ``string`` otherwise); a value is converted to
    the type of an existing field. When the document already holds every value nothing is written, so re-runs
    write nothing. ``None`` clears a value.

    Returns (XCom) ``{dataset_id, dataset_name, document_id, document_name, action, fields, console_url}`` with
    ``action`` ``updated`` or ``unchanged``.

    :param metadata: the values ``{field name: value}`` (strings, numbers, or ``None``).
    :param dataset_id: the knowledge base's id (or give ``dataset_name``).
    :param dataset_name: the knowledge base's exact name (or give ``dataset_id``).
    :param document_id: the document's id (or give ``document_name``).
    :param document_name: the document's exact name (of several documents of that name, the oldest).
    :param dify_conn_id: the ``dify`` connection.
    """

    template_fields: Sequence[str] = (
        "dataset_id",
        "dataset_name",
        "document_id",
        "document_name",
        "metadata",
        "dify_conn_id",
    )

    def __init__(
        self,
        *,
        metadata: dict[str, Any] | str,
        dataset_id: str | None = None,
        dataset_name: str | None = None,
        document_id: str | None = None,
        document_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.metadata = metadata
        self.dataset_id = dataset_id
        self.dataset_name = dataset_name
        self.document_id = document_id
        self.document_name = document_name
        self._check(build=True)
        self.declare_knowledge_base(dataset_name=dataset_name, dataset_id=dataset_id)

    def _check(self, *, build: bool) -> dict[str, Any]:
        check_dataset_and_document(self, build=build, document=True)
        if skip_check(self.metadata, build):
            return {}
        values = validate_metadata(check_mapping(self.metadata, "metadata"))
        if not values:
            raise ValueError("metadata: pass at least one {field name: value}.")
        return values

    def execute(self, context: Context) -> dict[str, Any]:
        """Set the values that differ; write nothing when the document already holds them."""
        with bad_arguments_fail_the_task():
            values = self._check(build=False)
        hook = self.hook
        dataset, document = resolve_target(hook, self)
        assert document is not None
        dataset_id = str(dataset["id"])
        document_id = str(document["id"])
        url = self.push_console_url(context, dataset_id, document_id)
        if metadata_matches(document, values):
            action = "unchanged"
        else:
            with bad_arguments_fail_the_task():
                write_metadata(hook, dataset_id, document_id, values)
            action = "updated"
        self.log.info("Metadata of document %r (%s): %s", document.get("name"), document_id, action)
        manifest = {
            "dataset_id": dataset_id,
            "dataset_name": dataset.get("name"),
            "document_id": document_id,
            "document_name": document.get("name"),
            "action": action,
            "fields": sorted(values),
            "console_url": url,
        }
        return self.report_knowledge_base(context, manifest)
