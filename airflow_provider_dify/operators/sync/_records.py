"""Where the sync operators' records come from, and how a record becomes a document name, a text and metadata.

Written once for :class:`~airflow_provider_dify.operators.sync.DifySyncDocumentsOperator` and
:class:`~airflow_provider_dify.operators.sync.DifySyncChunksOperator`:

* :func:`read_records` reads one of the four sources: a list of dicts (usually pulled from XCom), a callable,
  a SQL query through any Airflow SQL connection (a common-sql ``DbApiHook``, read with a DB-API cursor, no
  pandas), or the files under an ``ObjectStoragePath`` prefix.
* :class:`RecordRenderer` turns each record into a :class:`RenderedRecord`: a stable key, a document name, the
  text (a Jinja template or a callable), metadata values and, for chunks, keywords and an answer.

Nothing here talks to Dify.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.hooks.validation import MAX_DOCUMENT_NAME_LENGTH, check_metadata_name, non_finite
from airflow_provider_dify.operators._content import HASH_FIELD, file_hash, text_hash
from airflow_provider_dify.operators._input import check_not_all_blank, check_record, check_rendered

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: Rows fetched from a SQL cursor at a time.
SQL_FETCH_SIZE = 1000
#: Dify truncates document names longer than this.
MAX_NAME_LENGTH = MAX_DOCUMENT_NAME_LENGTH
#: Columns of the records made from files (see :func:`storage_records`).
FILE_COLUMNS = ("path", "name", "suffix", "size", "uri")

Template = str | Callable[[dict[str, Any]], Any]


# -- sources -------------------------------------------------------------------------------------------------


def check_one_source(*, records: Any, sql: Any, path: Any, sql_conn_id: Any) -> None:
    """Raise a ``ValueError`` unless exactly one source is given (and ``sql`` comes with ``sql_conn_id``)."""
    given = [name for name, value in (("records", records), ("sql", sql), ("path", path)) if value is not None]
    if len(given) != 1:
        raise ValueError(
            "records, sql or path: pass exactly one source of records (a list of dicts or a callable as records=,"
            f" a query as sql= with sql_conn_id=, or a storage prefix as path=); got {given or 'none'}."
        )
    if sql is not None and not sql_conn_id:
        raise ValueError("sql_conn_id: a SQL query needs the id of an Airflow SQL connection (e.g. 'sqlite_default').")


def read_records(
    context: Context | Mapping[str, Any] | None,
    *,
    records: Any = None,
    sql: str | None = None,
    sql_conn_id: str | None = None,
    parameters: Any = None,
    path: Any = None,
    path_glob: str = "**/*",
    read_text: bool = False,
) -> Iterator[dict[str, Any]]:
    """
    The records of the one source given, as dicts.

    :param context: the task context (passed to a ``records`` callable that asks for it).
    :param records: a list of dicts, or a callable returning an iterable of dicts; a callable receives the
        context variables it names (``ds``, ``logical_date``, ``params``...), as a ``PythonOperator`` callable does.
    :param sql: a query run through ``sql_conn_id``; every row becomes ``{column: value}``.
    :param sql_conn_id: an Airflow connection whose hook is a common-sql ``DbApiHook`` (SQLite, Postgres...).
    :param parameters: the query's parameters (DB-API style of the database).
    :param path: an ``ObjectStoragePath`` (or URL) prefix; every file under it becomes a record.
    :param path_glob: the files under ``path`` to take (``**/*`` takes all).
    :param read_text: put each file's UTF-8 text in the record's ``content`` column.
    """
    if sql is not None:
        yield from sql_records(sql_conn_id or "", sql, parameters)
    elif path is not None:
        yield from storage_records(path, path_glob, read_text=read_text)
    else:
        yield from list_records(context, records)


def list_records(context: Context | Mapping[str, Any] | None, records: Any) -> Iterator[dict[str, Any]]:
    """The records of a list of dicts or of a callable (see :func:`read_records`)."""
    if callable(records):
        from airflow.providers.common.compat.sdk import determine_kwargs

        records = records(**determine_kwargs(records, [], dict(context or {})))
    if records is None:
        raise ValueError("records: the callable returned None; return a list (or any iterable) of dicts.")
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
        raise ValueError(
            f"records: expected a list of dicts (e.g. the XCom of an upstream task), got {type(records).__name__}."
        )
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise ValueError(f"records[{index}]: every record must be a dict, got {type(record).__name__}.")
        yield dict(record)


def sql_records(conn_id: str, sql: str, parameters: Any = None) -> Iterator[dict[str, Any]]:
    """
    Run ``sql`` through the SQL hook of connection ``conn_id``; yield each row as ``{column: value}``.

    Uses the DB-API cursor of the hook's connection (``fetchmany``), so any common-sql ``DbApiHook`` works and
    nothing beyond the database driver is needed.
    """
    from airflow_provider_dify.operators._input import check_columns, sql_hook, sql_query_failed
    from airflow_provider_dify.operators._lineage import report_sql_read

    hook = sql_hook(conn_id)
    connection = hook.get_conn()
    try:
        cursor = connection.cursor()
        try:
            try:
                if parameters is None:
                    cursor.execute(sql)
                else:
                    cursor.execute(sql, parameters)
            except Exception as error:  # the driver's own error (syntax, unknown table...): the query is wrong
                sql_query_failed(conn_id, error)
            report_sql_read(hook, sql, parameters, cursor)  # common-sql's hook lineage, as DbApiHook.run reports
            if cursor.description is None:
                raise ValueError("sql: the query returned no result set; pass a SELECT.")
            columns = check_columns([str(column[0]) for column in cursor.description])
            while rows := cursor.fetchmany(SQL_FETCH_SIZE):
                for row in rows:
                    yield dict(zip(columns, row, strict=True))
        finally:
            with contextlib.suppress(Exception):
                cursor.close()
    finally:
        with contextlib.suppress(Exception):
            connection.close()


@dataclass(frozen=True)
class StorageFile:
    """
    One file of an object storage prefix.

    :param uri: the file's full URL (``s3://bucket/key``, ``file:///dir/name``).
    :param relative_path: the path under the prefix, with ``/`` separators.
    :param size: bytes, when the store tells.
    """

    uri: str
    relative_path: str
    size: int | None = None

    def object_path(self) -> Any:
        """The file as an ``ObjectStoragePath``."""
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        return ObjectStoragePath(self.uri)

    @contextlib.contextmanager
    def local_copy(self) -> Iterator[str]:
        """A local path to the file's bytes: the file itself on ``file://``, a temporary download otherwise."""
        from airflow_provider_dify.operators._documents import local_file

        source = self.object_path()
        if getattr(source, "protocol", None) in ("file", "local"):
            yield str(source.path)
            return
        with local_file(source) as (path, _name):
            yield path


def storage_records(path: Any, pattern: str = "**/*", *, read_text: bool = False) -> Iterator[dict[str, Any]]:
    """
    One record per file under ``path``: ``path`` (relative), ``name``, ``suffix``, ``size``, ``uri``.

    With ``read_text`` the record also holds ``content``, the file's text (UTF-8).
    """
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    base = path if isinstance(path, ObjectStoragePath) else ObjectStoragePath(str(path))
    base_path = str(base.path).rstrip("/")
    if not base.exists():
        raise ValueError(f"path: {base} does not exist; pass an existing prefix (a directory or a bucket prefix).")
    found = []
    for item in base.glob(pattern):
        if not item.is_file():
            continue
        item_path = str(item.path)
        relative = item_path[len(base_path) + 1 :] if item_path.startswith(base_path + "/") else item.name
        found.append((relative, item))
    for relative, item in sorted(found, key=lambda pair: pair[0]):
        try:
            size = int(item.stat().get("size"))  # type: ignore[union-attr]
        except (AttributeError, TypeError, ValueError):
            size = None
        name = relative.rsplit("/", 1)[-1]
        record: dict[str, Any] = {
            "path": relative,
            "name": name,
            "suffix": name.rsplit(".", 1)[-1].lower() if "." in name else "",
            "size": size,
            "uri": str(item),
        }
        if read_text:
            record["content"] = item.read_bytes().decode("utf-8")
        record["_file"] = StorageFile(str(item), relative, size)
        yield record


# -- rendering -------------------------------------------------------------------------------------------------


#: The metadata of a record that has none (shared: a rendered record's metadata is only read).
NO_METADATA: Mapping[str, Any] = MappingProxyType({})


@dataclass(slots=True)
class RenderedRecord:
    """
    A record made ready for Dify.

    :param key: the record's stable key (``None`` when the record has none).
    :param name: the document name (document granularity).
    :param text: the text of the document or chunk (``None`` for a file uploaded as it is).
    :param file: the file to upload (files from object storage synced as documents).
    :param metadata: Dify metadata ``{name: value}``.
    :param keywords: the chunk's keywords given by the user (``None``: Dify extracts them).
    :param answer: the chunk's answer (Q&A documents).
    """

    key: str | None
    name: str
    text: str | None = None
    file: StorageFile | None = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: NO_METADATA)
    keywords: list[str] | None = None
    answer: str | None = None
    _hash: str | None = field(default=None, repr=False)

    def content_hash(self, settings: Mapping[str, Any] | None = None) -> str:
        """The content hash of the text or the file's bytes (with the settings that shape the indexing)."""
        if self._hash is None:
            if self.file is not None:
                with self.file.local_copy() as local:
                    self._hash = file_hash(local, settings)
            else:
                self._hash = text_hash(self.text or "", settings)
        return self._hash


def _undefined_error() -> type[Exception]:
    import jinja2

    return jinja2.UndefinedError


class UnwrittenValueError(ValueError):
    """A template or callable gave a value nobody wrote as text (``None``, bytes, NaN, infinity)."""


def written_value(value: Any) -> Any:
    """
    ``value`` when it stands for text somebody wrote; :class:`UnwrittenValueError` naming its type otherwise:
    ``None`` would be stored as ``None``, bytes as ``b'...'``, NaN as ``nan``. Jinja templates call it on every
    value they print.
    """
    from airflow_provider_dify.hooks.validation import non_finite

    if value is None:
        raise UnwrittenValueError("rendered None (a NULL column?); write {{ column or '' }} to leave it out")
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise UnwrittenValueError(
            f"rendered the {type(value).__name__} value {bytes(value)[:40]!r}, not text; decode it in the source"
        )
    if non_finite(value):
        raise UnwrittenValueError(f"rendered the {type(value).__name__} value {value!r}, which is not a number")
    return value


def _template_environment() -> Any:
    import jinja2.sandbox

    return jinja2.sandbox.SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False, finalize=written_value
    )


def compile_template(template: Template | None, argument: str) -> Callable[[dict[str, Any]], Any] | None:
    """
    A function ``record -> value`` from a Jinja template string or a callable.

    A template sees the record's columns as variables and the whole record as ``record``; an unknown name is
    an error (``StrictUndefined``), so a typo is not silently rendered empty.
    """
    if template is None:
        return None
    if callable(template):
        return template
    if not isinstance(template, str):
        raise ValueError(f"{argument}: pass a Jinja template string or a callable, got {type(template).__name__}.")
    import jinja2

    try:
        compiled = _template_environment().from_string(template)
    except jinja2.TemplateSyntaxError as error:
        raise ValueError(f"{argument}: the template does not parse: {error}") from None

    def render(record: dict[str, Any]) -> str:
        return compiled.render({**record, "record": record})

    return render


def default_text(record: Mapping[str, Any], skip: Iterable[str] = ()) -> str:
    """The text of a record without a template: one ``column: value`` line per non-empty column."""
    skipped = set(skip)
    lines = []
    for column, value in record.items():
        if column in skipped or column.startswith("_") or value is None or value == "":
            continue
        lines.append(f"{column}: {written_value(value)}")
    return "\n".join(lines)


def metadata_value(value: Any) -> Any:
    """A column value as a Dify metadata value (strings and numbers; dates as ISO text)."""
    if value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool)):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    return str(value)


def _template_failure(argument: str, error: Exception) -> str:
    """A template's error for the manifest, naming the argument (and the value's type for a value nobody wrote)."""
    if isinstance(error, UnwrittenValueError):
        return f"{argument} {error}"
    return f"{argument} failed: {type(error).__name__}: {error}"


class RecordError(ValueError):
    """A record that cannot be rendered (missing key column, blank text...): reported, not written."""

    def __init__(self, message: str, *, key: str | None = None, name: str | None = None, blank: bool = False) -> None:
        self.key = key
        self.name = name
        self.blank = blank
        super().__init__(message)


@dataclass
class RecordRenderer:
    """
    How a record becomes a document or a chunk.

    :param key_field: the column that holds the record's stable key (a document's name is built from it).
    :param name_template: a Jinja template or a callable giving the document name (default: ``name_prefix`` +
        key; for files ``name_prefix`` + the relative path with ``/`` as ``__``).
    :param name_prefix: put before every generated name.
    :param text_template: a Jinja template or a callable giving the text (default: ``column: value`` lines; for
        files synced as chunks, the file's text).
    :param metadata_fields: columns that become Dify metadata: a list of column names, or
        ``{column: metadata name}``.
    :param keywords_field: a column (or callable) with the chunk's keywords (a list or comma-separated text).
    :param answer_template: a Jinja template or a callable giving the chunk's answer (Q&A documents).
    :param files_as_uploads: files become uploaded documents (their text is not rendered).
    :param names: records need a document name (document granularity); chunks have none.
    """

    key_field: str | None = None
    name_template: Template | None = None
    name_prefix: str = ""
    text_template: Template | None = None
    metadata_fields: Sequence[str] | Mapping[str, str] | None = None
    keywords_field: str | Callable[[dict[str, Any]], Any] | None = None
    answer_template: Template | None = None
    files_as_uploads: bool = False
    names: bool = True

    def __post_init__(self) -> None:
        if self.key_field is not None and (not isinstance(self.key_field, str) or not self.key_field.strip()):
            raise ValueError(
                f"key_field: pass the name of the column holding each record's key, got {self.key_field!r}."
            )
        if not isinstance(self.name_prefix, str):
            raise ValueError(f"name_prefix: pass a string, got {type(self.name_prefix).__name__}.")
        self._name = compile_template(self.name_template, "name_template")
        self._text = compile_template(self.text_template, "text_template")
        self._answer = compile_template(self.answer_template, "answer_template")
        self._metadata = self._metadata_columns(self.metadata_fields)
        if self.keywords_field is not None and not (
            callable(self.keywords_field) or (isinstance(self.keywords_field, str) and self.keywords_field)
        ):
            raise ValueError("keywords_field: pass a column name or a callable returning a list of keywords.")

    @staticmethod
    def _metadata_columns(fields: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
        if fields is None:
            return {}
        if isinstance(fields, str):
            raise ValueError(f"metadata_fields: pass a list of column names, not the string {fields!r}.")
        pairs = fields.items() if isinstance(fields, Mapping) else ((column, column) for column in fields)
        columns: dict[str, str] = {}
        for column, name in pairs:
            if not isinstance(column, str) or not column or not isinstance(name, str) or not name.strip():
                raise ValueError(f"metadata_fields: column and metadata names must be non-empty strings: {column!r}.")
            if name == HASH_FIELD:
                raise ValueError(f"metadata_fields: {HASH_FIELD!r} is reserved for the provider's content hash.")
            check_metadata_name(name, f"metadata_fields[{column!r}]")
            columns[column] = name
        return columns

    @property
    def metadata_columns(self) -> list[str]:
        """The record columns that become metadata."""
        return list(self._metadata)

    @property
    def metadata_names(self) -> list[str]:
        """The Dify metadata names the records fill."""
        return list(self._metadata.values())

    def key_of(self, record: Mapping[str, Any]) -> str | None:
        """The record's key, from ``key_field`` (for files: the relative path when no ``key_field`` is given)."""
        if self.key_field is None:
            return str(record["path"]) if isinstance(record.get("_file"), StorageFile) else None
        if self.key_field not in record:
            columns = ", ".join(column for column in record if not column.startswith("_"))
            raise ValueError(f"key_field: the records have no column {self.key_field!r}; their columns are {columns}.")
        value = record[self.key_field]
        if value is None or str(value).strip() == "":
            raise RecordError(f"key_field {self.key_field!r} is empty in a record")
        key = str(value).strip()
        if "\n" in key or "\r" in key:
            raise RecordError(f"key_field {self.key_field!r} holds a line break in {key!r}", key=key)
        return key

    def render(self, record: dict[str, Any]) -> RenderedRecord:
        """Render one record (raises :class:`RecordError` for a record that cannot be written)."""
        key = self.key_of(record)
        file = record.get("_file") if isinstance(record.get("_file"), StorageFile) else None
        visible = {column: value for column, value in record.items() if not column.startswith("_")}
        name = ""
        if self.names:
            try:
                name = self._render_name(visible, key, file)
            except _undefined_error() as error:  # a column the records do not have: the template is wrong
                raise ValueError(f"name_template: {error}; the records' columns are {', '.join(visible)}.") from None
            except Exception as error:  # the name is not known: the record fails, and protects the whole scope
                raise RecordError(_template_failure("name_template", error), key=key) from None
            if not name:
                raise RecordError("the document name rendered empty", key=key)
            if len(name) > MAX_NAME_LENGTH:
                raise RecordError(
                    f"the document name {name[:60]!r}... is longer than {MAX_NAME_LENGTH} characters", key=key
                )
        text: str | None = None
        upload: StorageFile | None = None
        if file is not None and self.files_as_uploads:
            upload = file
        else:
            try:
                text = self._render_text(visible)
            except _undefined_error() as error:  # a column the records do not have: the template is wrong
                columns = ", ".join(visible)
                raise ValueError(f"text_template: {error}; the records' columns are {columns}.") from None
            except Exception as error:  # a template error names the record it failed on
                raise RecordError(_template_failure("text_template", error), key=key, name=name) from None
            if not text.strip():
                raise RecordError("the text rendered empty", key=key, name=name, blank=True)
        metadata = {}
        for column, metadata_name in self._metadata.items():
            if column not in visible:
                raise ValueError(f"metadata_fields: the records have no column {column!r}.")
            if non_finite(visible[column]):
                value = visible[column]
                raise RecordError(
                    f"metadata column {column!r} holds the {type(value).__name__} value {value!r}, which JSON and"
                    " Dify cannot hold (pass NULL instead)",
                    key=key,
                    name=name,
                )
            metadata[metadata_name] = metadata_value(visible[column])
        try:
            answer = self._render_answer(visible, key)
        except RecordError:
            raise
        except _undefined_error() as error:
            raise ValueError(f"answer_template: {error}; the records' columns are {', '.join(visible)}.") from None
        except Exception as error:  # as for the text: the record fails, the others are synced
            raise RecordError(_template_failure("answer_template", error), key=key, name=name) from None
        return RenderedRecord(
            key=key,
            name=name,
            text=text,
            file=upload,
            metadata=metadata or NO_METADATA,
            keywords=self._keywords(visible, key),
            answer=answer,
        )

    def name_of(self, record: Mapping[str, Any], key: str | None) -> str:
        """The document name of a record whose text is not rendered (a deletion in a change feed)."""
        visible = {column: value for column, value in record.items() if not column.startswith("_")}
        name = self._render_name(visible, key, None)
        if not name:
            raise ValueError(f"name_template: the document name of deleted record {key!r} rendered empty.")
        return name

    def _render_name(self, record: dict[str, Any], key: str | None, file: StorageFile | None) -> str:
        if self._name is not None:
            return self.name_prefix + str(written_value(self._name({**record, "key": key}))).strip()
        if file is not None:
            return self.name_prefix + file.relative_path.replace("/", "__")
        if key is None:
            return ""
        return self.name_prefix + key

    def _render_text(self, record: dict[str, Any]) -> str:
        if self._text is not None:
            return str(written_value(self._text(record)))
        if "content" in record and isinstance(record["content"], str) and "uri" in record:
            return record["content"]  # a file read as text
        return default_text(record, skip=[self.key_field] if self.key_field else [])

    def _render_answer(self, record: dict[str, Any], key: str | None) -> str | None:
        if self._answer is None:
            return None
        answer = str(written_value(self._answer(record)))
        if not answer.strip():
            raise RecordError("answer_template rendered empty", key=key)
        return answer

    def _keywords(self, record: dict[str, Any], key: str | None) -> list[str] | None:
        if self.keywords_field is None:
            return None
        value = self.keywords_field(record) if callable(self.keywords_field) else record.get(self.keywords_field)
        if value is None or value == "":
            return None
        items = value.split(",") if isinstance(value, str) else list(value)
        keywords = [str(item).strip() for item in items if str(item).strip()]
        return keywords or None


def render_all(renderer: RecordRenderer, records: Iterable[dict[str, Any]]) -> tuple[list[RenderedRecord], list[dict]]:
    """
    Render every record: ``(rendered, failures)``.

    A record that cannot be rendered is a failure (reported, not written, never deleted). Two records with the
    same key or name are an error, raised before anything is written.
    """
    rendered: list[RenderedRecord] = []
    failures: list[dict[str, Any]] = []
    seen_keys: dict[str, int] = {}
    seen_names: dict[str, int] = {}
    for index, record in enumerate(records):
        check_record(renderer, record, index)
        try:
            item = renderer.render(record)
        except RecordError as error:
            failure = {"key": error.key, "name": error.name, "operation": "render", "error": f"record {index}: {error}"}
            failures.append({**failure, "blank": True} if error.blank else failure)
            continue
        check_rendered(item, index)
        if item.key is not None:
            if item.key in seen_keys:
                raise ValueError(
                    f"key_field: records {seen_keys[item.key]} and {index} have the same key {item.key!r};"
                    " keys must be unique (deduplicate the source or choose another key column)."
                )
            seen_keys[item.key] = index
        if renderer.names:
            if item.name in seen_names:
                raise ValueError(
                    f"name_template: records {seen_names[item.name]} and {index} render the same document name"
                    f" {item.name!r}; names identify documents, so they must be unique."
                )
            seen_names[item.name] = index
        rendered.append(item)
    check_not_all_blank(rendered, failures)
    for failure in failures:
        failure.pop("blank", None)
    return rendered, failures
