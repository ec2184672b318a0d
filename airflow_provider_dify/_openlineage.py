"""OpenLineage datasets and facets of the Dify operators; imported only when OpenLineage asks for them.

* :func:`knowledge_base_output`: the knowledge base written, with :class:`DifyKnowledgeBaseWriteDatasetFacet`;
* :func:`sql_inputs`: the tables a query reads, parsed as the common-sql provider does (OpenLineage's
  ``SQLParser`` with the hook's dialect and database info); for databases whose hook gives no database info
  (SQLite), the parsed table names in the namespace ``<conn type>://<host>``;
* :func:`storage_inputs`: an object storage prefix as a dataset (``s3://bucket`` + key prefix, ``file`` + path).

Needs apache-airflow-providers-openlineage (and so openlineage-python).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import attrs
from openlineage.client.facet_v2 import DatasetFacet

from airflow_provider_dify.assets import openlineage_dataset

#: The facet's key on the output dataset.
FACET_NAME = "difyKnowledgeBaseWrite"


@attrs.define
class DifyKnowledgeBaseWriteDatasetFacet(DatasetFacet):
    """
    What an operator wrote to a Dify knowledge base.

    :param granularity: ``documents``, ``chunks``, ``document`` or ``knowledge_base``.
    :param createdCount: documents or chunks created (chunks added).
    :param updatedCount: documents or chunks rewritten (or whose metadata was written).
    :param deletedCount: documents or chunks deleted.
    :param unchangedCount: documents or chunks left as they were.
    :param datasetName: the knowledge base's name.
    :param scope: the sync's scope (documents).
    :param documentName: the document written (single-document operators, chunk syncs).
    :param batches: Dify's indexing batch ids (at most 100).
    """

    granularity: str
    createdCount: int = 0  # "...Count": the base facet has a "deleted" field of its own
    updatedCount: int = 0
    deletedCount: int = 0
    unchangedCount: int = 0
    datasetName: str | None = None
    scope: str | None = None
    documentName: str | None = None
    batches: list[str] = attrs.field(factory=list)

    @staticmethod
    def _get_schema() -> str:
        return "urn:airflow-provider-dify:facet:DifyKnowledgeBaseWriteDatasetFacet:1"  # described in docs/assets.md


def knowledge_base_output(host: str, dataset_id: str, extra: dict[str, Any]) -> Any:
    """The knowledge base as an OpenLineage output dataset, with the write facet."""
    counts = extra
    facet = DifyKnowledgeBaseWriteDatasetFacet(
        granularity=str(extra.get("granularity") or ""),
        createdCount=int(counts.get("created") or 0),
        updatedCount=int(counts.get("updated") or 0),
        deletedCount=int(counts.get("deleted") or 0),
        unchangedCount=int(counts.get("unchanged") or 0),
        datasetName=extra.get("dataset_name"),
        scope=extra.get("scope"),
        documentName=extra.get("document_name"),
        batches=[str(batch) for batch in extra.get("batches") or []],
    )
    return openlineage_dataset(host, dataset_id, facets={FACET_NAME: facet})


def sql_inputs(conn_id: str, sql: str) -> list[Any]:
    """The datasets ``sql`` reads through connection ``conn_id`` (the common-sql provider's parsing)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.common.compat.sdk import BaseHook
    from airflow.providers.openlineage.sqlparser import SQLParser

    connection = BaseHook.get_connection(conn_id)
    hook = connection.get_hook()
    dialect = hook.get_openlineage_database_dialect(connection)
    database_info = hook.get_openlineage_database_info(connection)
    if database_info is not None:  # Postgres, MySQL, Snowflake...: exactly what SQLExecuteQueryOperator reports
        parser = SQLParser(dialect=dialect, default_schema=hook.get_openlineage_default_schema())
        try:
            from airflow.providers.openlineage.utils.utils import should_use_external_connection

            use_connection = should_use_external_connection(hook)
        except ImportError:
            use_connection = True
        lineage = parser.generate_openlineage_metadata_from_sql(
            sql=sql, hook=hook, database_info=database_info, use_connection=use_connection
        )
        return list(lineage.inputs)
    # No database info (SQLite): the tables as the query names them (no default schema: SQLite has none).
    parsed = SQLParser(dialect=dialect).parse(SQLParser.split_sql_string(sql))
    if parsed is None:
        return []
    namespace = f"{connection.conn_type}://{connection.host or ''}"
    return [Dataset(namespace=namespace, name=table.qualified_name) for table in parsed.in_tables]


def storage_inputs(path: Any) -> list[Any]:
    """An object storage prefix (``ObjectStoragePath`` or URL) as one OpenLineage dataset."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    parts = urlsplit(str(path))
    scheme = parts.scheme or "file"
    if scheme == "file":
        return [Dataset(namespace=f"file://{parts.netloc}" if parts.netloc else "file", name=parts.path)]
    return [Dataset(namespace=f"{scheme}://{parts.netloc}", name=parts.path.lstrip("/") or "/")]
