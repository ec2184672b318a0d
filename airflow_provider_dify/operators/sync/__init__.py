"""Keep a Dify knowledge base in step with a source of records: one document per record, or one chunk per record.

* :class:`DifySyncDocumentsOperator`: each record is a document (name from a key column, content hash and
  metadata in Dify metadata fields). Per-record metadata filtering works; Dify indexes documents one at a
  time per workspace, so large exports wait on its queue.
* :class:`DifySyncChunksOperator`: each record is a chunk of one document that stands for the scope (a table,
  a partition). Chunks are indexed within the add request, so thousands of rows go in within seconds.

Both read records the same way (a list from XCom, a callable, a SQL query, files under an object storage
prefix) and render them the same way (:mod:`airflow_provider_dify.operators.sync._records`). See
docs/warehouse-sync.md for the choice between them.
"""

from airflow_provider_dify.operators.sync.chunks import DifySyncChunksOperator
from airflow_provider_dify.operators.sync.documents import DifySyncDocumentsOperator

__all__ = ["DifySyncChunksOperator", "DifySyncDocumentsOperator"]
