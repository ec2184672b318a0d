"""How the sync operators take ``records``: a literal list is data, never a template; a template is read back.

A list of records written in a DAG is wrapped in Airflow's ``literal`` (Airflow 2.11 and 3.x, through
``airflow.providers.common.compat``) so that Airflow's rendering passes it through as written: a value such
as ``{{ conn.dify_default.password }}`` or ``{% raw %}`` is stored in Dify verbatim. A string is a template
(usually an XCom pull); Airflow renders it, and :func:`rendered_records` reads the text back as the list it
stands for, as ``segments`` and ``document_ids`` are read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _literal_type() -> type:
    from airflow.providers.common.compat.sdk import literal

    return type(literal(None))


def literal_records(records: Any) -> Any:
    """
    ``records`` marked as not to be templated when it is a list or tuple of records, or a callable; anything else
    (a template string, an ``XComArg``) as it is.

    Airflow calls a callable template field with ``context=`` and ``jinja_env=`` when it renders the fields; a
    ``records`` callable is instead called by the operator when it reads the records, with the context
    variables it names.
    """
    if isinstance(records, (list, tuple)) or (callable(records) and not hasattr(records, "resolve")):
        from airflow.providers.common.compat.sdk import literal

        return literal(list(records) if isinstance(records, (list, tuple)) else records)
    return records


def rendered_records(records: Any) -> Any:
    """
    The records after Airflow rendered the template fields: a literal list unwrapped, a rendered text parsed.

    :raises DifyArgumentError: naming ``records`` when a rendered text is not a list of records.
    """
    from airflow_provider_dify.hooks.validation import refuse
    from airflow_provider_dify.operators._base import native_value

    if isinstance(records, _literal_type()):
        return records.value
    if not isinstance(records, str):
        return records
    text = records.strip()
    if not text.startswith("["):
        refuse(
            "records",
            f"rendered to {text[:80]!r}, not a list of records; pull a list, e.g."
            " records=\"{{ ti.xcom_pull(task_ids='extract') }}\" where 'extract' returns a list of dicts, or pass"
            " the list itself.",
        )
    return native_value(text, "records")


def check_record(renderer: Any, record: Mapping[str, Any], index: int) -> None:
    """
    Refuse, before anything is written, a record whose key or metadata value is not a plain value (a dict or a
    list would be turned into text) or whose key holds control characters.

    :raises DifyArgumentError: naming ``records[index].<column>``.
    """
    from airflow_provider_dify.hooks.validation import (
        check_key_value,
        check_metadata_value,
        check_no_control,
        non_finite,
    )

    key_field = renderer.key_field
    if key_field is not None and key_field in record:
        value = check_key_value(record[key_field], f"records[{index}].{key_field}")
        if isinstance(value, str):
            check_no_control(value.strip(), f"records[{index}].{key_field}")
    for column in renderer.metadata_columns:
        if column in record and not non_finite(record[column]):  # a NaN fails its record (see RecordRenderer)
            check_metadata_value(record[column], f"records[{index}].{column}")


def check_rendered(item: Any, index: int) -> None:
    """Refuse a rendered record whose name, text, answer or keywords hold NUL or control characters."""
    from airflow_provider_dify.hooks.validation import check_no_control

    if item.name:
        check_no_control(item.name, f"records[{index}] (document name)")
    for part in ("text", "answer"):
        value = getattr(item, part)
        if isinstance(value, str):
            check_no_control(value, f"records[{index}] ({part})", text=True)
    for position, keyword in enumerate(item.keywords or []):
        check_no_control(keyword, f"records[{index}] (keywords[{position}])")


def check_not_all_blank(rendered: Sequence[Any], failures: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a source whose every record rendered a blank text: the template or the columns are wrong."""
    from airflow_provider_dify.hooks.validation import refuse

    if not rendered and failures and all(failure.get("blank") for failure in failures):
        refuse(
            "text_template",
            f"the text of every record ({len(failures)}) rendered blank, so nothing would be written; check"
            " text_template and the columns it reads (or the source's query).",
        )


def check_uploads(hook: Any, rendered: Sequence[Any]) -> None:
    """Refuse, before anything is written, a file record the server would refuse (size, extension)."""
    from airflow_provider_dify.hooks.validation import check_upload_allowed

    for record in rendered:
        if record.file is not None:
            size = record.file.size
            if size is None:
                continue  # known only once downloaded: the upload itself checks it then
            argument = f"path ({record.key})"
            check_upload_allowed(hook.settings, record.file.uri, record.name, size=size, argument=argument)


def sql_hook(conn_id: str) -> Any:
    """The SQL hook of connection ``conn_id``; refused, naming ``sql_conn_id``, when it has none."""
    from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

    from airflow_provider_dify.hooks.validation import refuse

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        refuse("sql_conn_id", f"there is no Airflow connection {conn_id!r}; create it, or fix the id.")
    try:
        hook = connection.get_hook()
    except Exception as error:  # a connection type whose provider is not installed
        refuse("sql_conn_id", f"connection {conn_id!r} has no usable hook ({type(error).__name__}: {error}).")
    try:
        from airflow.providers.common.sql.hooks.sql import DbApiHook
    except ImportError:  # pragma: no cover - common-sql comes with every SQL provider
        is_sql = callable(getattr(hook, "get_records", None))
    else:
        is_sql = isinstance(hook, DbApiHook)
    if not is_sql:
        refuse(
            "sql_conn_id",
            f"connection {conn_id!r} is of type {connection.conn_type!r}, whose hook ({type(hook).__name__}) is not"
            " a SQL hook; give the id of a database connection (sqlite, postgres, mysql...).",
        )
    return hook


_QUERY_MISTAKES = ("syntax", "no such table", "no such column", "does not exist", "unknown column", "ambiguous")


def sql_query_failed(conn_id: str, error: Exception) -> Any:
    """
    Raise for a query the database refused, with the database's own message and naming ``sql``.

    A mistake in the query (a syntax error, an unknown table or column) is a
    :class:`~airflow_provider_dify.exceptions.DifyArgumentError`, failing the task without retries; anything
    else (a lock, a lost connection) an ``AirflowException`` that keeps them.
    """
    from airflow.providers.common.compat.sdk import AirflowException

    from airflow_provider_dify.hooks.validation import refuse

    first_line = (str(error).strip().splitlines() or ["no message"])[0][:300]
    described = f"the query failed on connection {conn_id!r}: {type(error).__name__}: {first_line}"
    if type(error).__name__ == "ProgrammingError" or any(mark in first_line.lower() for mark in _QUERY_MISTAKES):
        refuse("sql", f"{described}; fix the query.")
    raise AirflowException(f"sql: {described}") from error


def check_columns(columns: list[str]) -> list[str]:
    """The result's column names, refused when one repeats (the last value would silently win)."""
    from airflow_provider_dify.hooks.validation import refuse

    seen: set[str] = set()
    for column in columns:
        if column in seen:
            refuse(
                "sql",
                f"the query returns the column {column!r} more than once (columns: {', '.join(columns)}); give each"
                " a distinct name with AS, e.g. SELECT a.id AS product_id, b.id AS vendor_id.",
            )
        seen.add(column)
    return columns


def check_chunk_texts(chunks: Sequence[Mapping[str, Any]]) -> None:
    """Refuse chunks whose content, answer or keywords hold NUL or control characters (as the request would)."""
    from airflow_provider_dify.hooks.operations import add_segments
    from airflow_provider_dify.hooks.validation import UUID_EXAMPLE

    if chunks:
        add_segments(UUID_EXAMPLE, UUID_EXAMPLE, chunks)  # the request description checks every text
