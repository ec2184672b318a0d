"""DifyIndexingSensor: wait until Dify has indexed documents, in poke, reschedule or deferrable mode."""

from __future__ import annotations

import ast
import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import AirflowSkipException, BaseSensorOperator, PokeReturnValue, conf

from airflow_provider_dify.exceptions import DifyError, DifyIndexingError
from airflow_provider_dify.hooks.connection import DEFAULT_CONN_ID
from airflow_provider_dify.hooks.indexing import (
    check_indexing,
    indexing_error,
    indexing_results_from_event,
    record_failed_poll,
    validate_wait_arguments,
)
from airflow_provider_dify.templating import is_unrendered

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, Context

    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.hooks.indexing import PollOutcome

#: Key of the progress snapshot in Airflow's task state store (reschedule mode, Airflow 3.3+).
PROGRESS_STATE_KEY = "dify_indexing_progress"


#: The most document ids one trigger is given. Airflow keeps a trigger's arguments encrypted in a TEXT column of
#: its metadata DB (65,535 bytes on MySQL), about 53 bytes an id: a wait on more documents is waited on a group
#: at a time (:class:`IndexingGroupsMixin`), the whole list travelling in the task's own resume arguments.
TRIGGER_DOCUMENT_LIMIT = 500
#: The method a task resumes in after one group's trigger (:class:`IndexingGroupsMixin`).
GROUP_RESUME_METHOD = "execute_indexing_group_done"
#: The XCom key of a grouped wait's state (``dag.test()`` resumes a task with the trigger's event only).
WAIT_XCOM_KEY = "dify_indexing_wait"


def defer_for_indexing(
    operator: BaseOperator,
    *,
    dify_conn_id: str,
    dataset_id: str,
    batch: str | None,
    document_ids: list[str] | None,
    timeout: float,
    poll_interval: float,
    stall_timeout: float | None,
    method_name: str,
    kwargs: dict | None = None,
    progress: dict | None = None,
    end_time: float | None = None,
) -> NoReturn:
    """
    Defer ``operator`` to a :class:`~airflow_provider_dify.triggers.indexing.DifyIndexingTrigger`.

    The trigger's deadline is ``timeout`` seconds from now, and ``timeout`` is also Airflow's deferral timeout.
    The task resumes in ``method_name(context, event, **kwargs)``; read the event with
    :func:`~airflow_provider_dify.hooks.indexing.indexing_results_from_event`. A wait on more than
    :data:`TRIGGER_DOCUMENT_LIMIT` documents, by an operator with :class:`IndexingGroupsMixin`, defers on the
    unfinished ones a group at a time, so that the trigger's stored arguments stay small; ``method_name`` then
    gets one event for them all.

    :param operator: the operator to defer.
    :param dify_conn_id: the ``dify`` connection.
    :param dataset_id: the knowledge base.
    :param batch: the batch id of the create or update call, if any.
    :param document_ids: the documents to wait for, if known.
    :param timeout: seconds before the wait ends with a ``timeout`` event.
    :param poll_interval: seconds between polls.
    :param stall_timeout: seconds without movement before a ``stalled`` event (``None``: never).
    :param method_name: the operator's method that resumes the task.
    :param kwargs: extra keyword arguments for ``method_name`` (plain JSON).
    :param progress: the snapshot of a check made before deferring, so stall detection carries over.
    :param end_time: the wait's deadline (epoch seconds) when it began before (default: ``timeout`` from now).
    """
    from datetime import timedelta

    from airflow_provider_dify.hooks.indexing import group_snapshot, settled_document_ids
    from airflow_provider_dify.triggers.indexing import DifyIndexingTrigger

    end_time = time.time() + timeout if end_time is None else end_time
    ids = list(document_ids) if document_ids is not None else None
    trigger_ids, trigger_progress, resume_method, resume_kwargs = ids, progress, method_name, kwargs
    if ids is not None and len(ids) > TRIGGER_DOCUMENT_LIMIT and isinstance(operator, IndexingGroupsMixin):
        settled = settled_document_ids(progress, ids)
        trigger_ids = [document_id for document_id in ids if document_id not in settled][:TRIGGER_DOCUMENT_LIMIT]
        trigger_ids = trigger_ids or ids[:TRIGGER_DOCUMENT_LIMIT]
        # Not the snapshot itself (its per-document bits describe the whole list): what holds for every document.
        trigger_progress = group_snapshot(progress)
        resume_method = GROUP_RESUME_METHOD
        resume_kwargs = {
            "wait": {
                "dify_conn_id": dify_conn_id,
                "dataset_id": dataset_id,
                "batch": batch,
                "document_ids": ids,
                "timeout": timeout,
                "end_time": end_time,
                "poll_interval": poll_interval,
                "stall_timeout": stall_timeout,
                "method_name": method_name,
                "kwargs": kwargs,
                "progress": progress,
            }
        }
        from airflow.providers.common.compat.sdk import get_current_context

        # Without the method's own kwargs: dag.test() drops those of every deferral (the manifest has its copy).
        kept = {name: value for name, value in resume_kwargs["wait"].items() if name != "kwargs"}
        get_current_context()["ti"].xcom_push(key=WAIT_XCOM_KEY, value=kept)
    trigger = DifyIndexingTrigger(
        dataset_id=dataset_id,
        batch=batch,
        document_ids=trigger_ids,
        dify_conn_id=dify_conn_id,
        poll_interval=poll_interval,
        stall_timeout=stall_timeout,
        end_time=end_time,
        progress=trigger_progress,
    )
    operator.defer(
        trigger=trigger,
        method_name=resume_method,
        kwargs=resume_kwargs,
        timeout=timedelta(seconds=max(1.0, end_time - time.time())),
    )


class IndexingGroupsMixin:
    """
    Lets an operator that defers with :func:`defer_for_indexing` wait on any number of documents.

    The trigger of a wait on more than :data:`TRIGGER_DOCUMENT_LIMIT` documents is given a group of them at a
    time; when one group is indexed the task resumes here, checks every document once, and either resumes in
    the wait's own method with one event for them all or defers on the next group of unfinished ones. The
    operator needs a ``hook`` (:class:`~airflow_provider_dify.hooks.dify.DifyHook`).
    """

    def execute_indexing_group_done(
        self, context: Context, event: Mapping[str, Any] | None = None, wait: Mapping[str, Any] | None = None
    ) -> Any:
        """Resume after one group's trigger (see :class:`IndexingGroupsMixin`)."""
        if wait is None:  # dag.test() resumes with the event only
            ti = context["ti"]
            wait = ti.xcom_pull(task_ids=ti.task_id, key=WAIT_XCOM_KEY, map_indexes=ti.map_index)
        if not isinstance(wait, Mapping):
            raise DifyIndexingError("The task resumed from a grouped indexing wait whose state is lost.")
        return _resume_after_group(self, context, event, wait)


def _resume_after_group(
    operator: Any, context: Context, event: Mapping[str, Any] | None, wait: Mapping[str, Any]
) -> Any:
    """A group's trigger fired: one that did not succeed ends the wait with its event; otherwise check every
    document once, and end the wait with one event for them all or defer on the next group."""
    from airflow_provider_dify.hooks.indexing import indexing_event, timeout_message

    method = getattr(operator, wait["method_name"])
    kwargs = wait.get("kwargs") or {}
    if not isinstance(event, Mapping) or event.get("status") != "success":
        return method(context, event, **kwargs)
    dataset_id, batch, document_ids = wait["dataset_id"], wait["batch"], list(wait["document_ids"])
    progress = wait.get("progress")
    try:
        outcome = check_indexing(
            operator.hook,
            dataset_id,
            batch=batch,
            document_ids=document_ids,
            progress=progress,
            stall_timeout=wait.get("stall_timeout"),
        )
    except DifyError as error:
        progress, fatal = record_failed_poll(progress, error)
        if fatal is not None:
            raise fatal from error
    else:
        if outcome.state != "running":
            status = "success" if outcome.state == "success" else outcome.state
            event = indexing_event(
                status, outcome.message, dataset_id=dataset_id, batch=batch, documents=outcome.documents
            )
            return method(context, event, **kwargs)
        progress = outcome.progress
        if time.time() >= float(wait["end_time"]):
            message = timeout_message(wait.get("timeout"), outcome.documents)
            event = indexing_event("timeout", message, dataset_id=dataset_id, batch=batch, documents=outcome.documents)
            return method(context, event, **kwargs)
    defer_for_indexing(
        operator,
        dify_conn_id=wait["dify_conn_id"],
        dataset_id=dataset_id,
        batch=batch,
        document_ids=document_ids,
        timeout=float(wait["timeout"]),
        poll_interval=float(wait["poll_interval"]),
        stall_timeout=wait.get("stall_timeout"),
        method_name=wait["method_name"],
        kwargs=wait.get("kwargs"),
        progress=progress,
        end_time=float(wait["end_time"]),
    )


def _is_list_of_strings(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value)


def _rendered_batch(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return None if value in ("", "None") else value
    raise ValueError(f"batch: must be a batch id string, got {type(value).__name__} {value!r}.")


def _rendered_document_ids(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "None"):
            return None
        if not text.startswith("["):
            return [text]
        try:  # a Jinja expression rendered to text: "['id1', 'id2']" or the JSON of | tojson
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ValueError(
                f"document_ids: {text[:200]!r} is not a list of ids; render a list, for example"
                " \"{{ ti.xcom_pull('create')['document_ids'] | tojson }}\"."
            ) from None
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    raise ValueError(f"document_ids: must be a list of document ids, got {type(value).__name__} {value!r}.")


def _check_ids_given(dataset_id: Any, batch: Any, document_ids: Any) -> None:
    """At DAG-build time, check the ids that are not templates (the rendered ones are checked when poked)."""
    from airflow_provider_dify.hooks.validation import check_batch, check_id

    if not is_unrendered(dataset_id):
        check_id(dataset_id, "dataset_id")
    if isinstance(batch, str) and batch.strip() and not is_unrendered(batch):
        check_batch(batch)
    if isinstance(document_ids, (list, tuple)) and not is_unrendered(document_ids):
        for index, doc_id in enumerate(document_ids):
            check_id(doc_id, f"document_ids[{index}]")


class DifyIndexingSensor(IndexingGroupsMixin, BaseSensorOperator):
    """
    Wait until Dify has indexed documents of a knowledge base, and return their per-document results.

    Succeeds when every document is ``completed`` and returns (to XCom) one result per document: ``id``,
    ``name`` (when known), ``indexing_status``, ``completed_segments``, ``total_segments``, ``error``,
    ``enabled`` and ``archived`` (when known), and ``indexing_seconds``. Fails at once, naming the document and
    Dify's error text, when a document ends in ``error``, ``paused`` or ``stopped``, or is deleted or archived
    while waited on; fails with a "stalled" message when nothing moved for ``stall_timeout``. With
    ``soft_fail=True`` each of these, and the ``timeout``, ends the task ``skipped`` instead.

    Pass what a create/update operator returned, through Jinja::

        DifyIndexingSensor(
            task_id="wait",
            dataset_id="{{ ti.xcom_pull('create')['dataset_id'] }}",
            batch="{{ ti.xcom_pull('create')['batch'] }}",
            document_ids="{{ ti.xcom_pull('create')['document_ids'] | tojson }}",
        )

    Give ``document_ids`` when you can: after a same-name upsert Dify answers 404 for the older batch, and the
    sensor then follows the documents one by one (with only a batch, it follows the documents that earlier
    polls saw).

    Modes: ``poke`` holds a worker slot and polls every ``poke_interval``; ``reschedule`` frees the slot
    between polls (stall detection across polls needs Airflow 3.3's task state store there); ``deferrable``
    checks once, then waits in the triggerer (:class:`~airflow_provider_dify.triggers.indexing.DifyIndexingTrigger`).
    All three use the same check. Each poll is one read by batch (once the batch is gone: one read per unfinished
    document, or pages of the document list when more than 10 are unfinished). Reads
    are not counted by Dify's knowledge rate limit; the default ``poke_interval`` of 30 s is still chosen for
    Dify Cloud, a shared service with per-minute request budgets: 2 requests a minute per sensor, at the cost of
    noticing completion up to 30 s late. On a self-hosted Dify, 5 s is reasonable.

    :param dataset_id: the knowledge base id (templated).
    :param batch: the batch id of a create or update call (templated). A rendered ``""`` or ``"None"`` counts
        as not given.
    :param document_ids: the documents to wait for (templated): a list of ids, or a Jinja expression that
        renders a list (``"['a', 'b']"`` or JSON) or one id. With ``batch``, only these documents of the batch.
    :param dify_conn_id: the ``dify`` connection.
    :param stall_timeout: seconds without any change of status or chunk count before the wait fails as
        stalled; ``None`` (default) disables it. Indexing is queued per workspace, so documents of other
        writers ahead in the queue make ours wait without moving: choose it above that delay.
    :param deferrable: wait in the triggerer; defaults to Airflow's ``[operators] default_deferrable``.
    :param poke_interval: seconds between polls (default 30).
    """

    template_fields: Sequence[str] = ("dataset_id", "batch", "document_ids")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        dataset_id: str,
        batch: str | None = None,
        document_ids: list[str] | str | None = None,
        dify_conn_id: str = DEFAULT_CONN_ID,
        stall_timeout: float | None = None,
        deferrable: bool | None = None,
        poke_interval: float = 30,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_dify.hooks.validation import check_poll_interval

        check_poll_interval(poke_interval, "poke_interval")
        super().__init__(poke_interval=poke_interval, **kwargs)
        if not isinstance(dataset_id, str) or not dataset_id.strip():
            raise ValueError(f"dataset_id: must be a knowledge base id (or a Jinja template), got {dataset_id!r}.")
        if batch is not None and not isinstance(batch, str):
            raise ValueError(f"batch: must be a batch id string (or a Jinja template), got {batch!r}.")
        if not (document_ids is None or isinstance(document_ids, str) or _is_list_of_strings(document_ids)):
            raise ValueError(f"document_ids: must be a list of id strings (or a Jinja template), got {document_ids!r}.")
        if not batch and not document_ids:
            raise ValueError(
                "batch or document_ids: DifyIndexingSensor needs the batch of a create/update call, the ids of the"
                " documents to wait for, or both; for example batch=\"{{ ti.xcom_pull('create')['batch'] }}\"."
            )
        if stall_timeout is not None and (
            isinstance(stall_timeout, bool) or not isinstance(stall_timeout, (int, float)) or stall_timeout <= 0
        ):
            raise ValueError(f"stall_timeout: must be a number of seconds > 0 (or None), got {stall_timeout!r}.")
        _check_ids_given(dataset_id, batch, document_ids)
        self.dataset_id = dataset_id
        self.batch = batch
        self.document_ids = list(document_ids) if isinstance(document_ids, (list, tuple)) else document_ids
        self.dify_conn_id = dify_conn_id
        self.stall_timeout = stall_timeout
        if deferrable is None:
            deferrable = conf.getboolean("operators", "default_deferrable", fallback=False)
        self.deferrable = bool(deferrable)
        self._progress: dict[str, Any] | None = None

    @cached_property
    def hook(self) -> DifyHook:
        """The sync hook of ``dify_conn_id``."""
        from airflow_provider_dify.hooks.dify import DifyHook

        return DifyHook(dify_conn_id=self.dify_conn_id)

    def _wait_arguments(self) -> tuple[str, str | None, list[str] | None]:
        """The rendered, validated ``dataset_id``, ``batch`` and ``document_ids``."""
        dataset_id = self.dataset_id.strip() if isinstance(self.dataset_id, str) else self.dataset_id
        batch = _rendered_batch(self.batch)
        document_ids = _rendered_document_ids(self.document_ids)
        validate_wait_arguments(dataset_id, batch, document_ids)
        return dataset_id, batch, document_ids

    # -- progress between polls ------------------------------------------------------------------------------

    def _state_store(self, context: Context) -> Any:
        return context.get("task_state_store") if self.reschedule and not self.deferrable else None

    def _load_progress(self, context: Context) -> dict[str, Any] | None:
        if self.reschedule and not self.deferrable:
            store = self._state_store(context)
            if store is None:
                if self.stall_timeout is not None:
                    self.log.warning(
                        "stall_timeout needs Airflow's task state store (Airflow 3.3+) in reschedule mode to remember"
                        " progress between polls; only the timeout applies here."
                    )
                return None
            stored = store.get(PROGRESS_STATE_KEY)
            return stored if isinstance(stored, dict) else None
        return self._progress

    def _save_progress(self, context: Context, progress: dict[str, Any] | None) -> None:
        self._progress = progress
        store = self._state_store(context)
        if store is not None:
            if progress is None:
                store.delete(PROGRESS_STATE_KEY)
            else:
                store.set(PROGRESS_STATE_KEY, progress)

    # -- the checks ------------------------------------------------------------------------------------------

    def _fail(self, error: DifyError) -> NoReturn:
        if self.soft_fail or getattr(self, "never_fail", False):
            raise AirflowSkipException(f"Skipped (soft_fail): {error}") from error
        raise error

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Check the indexing once; ``True`` with the per-document results as XCom when all are completed."""
        dataset_id, batch, document_ids = self._wait_arguments()
        progress = self._load_progress(context)
        try:
            outcome: PollOutcome = check_indexing(
                self.hook,
                dataset_id,
                batch=batch,
                document_ids=document_ids,
                progress=progress,
                stall_timeout=self.stall_timeout,
            )
        except DifyError as error:
            progress, fatal = record_failed_poll(progress, error)
            if fatal is not None:
                self._save_progress(context, None)
                self._fail(fatal)
            self._save_progress(context, progress)
            self.log.warning("Polling the indexing status failed (%d in a row): %s", progress["failed_polls"], error)
            return False
        if outcome.state == "running":
            self._save_progress(context, outcome.progress)
            self.log.info("%s", outcome.message)
            return False
        self._save_progress(context, None)
        if outcome.state == "success":
            self.log.info("%s", outcome.message)
            return PokeReturnValue(is_done=True, xcom_value=outcome.documents)
        self._fail(indexing_error(outcome.message, outcome.documents))

    def execute(self, context: Context) -> Any:
        """Poke or reschedule as configured; when deferrable, check once and defer if still indexing."""
        self.poke_interval = self.hook.settings.poll_wait(self.poke_interval)  # the connection may cap it
        if not self.deferrable:
            return super().execute(context)
        done = self.poke(context)
        if done:
            return done.xcom_value if isinstance(done, PokeReturnValue) else None
        dataset_id, batch, document_ids = self._wait_arguments()
        defer_for_indexing(
            self,
            dify_conn_id=self.dify_conn_id,
            dataset_id=dataset_id,
            batch=batch,
            document_ids=document_ids,
            timeout=self.timeout,
            poll_interval=self.poke_interval,
            stall_timeout=self.stall_timeout,
            method_name="execute_complete",
            progress=self._progress,
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """
        Resume after the trigger: return the per-document results, as the poke mode does, or raise.

        The trigger's event names at most a few documents (its size stays bounded however many are waited on);
        when it left some out, the final results are read once here, from the paged document list.
        """
        try:
            documents = indexing_results_from_event(event)
        except DifyIndexingError as error:
            self._fail(error)
        counts = (event or {}).get("counts") or {}
        if (event or {}).get("truncated"):
            dataset_id, batch, document_ids = self._wait_arguments()
            outcome = check_indexing(self.hook, dataset_id, batch=batch, document_ids=document_ids)
            if outcome.state == "success":
                documents = outcome.documents
            else:  # changed since the trigger's last poll (re-indexed by someone): the event's word stands
                self.log.warning("Reading the final results again found: %s", outcome.message)
        self.log.info("%d document(s) indexed", counts.get("documents", len(documents)))
        return documents
