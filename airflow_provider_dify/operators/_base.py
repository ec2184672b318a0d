"""What every Dify operator shares: argument checks and the operator base classes.

* argument checks that name the argument (:func:`check_string`, :func:`check_choice`, :func:`check_exactly_one`,
  :func:`check_number`, :func:`check_mapping`, :func:`check_process_rule`, :func:`native_value`), skipping at
  DAG-build time the values rendered only when the task runs (:func:`skip_check`);
* :class:`DifyBaseOperator` (connection, hook, console link) and :class:`DifyIndexingWaitOperator` (waiting for
  indexing, blocking or deferred to :class:`~airflow_provider_dify.triggers.indexing.DifyIndexingTrigger`).
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_dify.exceptions import DifyError
from airflow_provider_dify.hooks.connection import DEFAULT_CONN_ID
from airflow_provider_dify.hooks.validation import check_id, check_no_control, check_poll_interval, refuse
from airflow_provider_dify.links import CONSOLE_URL_XCOM_KEY, DifyConsoleLink, console_url
from airflow_provider_dify.sensors.indexing import IndexingGroupsMixin
from airflow_provider_dify.templating import is_unrendered

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_dify.hooks.dify import DifyHook

PROCESS_RULE_MODES: tuple[str, ...] = ("automatic", "custom", "hierarchical")
#: The XCom key of the manifest kept while a task waits in the triggerer.
MANIFEST_XCOM_KEY = "dify_manifest"


# -- argument checks -------------------------------------------------------------------------------------------


def skip_check(value: Any, build: bool) -> bool:
    """At DAG-build time (``build=True``), values rendered later are not checked yet."""
    return build and is_unrendered(value)


def given(value: Any) -> bool:
    """Whether an optional argument was given: ``None``, ``""`` and a rendered ``"None"`` count as not given."""
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip() not in ("", "None")
    return True


def check_exactly_one(first: str, first_value: Any, second: str, second_value: Any, *, required: bool = True) -> None:
    """Raise unless exactly one of two alternative arguments is given (or neither, when not ``required``)."""
    count = sum(given(value) for value in (first_value, second_value))
    if count > 1 or (required and count == 0):
        got = f"both ({first_value!r} and {second_value!r})." if count > 1 else "neither."
        refuse(f"{first} or {second}", f"pass exactly one of them, got {got}")


def check_dataset_and_document(operator: Any, *, build: bool, document: bool) -> None:
    """Check an operator's ``dataset_id`` xor ``dataset_name`` (and ``document_id`` xor ``document_name``)."""
    check_exactly_one("dataset_id", operator.dataset_id, "dataset_name", operator.dataset_name)
    arguments = ["dataset_id", "dataset_name"]
    if document:
        check_exactly_one("document_id", operator.document_id, "document_name", operator.document_name)
        arguments += ["document_id", "document_name"]
    for argument in arguments:
        value = getattr(operator, argument)
        if given(value) and not skip_check(value, build):
            check_string(value, argument)
            if argument.endswith("_id"):
                check_id(value, argument)
            else:
                check_string(value, argument, single_line=True)


def check_string(
    value: Any, argument: str, *, max_length: int | None = None, single_line: bool = False, text: bool = False
) -> str:
    """A non-blank string, at most ``max_length`` characters; the error names the argument. ``single_line``
    refuses any control character, ``text`` any but tabs and line breaks (NUL, escapes...)."""
    if not isinstance(value, str) or not value.strip():
        refuse(argument, f"must be a non-empty string, got {value!r}.")
    if max_length is not None and len(value) > max_length:
        refuse(argument, f"at most {max_length} characters are allowed, got {len(value)}.")
    if single_line and any(ord(char) < 32 for char in value):
        refuse(argument, f"must not contain line breaks or control characters, got {value!r}.")
    if text:
        check_no_control(value, argument, text=True)
    return value


def check_choice(value: Any, allowed: Sequence[str], argument: str) -> str | None:
    """``None`` or one of ``allowed``."""
    if value is None:
        return None
    if value not in allowed:
        refuse(argument, f"{value!r} is not one of {', '.join(repr(item) for item in allowed)}.")
    return str(value)


def check_number(value: Any, argument: str, *, minimum: float = 0, allow_none: bool = False) -> float | None:
    """A number of at least ``minimum`` (``None`` when allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        refuse(argument, f"must be a number >= {minimum:g}, got {value!r}.")
    return value


def native_value(value: Any, argument: str) -> Any:
    """
    A list or dict argument after templating.

    A Jinja template renders to text (``"[{'content': ...}]"`` or JSON) unless the DAG renders native
    objects; such text is parsed back into the list or dict it shows.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text.startswith(("[", "{")):
        return value
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        refuse(
            argument,
            f"{text[:120]!r} is neither JSON nor a Python literal; render a list or dict, e.g. with"
            " '| tojson', or set render_template_as_native_obj=True on the DAG.",
        )


def check_mapping(value: Any, argument: str) -> dict[str, Any] | None:
    """``None`` or a dict (a rendered template text of a dict is parsed)."""
    value = native_value(value, argument)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        refuse(argument, f"must be a dict, got {type(value).__name__} {value!r}.")
    return dict(value)


def check_process_rule(value: Any, argument: str = "process_rule") -> dict[str, Any] | None:
    """A Dify ``process_rule`` (``{"mode": "automatic"|"custom"|"hierarchical", "rules": {...}}``) or ``None``."""
    rule = check_mapping(value, argument)
    if rule is None:
        return None
    mode = rule.get("mode")
    if mode not in PROCESS_RULE_MODES:
        refuse(f"{argument}['mode']", f"must be one of {', '.join(PROCESS_RULE_MODES)}, got {mode!r}.")
    if mode != "automatic" and not isinstance(rule.get("rules"), Mapping):
        refuse(
            f"{argument}['rules']",
            f"mode {mode!r} needs rules with 'pre_processing_rules' and 'segmentation';"
            " use {'mode': 'automatic'} for Dify's default segmentation.",
        )
    check_parent_child_rule(rule, argument)
    return rule


#: ``rules['parent_mode']`` of a hierarchical process rule: paragraphs as parent chunks, or the whole document.
PARENT_MODES: tuple[str, ...] = ("paragraph", "full-doc")
_PARENT_CHILD_KEYS = ("parent_mode", "subchunk_segmentation")


def check_parent_child_rule(rule: Mapping[str, Any], argument: str = "process_rule") -> None:
    """
    Check the parent-child parts of a process rule where Dify looks for them, since it ignores them elsewhere.

    Dify reads ``parent_mode`` and ``subchunk_segmentation`` only directly under ``rules`` of a rule whose
    ``mode`` is ``hierarchical``; placed inside ``segmentation``, or in a ``custom`` rule, they are silently
    ignored (langgenius/dify issues 27641 and 18456), and a hierarchical rule without them indexes a document
    into zero chunks while the API answers 200 (issues 22270, 22118; newer servers default ``parent_mode``).

    :raises ValueError: naming the misplaced or missing key and where it belongs.
    """
    mode = rule.get("mode")
    rules = rule.get("rules") if isinstance(rule.get("rules"), Mapping) else {}
    segmentation = rules.get("segmentation") if isinstance(rules.get("segmentation"), Mapping) else {}
    if mode != "hierarchical":
        misplaced = [key for key in _PARENT_CHILD_KEYS if key in rules or key in segmentation]
        if misplaced:
            raise ValueError(
                f"{argument}['mode']: {', '.join(misplaced)} only take effect with mode 'hierarchical' (Dify ignores"
                f" them in a {mode!r} rule); pass {{'mode': 'hierarchical', ...}} with doc_form='hierarchical_model'."
            )
        return
    for key in _PARENT_CHILD_KEYS:
        if key in segmentation:
            raise ValueError(
                f"{argument}['rules']['segmentation']['{key}']: move it up to {argument}['rules']['{key}'];"
                " Dify ignores it inside segmentation."
            )
    parent_mode = rules.get("parent_mode")
    if parent_mode not in PARENT_MODES:
        raise ValueError(
            f"{argument}['rules']['parent_mode']: must be one of {', '.join(map(repr, PARENT_MODES))}, got"
            f" {parent_mode!r}; without it Dify indexes the document into no chunk at all."
        )
    child = rules.get("subchunk_segmentation")
    if not isinstance(child, Mapping):
        raise ValueError(
            f"{argument}['rules']['subchunk_segmentation']: a hierarchical rule needs the child chunks' segmentation,"
            " e.g. {'separator': '\\n', 'max_tokens': 200}; without it Dify indexes the document into no chunk."
        )
    where = f"{argument}['rules']['subchunk_segmentation']"
    if not isinstance(child.get("separator"), str) or not child["separator"]:
        raise ValueError(f"{where}['separator']: must be a non-empty string, got {child.get('separator')!r}.")
    child_tokens = child.get("max_tokens")
    if not isinstance(child_tokens, int) or isinstance(child_tokens, bool) or child_tokens < 1:
        raise ValueError(f"{where}['max_tokens']: must be a whole number >= 1, got {child_tokens!r}.")
    parent_tokens = segmentation.get("max_tokens")
    if parent_mode == "paragraph":
        if not isinstance(parent_tokens, int) or isinstance(parent_tokens, bool) or parent_tokens < 1:
            raise ValueError(
                f"{argument}['rules']['segmentation']['max_tokens']: the parent chunks' size is needed with"
                f" parent_mode 'paragraph', got {parent_tokens!r}."
            )
        if child_tokens >= parent_tokens:
            raise ValueError(
                f"{where}['max_tokens']: child chunks ({child_tokens}) must be smaller than their parent chunks"
                f" (segmentation max_tokens {parent_tokens})."
            )


@contextlib.contextmanager
def bad_arguments_fail_the_task() -> Iterator[None]:
    """Turn a ``ValueError`` (a wrong argument or input) into a task failure that Airflow does not retry:
    a :class:`~airflow_provider_dify.exceptions.DifyArgumentError` (an ``AirflowFailException``) naming the
    argument."""
    from airflow_provider_dify.exceptions import DifyArgumentError

    try:
        yield
    except DifyArgumentError:
        raise
    except ValueError as error:
        message = str(error)
        argument = message.split(":", 1)[0].strip() if ":" in message else "argument"
        raise DifyArgumentError(message, argument=argument) from None


#: ``xcom_pull('<task id>'`` or ``xcom_pull(task_ids='<task id>'`` in a Jinja template.
_XCOM_PULL = re.compile(r"""xcom_pull\(\s*(?:task_ids\s*=\s*)?(['"])(.+?)\1""")


def xcom_sources_not_upstream(operator: Any) -> list[str]:
    """
    The tasks whose XCom a template field of ``operator`` pulls by task id but that do not run before it.

    A pull in a Jinja string (``"{{ ti.xcom_pull(task_ids='kb') }}"``) makes no dependency, unlike
    ``kb.output``; without ``kb >> task`` the task may run first and pull nothing.
    """
    pulled: set[str] = set()
    for name in getattr(operator, "template_fields", ()):
        value = getattr(operator, name, None)
        values = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
        for text in values:
            if isinstance(text, str):
                pulled.update(match.group(2) for match in _XCOM_PULL.finditer(text))
    if not pulled or getattr(operator, "dag", None) is None:
        return []
    try:
        before = operator.get_flat_relative_ids(upstream=True)
    except Exception:  # a hint must never hide the real error
        return []
    return sorted(task_id for task_id in pulled - before if task_id != operator.task_id)


# -- operator base classes -----------------------------------------------------------------------------------------


class DifyBaseOperator(BaseOperator):
    """
    Base of the Dify operators: the ``dify`` connection, its hook, and the "Dify" console link.

    :param dify_conn_id: the ``dify`` connection (API base URL as host, knowledge API key as password).
    """

    operator_extra_links = (DifyConsoleLink(),)
    ui_color = "#e8f0fe"

    def __init__(self, *, dify_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dify_conn_id = dify_conn_id

    def render_template(self, content: Any, context: Any, jinja_env: Any = None, seen_oids: Any = None) -> Any:
        """
        Render a templated value as Airflow does, but keep a plain string that ends with a newline as it is.

        Jinja drops one trailing newline of every string it renders, so a segmentation separator ``"\\n"``
        would reach Dify as ``""`` and ``"\\n\\n"`` as ``"\\n"``. A string without template markers is not a
        template; only those that end with a newline are spared (rendering leaves every other one unchanged).
        """
        if (
            isinstance(content, str)
            and content.endswith("\n")
            and not any(marker in content for marker in ("{{", "{%", "{#"))
            and not content.endswith(tuple(self.template_ext))
        ):
            return content
        return super().render_template(content, context, jinja_env, seen_oids)

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """
        Render the template fields as Airflow does; when that fails and a field pulls the XCom of a task that
        does not run before this one, say so on the error (the usual cause: ``kb >> task`` is missing).
        """
        try:
            super().render_template_fields(context, jinja_env)
        except Exception as error:
            missing = xcom_sources_not_upstream(self)
            if missing:
                names = ", ".join(repr(task_id) for task_id in missing)
                error.add_note(
                    f"{self.task_id}: its template fields pull the XCom of {names}, which does not run before it,"
                    f" so there may be nothing to pull yet. Set the order ({missing[0]} >> {self.task_id});"
                    " an xcom_pull in a Jinja string makes no dependency."
                )
            raise

    @cached_property
    def hook(self) -> DifyHook:
        """The sync hook of ``dify_conn_id``."""
        from airflow_provider_dify.hooks.dify import DifyHook

        return DifyHook(dify_conn_id=self.dify_conn_id)

    def push_console_url(self, context: Context, dataset_id: str, document_id: str | None = None) -> str:
        """Push the console URL of the knowledge base (or document) for the "Dify" link; return it."""
        url = console_url(self.hook.settings.console_url, dataset_id, document_id)
        context["ti"].xcom_push(key=CONSOLE_URL_XCOM_KEY, value=url)
        return url


class DifyIndexingWaitOperator(IndexingGroupsMixin, DifyBaseOperator):
    """
    Base of the operators that wait for Dify to index documents, in the worker or in the triggerer.

    :param deferrable: wait in the triggerer (:class:`~airflow_provider_dify.triggers.indexing.DifyIndexingTrigger`)
        instead of a worker slot; defaults to Airflow's ``[operators] default_deferrable``.
    :param indexing_timeout: seconds to wait for the indexing before the task fails.
    :param poll_interval: seconds between two polls of the indexing status.
    :param stall_timeout: seconds without any progress before the wait fails as stalled (``None``: never).
    """

    def __init__(
        self,
        *,
        deferrable: bool | None = None,
        indexing_timeout: float = 3600,
        poll_interval: float = 5,
        stall_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if deferrable is None:
            deferrable = conf.getboolean("operators", "default_deferrable", fallback=False)
        self.deferrable = bool(deferrable)
        self.indexing_timeout = check_number(indexing_timeout, "indexing_timeout", minimum=0)
        self.poll_interval = check_poll_interval(poll_interval, "poll_interval")
        self.stall_timeout = check_number(stall_timeout, "stall_timeout", minimum=0, allow_none=True)

    def wait_until_indexed(
        self,
        context: Context,
        *,
        dataset_id: str,
        batch: str | None,
        document_ids: list[str],
        manifest: dict[str, Any] | None = None,
        method_name: str = "execute_complete",
    ) -> list[dict[str, Any]]:
        """
        Wait until the documents are indexed; return their indexing results.

        Deferrable: check once, and if indexing still runs, defer to the trigger; the task resumes in
        ``method_name(context, event, manifest=manifest)``. Otherwise poll in the worker.
        """
        from airflow_provider_dify.hooks.indexing import check_indexing, record_failed_poll, wait_for_indexing

        if not self.deferrable:
            return wait_for_indexing(
                self.hook,
                dataset_id,
                batch=batch,
                document_ids=document_ids,
                timeout=self.indexing_timeout,
                poll_interval=self.poll_interval,
                stall_timeout=self.stall_timeout,
            )
        progress: dict[str, Any] | None = None
        try:
            outcome = check_indexing(
                self.hook, dataset_id, batch=batch, document_ids=document_ids, stall_timeout=self.stall_timeout
            )
        except DifyError as error:
            progress, fatal = record_failed_poll(None, error)
            if fatal is not None:
                raise fatal from error
        else:
            if outcome.state != "running":
                return outcome.raise_for_state()
            progress = outcome.progress
        self._defer(context, dataset_id, batch, document_ids, manifest, method_name, progress)

    def _defer(
        self,
        context: Context,
        dataset_id: str,
        batch: str | None,
        document_ids: list[str],
        manifest: dict[str, Any] | None,
        method_name: str,
        progress: dict[str, Any] | None,
    ) -> NoReturn:
        from airflow_provider_dify.sensors.indexing import defer_for_indexing

        if manifest is not None:
            # dag.test() resumes a task with the trigger's event only, without the deferral's kwargs: keep a copy.
            context["ti"].xcom_push(key=MANIFEST_XCOM_KEY, value=manifest)
        defer_for_indexing(
            self,
            dify_conn_id=self.dify_conn_id,
            dataset_id=dataset_id,
            batch=batch,
            document_ids=document_ids,
            timeout=self.indexing_timeout,
            poll_interval=self.poll_interval,
            stall_timeout=self.stall_timeout,
            method_name=method_name,
            kwargs={"manifest": manifest} if manifest is not None else None,
            progress=progress,
        )

    def resumed_manifest(
        self, context: Context, event: Mapping[str, Any] | None, manifest: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """After the trigger: validate its event, return the manifest with the indexing results added."""
        from airflow_provider_dify.hooks.indexing import indexing_results_from_event

        documents = indexing_results_from_event(event)
        if manifest is None:
            ti = context["ti"]
            manifest = ti.xcom_pull(task_ids=ti.task_id, key=MANIFEST_XCOM_KEY, map_indexes=ti.map_index)
        result = dict(manifest or {})
        result["indexing"] = documents
        return result
