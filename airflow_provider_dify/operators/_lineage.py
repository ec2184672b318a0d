"""What the writing operators report about the knowledge base they wrote: asset events and OpenLineage.

:class:`KnowledgeBaseLineageMixin` gives an operator

* an outlet :func:`~airflow_provider_dify.assets.knowledge_base_alias` (an ``AssetAlias``; ``DatasetAlias`` on
  2.11), declared when the DAG is built. When the knowledge base is known only when the task runs (its id may
  come from XCom or a name lookup), the operator adds the knowledge base's asset to the alias at run time, with
  the counts in the event's ``extra``, and only when it changed something: a run that wrote nothing emits no
  event, and DAGs scheduled on the asset (or on the alias) are not woken. A retry emits even when it found
  nothing to write (``extra["retry"]``): the failed try before it may have written, and its event was lost;
* a declared knowledge base: when the task's ``outlets`` name the ``dify://`` asset of the knowledge base it
  wrote (``outlets=[knowledge_base_asset(dataset_id, host=...)]``), the change is that outlet's own event, not
  an alias event. A parsed DAG registered the asset, so Airflow 3 has it (active) before its first event: no
  "not found" or "inactive" warning, and no insert that tasks finishing at once could race on (Airflow creates
  an asset, and links it to an alias, on the first event through an alias). A run that changed nothing drops
  the asset from the task's outlets, so Airflow records no event (it records one for each outlet asset of a
  successful task). A ``dify://`` outlet that is not the knowledge base written is dropped with a warning:
  its event would say that a knowledge base changed that the task did not write;
* a knowledge base named in the DAG file: when the operator is given its name as a plain string (no id, no
  ``dify`` outlet, no ``asset_alias``), it declares :func:`~airflow_provider_dify.assets.knowledge_base_named`
  as its outlet while the file is parsed (:meth:`KnowledgeBaseLineageMixin.declare_knowledge_base`; a mapped
  task in :meth:`KnowledgeBaseLineageMixin.partial`), and the change is that outlet's event, as for a declared
  one: the id of a knowledge base the run creates is unknown when the file is parsed, its name is not;
* ``get_openlineage_facets_on_complete``: the knowledge base as the output dataset, with a
  ``difyKnowledgeBaseWrite`` facet saying what was written, and the operator's inputs
  (:meth:`KnowledgeBaseLineageMixin.openlineage_inputs`: the SQL tables or the object storage prefix of a sync).

Each operator calls :meth:`KnowledgeBaseLineageMixin.report_knowledge_base` with its manifest where it returns
it. Nothing here imports OpenLineage unless OpenLineage asks for the facets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.assets import NAMED_SCHEME, SCHEME, default_alias_name, knowledge_base_named
from airflow_provider_dify.hooks.connection import DEFAULT_CONN_ID
from airflow_provider_dify.templating import is_unrendered

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: Batch ids kept in an asset event's extra (a sync of thousands of documents has one batch per document).
MAX_EVENT_BATCHES = 100
#: What each ``action`` of a single-write manifest counts as.
ACTION_COUNTS: dict[str, str | None] = {
    "created": "created",
    "added": "created",
    "updated": "updated",
    "metadata_updated": "updated",
    "deleted": "deleted",
    "unchanged": "unchanged",
    "skipped": "unchanged",
    "reused": "unchanged",
    "missing": None,
}
COUNT_NAMES = ("created", "updated", "deleted", "unchanged")


def written_counts(manifest: Mapping[str, Any]) -> dict[str, int]:
    """``{created, updated, deleted, unchanged}`` of an operator's manifest (chunks added count as created)."""
    counts = dict.fromkeys(COUNT_NAMES, 0)
    source = manifest.get("counts")
    if isinstance(source, Mapping):  # the sync operators
        counts["created"] = int(source.get("created", source.get("added")) or 0)
        for name in ("updated", "deleted", "unchanged"):
            counts[name] = int(source.get(name) or 0)
    elif "already_present" in manifest:  # adding chunks
        counts["created"] = int(manifest.get("added") or 0)
        counts["unchanged"] = int(manifest.get("already_present") or 0)
        if not counts["created"] and (manifest.get("child_chunks_added") or manifest.get("child_chunks_removed")):
            counts["updated"] = 1
    elif (name := ACTION_COUNTS.get(str(manifest.get("action")))) is not None:
        counts[name] = 1
    return counts


def written_granularity(manifest: Mapping[str, Any]) -> str:
    """What a manifest's operator wrote: ``documents`` or ``chunks`` (syncs), ``chunks`` (adding chunks),
    ``document`` (one document) or ``knowledge_base`` (creating or deleting one)."""
    if manifest.get("granularity"):
        return str(manifest["granularity"])
    if "already_present" in manifest:
        return "chunks"
    return "document" if "document_id" in manifest else "knowledge_base"


def event_extra(manifest: Mapping[str, Any], granularity: str, counts: Mapping[str, int]) -> dict[str, Any]:
    """
    The asset event's extra: which knowledge base, what was written (never text).

    Flat (``created``, ``updated``, ``deleted``, ``unchanged`` as numbers; ``batches`` a tuple, a list once
    stored): Airflow 2.11 needs hashable values in the extra of an event added to an alias.
    """
    extra: dict[str, Any] = {
        "dataset_id": manifest.get("dataset_id"),
        "dataset_name": manifest.get("dataset_name"),
        "granularity": granularity,
        **{name: int(counts.get(name) or 0) for name in COUNT_NAMES},
    }
    for key in ("scope", "action", "document_id", "document_name"):
        if manifest.get(key) is not None:
            extra[key] = manifest[key]
    batches = [str(b) for b in manifest.get("batches") or ([manifest["batch"]] if manifest.get("batch") else [])]
    if batches:
        extra["batches"] = tuple(batches[:MAX_EVENT_BATCHES])
        if len(batches) > MAX_EVENT_BATCHES:
            extra["batches_total"] = len(batches)
    return extra


def report_sql_read(hook: Any, sql: str, parameters: Any, cursor: Any) -> None:
    """Tell common-sql's hook lineage about a query run on ``hook``'s cursor, as ``DbApiHook.run`` does."""
    try:
        from airflow.providers.common.sql.hooks.lineage import send_sql_hook_lineage
    except ImportError:  # a common-sql without hook lineage
        return
    send_sql_hook_lineage(context=hook, sql=sql, sql_parameters=parameters, cur=cursor)


def _alias_registered(name: str, log: Any) -> bool:
    """
    Whether an event can go through the alias ``name``: always on Airflow 3 (it creates a missing alias).

    Airflow 2.11 fails the task when the alias is not in the metadata database, which happens when the DAG was
    never written there (``dag.test()`` of a DAG the scheduler has not parsed): then no event, and a warning.
    """
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        return True
    from airflow.models.dataset import DatasetAliasModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        if session.scalar(select(DatasetAliasModel.id).where(DatasetAliasModel.name == name)) is not None:
            return True
    log.warning(
        "Dataset alias %r is not in the metadata database (the DAG was not written there, as with dag.test() of"
        " a DAG the scheduler has not parsed): no dataset event for this change.",
        name,
    )
    return False


def _is_literal(value: Any) -> bool:
    """Whether an argument is a plain, non-empty string as written in the DAG file (no Jinja, no XCom)."""
    return isinstance(value, str) and bool(value.strip()) and not is_unrendered(value)


def _partial_conn_id(kwargs: Mapping[str, Any]) -> Any:
    """The Dify connection id of a ``partial()``: its argument, its or the DAG's ``default_args``, the default."""
    if "dify_conn_id" in kwargs:
        return kwargs["dify_conn_id"]
    default_args = kwargs.get("default_args") or {}
    if "dify_conn_id" in default_args:
        return default_args["dify_conn_id"]
    try:
        from airflow.sdk.definitions._internal.contextmanager import DagContext

        current = DagContext.get_current
    except ImportError:  # Airflow 2
        from airflow.models.dag import DagContext  # type: ignore[no-redef,attr-defined]

        current = DagContext.get_current_dag
    dag = kwargs.get("dag") or current()
    return (getattr(dag, "default_args", None) or {}).get("dify_conn_id", DEFAULT_CONN_ID)


def _listed(outlets: Any) -> list[Any]:
    """``outlets`` as Airflow takes them (one asset, a list or ``None``) as a list."""
    return list(outlets) if isinstance(outlets, (list, tuple)) else [] if outlets is None else [outlets]


def _is_dify_outlet(outlet: Any) -> bool:
    uri = getattr(outlet, "uri", None)
    return isinstance(uri, str) and uri.startswith((f"{SCHEME}://", f"{NAMED_SCHEME}://"))


def parse_time_asset(conn_id: Any, dataset_name: Any, dataset_id: Any, outlets: Any) -> Any:
    """
    The named asset a writing operator declares when the DAG file names its knowledge base: ``None`` unless
    ``dataset_name`` and ``conn_id`` are plain strings, ``dataset_id`` is not given, and ``outlets`` declare no
    ``dify://`` or ``dify-knowledge-base://`` asset (then the DAG author chose).
    """
    if dataset_id is not None or not _is_literal(dataset_name) or not _is_literal(conn_id):
        return None
    if any(_is_dify_outlet(outlet) for outlet in _listed(outlets)):
        return None
    try:
        return knowledge_base_named(dataset_name, conn_id)
    except ValueError:  # not a name the operator will accept either: its own check says why
        return None


class KnowledgeBaseLineageMixin:
    """
    Report the knowledge base an operator wrote: an asset event when it changed, and OpenLineage facets.

    Put it before the operator's base class. The operator calls :meth:`declare_knowledge_base` at the end of its
    ``__init__`` and :meth:`report_knowledge_base` with its manifest.

    :param asset_alias: the name of the asset alias the knowledge base's asset events go through (default
        ``dify:<dify_conn_id>``, :func:`~airflow_provider_dify.assets.knowledge_base_alias`), unless an outlet
        names the knowledge base it wrote (declared in ``outlets``, or the named asset the operator declares for
        a knowledge base named in the DAG file, which giving ``asset_alias`` turns off): then the event is that
        outlet's own.
    """

    #: The argument that names the knowledge base (``name`` for ``DifyCreateDatasetOperator``).
    knowledge_base_name_argument: str = "dataset_name"

    def __init__(self, *, asset_alias: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from airflow.providers.common.compat.sdk import AssetAlias

        self._asset_alias_given = asset_alias is not None
        self.asset_alias = asset_alias or default_alias_name(self.dify_conn_id)  # type: ignore[attr-defined]
        self.outlets = [*(self.outlets or []), AssetAlias(name=self.asset_alias)]
        self._knowledge_base_written: dict[str, Any] | None = None

    def declare_knowledge_base(self, *, dataset_name: Any, dataset_id: Any = None) -> None:
        """
        Declare the knowledge base's named asset as an outlet when the DAG file names it literally.

        Called by each operator's ``__init__`` once it has its arguments. Adds
        :func:`~airflow_provider_dify.assets.knowledge_base_named` of ``dataset_name`` to the outlets when the name
        is a plain string (no Jinja), no ``dataset_id`` is given, no ``dify://`` or ``dify-knowledge-base://``
        outlet is declared and no ``asset_alias`` was given. A mapped task gets it from :meth:`partial` instead.
        """
        if self._asset_alias_given or getattr(self, "_BaseOperator__from_mapped", False):
            return
        named = parse_time_asset(self.dify_conn_id, dataset_name, dataset_id, self.outlets)  # type: ignore[attr-defined]
        if named is not None:
            self.outlets = [named, *self.outlets]

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """``BaseOperator.partial``, declaring the named asset of a knowledge base named in ``partial()``."""
        if kwargs.get("asset_alias") is None:
            named = parse_time_asset(
                _partial_conn_id(kwargs),
                kwargs.get(cls.knowledge_base_name_argument),
                kwargs.get("dataset_id"),
                kwargs.get("outlets"),
            )
            if named is not None:
                kwargs["outlets"] = [named, *_listed(kwargs.get("outlets"))]
        return super().partial(**kwargs)  # type: ignore[misc]

    def report_knowledge_base(self, context: Context, manifest: dict[str, Any]) -> dict[str, Any]:
        """
        Record what ``manifest`` says was written; emit the knowledge base's asset event when it changed.

        Returns ``manifest``.
        """
        from airflow.providers.common.compat.sdk import AssetAlias

        from airflow_provider_dify.assets import create_asset

        dataset_id = manifest.get("dataset_id")
        if not dataset_id:  # nothing was found, so nothing was written
            return manifest
        granularity = written_granularity(manifest)
        counts = written_counts(manifest)
        extra = event_extra(manifest, granularity, counts)
        host = self.hook.settings.base_url  # type: ignore[attr-defined]
        asset = create_asset(host=host, dataset_id=str(dataset_id))
        changed = bool(counts["created"] or counts["updated"] or counts["deleted"])
        ti = context.get("ti")
        if not changed and int(getattr(ti, "try_number", 1) or 1) > 1:
            # An earlier try of this run may have written and then failed (its event was never recorded): tell
            # the consumers anyway, at least once rather than never.
            changed = True
            extra["retry"] = True
        self._knowledge_base_written = {"host": host, "dataset_id": str(dataset_id), "extra": extra}
        declared = self._declared_outlets(asset.uri, manifest.get("dataset_name"))
        if not changed:
            if declared:  # Airflow records an event for every outlet asset of a successful task
                self.outlets = [outlet for outlet in self.outlets if not any(outlet is d for d in declared)]
            self.log.info("Knowledge base %s unchanged: no asset event", dataset_id)  # type: ignore[attr-defined]
            return manifest
        outlet_events = context.get("outlet_events")  # absent when execute() is called outside a task run
        if outlet_events is None:
            return manifest
        if declared:
            for outlet in declared:
                outlet_events[outlet].extra = extra
            uris = ", ".join(str(outlet.uri) for outlet in declared)
            self.log.info("Knowledge base %s changed: asset event %s %s", dataset_id, uris, counts)  # type: ignore[attr-defined]
        elif _alias_registered(self.asset_alias, self.log):  # type: ignore[attr-defined]
            outlet_events[AssetAlias(name=self.asset_alias)].add(asset, extra=extra)
            self.log.info("Knowledge base %s changed: asset event %s %s", dataset_id, asset.uri, counts)  # type: ignore[attr-defined]
        return manifest

    def _declared_outlets(self, written_uri: str, written_name: Any) -> list[Any]:
        """
        The outlets that name the knowledge base written: its ``dify://`` asset (``written_uri``), or its
        ``dify-knowledge-base://`` asset (this task's connection and ``written_name``).

        Drops the other ``dify://`` and ``dify-knowledge-base://`` outlets from the task's outlets, with a warning:
        their events would tell of a change to a knowledge base this task did not write.
        """
        from airflow.providers.common.compat.sdk import Asset

        from airflow_provider_dify.assets import split_named_uri, split_uri

        declared, others = [], []
        for outlet in self.outlets:
            if not isinstance(outlet, Asset) or not _is_dify_outlet(outlet):
                continue
            try:
                if outlet.uri.startswith(f"{NAMED_SCHEME}://"):
                    names_written = split_named_uri(outlet.uri) == (self.dify_conn_id, written_name)  # type: ignore[attr-defined]
                else:
                    names_written = split_uri(outlet.uri) == split_uri(written_uri)
            except ValueError:  # a malformed URI (kept as written on 2.11): not this knowledge base
                names_written = False
            (declared if names_written else others).append(outlet)
        if others:
            self.log.warning(  # type: ignore[attr-defined]
                "outlets: %s is not the knowledge base this task wrote (%s, named %r): no asset event for it."
                " Declare the knowledge base the task writes: knowledge_base_asset(<its id>, host=<the"
                " connection's host>) or knowledge_base_named(<its name>).",
                ", ".join(str(outlet.uri) for outlet in others),
                written_uri,
                written_name,
            )
            self.outlets = [outlet for outlet in self.outlets if not any(outlet is other for other in others)]
        return declared

    def openlineage_inputs(self) -> list[Any]:
        """
        The OpenLineage datasets the operator read: the tables of its ``sql`` (on ``sql_conn_id``), its ``path``
        prefix, or its ``file``; none for records or text given inline.
        """
        from airflow_provider_dify._openlineage import sql_inputs, storage_inputs

        sql, conn_id = getattr(self, "sql", None), getattr(self, "sql_conn_id", None)
        if isinstance(sql, str) and sql.strip() and conn_id:
            return sql_inputs(str(conn_id), sql)
        for attribute in ("path", "file"):
            if (value := getattr(self, attribute, None)) is not None:
                return storage_inputs(value)
        return []

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the operator's inputs, and the knowledge base it wrote with a facet saying what."""
        try:
            from airflow.providers.openlineage.extractors import OperatorLineage
        except ImportError:
            return None
        from airflow_provider_dify._openlineage import knowledge_base_output

        written = self._knowledge_base_written
        outputs = [] if written is None else [knowledge_base_output(**written)]
        try:
            inputs = self.openlineage_inputs()
        except Exception as error:  # a query the parser does not understand must not lose the output
            self.log.warning("OpenLineage: the inputs could not be told (%s: %s)", type(error).__name__, error)  # type: ignore[attr-defined]
            inputs = []
        return OperatorLineage(inputs=inputs, outputs=outputs)
