"""
The knowledge pipeline routes of the emulator (``runtime_mode=rag_pipeline`` knowledge bases, Dify 1.9+).

A pipeline knowledge base is made in Dify's console (there is no Service API route to create one), so tests seed
it with `DifyEmulator.create_pipeline_dataset()`.
Modelled as the reference describes and as Dify's published pipeline run behaves:

- ``POST /datasets/pipeline/file-upload`` stores a file (201) whose id is a ``local_file`` item's ``reference``;
- ``GET .../pipeline/datasource-plugins`` lists the pipeline's datasource nodes;
- ``POST .../pipeline/datasource/nodes/{node_id}/run`` answers an event stream describing what the node fetches;
- ``POST .../pipeline/run`` with ``is_published: true`` creates one document per datasource item at once, all in
  one new batch, answers ``{batch, dataset, documents}`` and indexes them through the emulator's indexing queue
  (with the pipeline's chunk settings); with ``is_published: false`` (a debug run) it creates nothing and
  answers the workflow result. Failures answer 500 ``pipeline_run_error``, as Dify wraps them.

Not modelled: real datasource plugins (a ``website_crawl`` or ``online_document`` item becomes a document whose
text is the item's title and address), credentials, and the pipeline's own LLM or code nodes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.testing.errors import ApiError, F, validate
from airflow_provider_dify.testing.exchange import Ctx, Response, ok
from airflow_provider_dify.testing.models import Dataset
from airflow_provider_dify.testing.routes import Endpoint, _file_part
from airflow_provider_dify.testing.state import new_id

if TYPE_CHECKING:
    from airflow_provider_dify.testing.state import EmulatorState

DATASOURCE_TYPES = ("local_file", "online_document", "website_crawl", "online_drive")
#: The datasource node every seeded pipeline has unless told otherwise.
DEFAULT_NODE = {
    "node_id": "1750000000000",
    "plugin_id": "langgenius/file",
    "provider_name": "file",
    "datasource_type": "local_file",
    "title": "File",
    "user_input_variables": [],
    "credentials": [],
}


@dataclass
class Pipeline:
    """
    The published knowledge pipeline of a ``rag_pipeline`` knowledge base.

    :param id: pipeline id (the knowledge base's ``pipeline_id``).
    :param nodes: its datasource nodes, as ``GET .../pipeline/datasource-plugins`` lists them.
    :param chunk_structure: the document form its knowledge-index node writes (``text_model``,
        ``hierarchical_model`` or ``qa_model``).
    :param process_rule: how its chunker splits the documents (a Service API ``process_rule``).
    :param runs: the published runs, newest last: ``{batch, document_ids, inputs, start_node_id}``.
    """

    id: str
    nodes: list[dict[str, Any]]
    chunk_structure: str = "text_model"
    process_rule: dict[str, Any] = field(default_factory=lambda: {"mode": "automatic"})
    runs: list[dict[str, Any]] = field(default_factory=list)


def pipeline_of(state: EmulatorState, ds: Dataset) -> Pipeline | None:
    """The pipeline of a knowledge base, or ``None`` for a ``general`` one."""
    return ds.pipeline


def add_pipeline(
    state: EmulatorState,
    ds: Dataset,
    *,
    nodes: list[dict[str, Any]] | None = None,
    chunk_structure: str = "text_model",
    process_rule: dict[str, Any] | None = None,
) -> Pipeline:
    """Turn a knowledge base into a ``rag_pipeline`` one with a published pipeline."""
    checked = []
    for node in nodes or [DEFAULT_NODE]:
        item = {**DEFAULT_NODE, **node}
        if item["datasource_type"] not in DATASOURCE_TYPES:
            raise ValueError(f"datasource_type must be one of {', '.join(DATASOURCE_TYPES)}")
        checked.append(item)
    pipeline = Pipeline(new_id(), checked, chunk_structure, dict(process_rule or {"mode": "automatic"}))
    ds.pipeline = pipeline
    ds.doc_form = chunk_structure
    return pipeline


def dataset_fields(state: EmulatorState, ds: Dataset) -> dict[str, Any]:
    """The dataset fields a pipeline changes: ``pipeline_id``, ``runtime_mode``, ``chunk_structure``..."""
    pipeline = pipeline_of(state, ds)
    if pipeline is None:
        return {}
    return {
        "pipeline_id": pipeline.id,
        "runtime_mode": "rag_pipeline",
        "chunk_structure": pipeline.chunk_structure,
        "is_published": True,
    }


def _pipeline(ctx: Ctx) -> Pipeline:
    pipeline = pipeline_of(ctx.state, ctx.dataset)
    if pipeline is None:
        raise ApiError(400, "invalid_param", "Pipeline not found")
    return pipeline


def _run_error(message: str) -> ApiError:
    return ApiError(500, "pipeline_run_error", message)


# --------------------------------------------------------------------------------------------------
# handlers
# --------------------------------------------------------------------------------------------------

NODE_RUN = (
    F("inputs", "dict", required=True, nullable=False),
    F("datasource_type", required=True, nullable=False, choices=DATASOURCE_TYPES),
    F("credential_id", "str"),
    F("is_published", "bool", required=True, nullable=False),
)
PIPELINE_RUN = (
    F("inputs", "dict", required=True, nullable=False),
    F("datasource_type", required=True, nullable=False, choices=DATASOURCE_TYPES),
    F("datasource_info_list", "list", required=True, nullable=False),
    F("start_node_id", "str", required=True, nullable=False),
    F("is_published", "bool", required=True, nullable=False),
    F("response_mode", required=True, nullable=False, choices=("streaming", "blocking")),
)


def upload_file(ctx: Ctx) -> Response:
    """``POST /datasets/pipeline/file-upload``: 201 with the stored file (``created_at`` as ISO text)."""
    part = _file_part(ctx, required=True)
    assert part is not None and part.filename is not None
    upload, _text = ctx.state.store_upload(part.filename, part.data, for_update=True, now=ctx.now)
    created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(upload.created_at))
    body = {
        "id": upload.id,
        "name": upload.name,
        "size": upload.size,
        "extension": upload.extension,
        "mime_type": upload.mime_type,
        "created_by": upload.created_by,
        "created_at": created,
    }
    return ok(body, status=201)


def datasource_plugins(ctx: Ctx) -> Response:
    """``GET .../pipeline/datasource-plugins``: a bare list of the datasource nodes."""
    return ok([dict(node) for node in _pipeline(ctx).nodes])


def _node(pipeline: Pipeline, node_id: str, datasource_type: str) -> dict[str, Any]:
    node = next((n for n in pipeline.nodes if n["node_id"] == node_id), None)
    if node is None:
        raise _run_error(f"Datasource node {node_id} not found")
    if node["datasource_type"] != datasource_type:
        raise _run_error(f"Datasource node {node_id} is a {node['datasource_type']} node, not {datasource_type}")
    return node


def _sse(events: list[dict[str, Any]]) -> Response:
    body = "".join(f"data: {json.dumps(event, ensure_ascii=False)}\n\n" for event in events)
    return Response(200, body, content_type="text/event-stream")


def run_node(ctx: Ctx) -> Response:
    """``POST .../pipeline/datasource/nodes/{node_id}/run``: an event stream of what the node fetched."""
    values = validate("DatasourceNodeRunPayload", NODE_RUN, ctx.req.payload())
    pipeline = _pipeline(ctx)
    node = _node(pipeline, ctx.req.params["node_id"], values["datasource_type"])
    started = int(ctx.now)
    return _sse(
        [
            {"event": "datasource_processing", "total": 1, "completed": 0},
            {
                "event": "datasource_completed",
                "data": [{"node_id": node["node_id"], "inputs": values["inputs"]}],
                "time_consuming": 0.0,
                "created_at": started,
            },
        ]
    )


def _item_document(ctx: Ctx, kind: str, item: dict[str, Any], index: int) -> tuple[str, str, Any]:
    """The name, text and stored file of the document a datasource item becomes."""
    state = ctx.state
    if kind == "local_file":
        reference = item.get("reference") or item.get("related_id")
        upload = state.files.get(str(reference)) if reference else None
        if upload is None:
            raise _run_error(f"datasource_info_list[{index}]: file {reference!r} not found")
        from airflow_provider_dify.testing.text import extract_text

        return upload.name, extract_text(upload.name, upload.extension, upload.data), upload
    if kind == "website_crawl":
        name, text = str(item.get("title") or item.get("url")), f"{item.get('title') or ''}\n{item.get('url')}"
    elif kind == "online_document":
        page = item.get("page") or {}
        name = str(page.get("page_name") or page.get("page_id") or f"page-{index + 1}")
        text = name
    else:
        name, text = str(item.get("name") or item.get("id")), str(item.get("name") or item.get("id"))
    upload = state._store_file(name, "txt", "text/plain", text.encode("utf-8"), ctx.now)
    return name, text, upload


def run(ctx: Ctx) -> Response:
    """``POST .../pipeline/run``."""
    values = validate("PipelineRunApiEntity", PIPELINE_RUN, ctx.req.payload())
    pipeline = _pipeline(ctx)
    kind = values["datasource_type"]
    _node(pipeline, values["start_node_id"], kind)
    items = values["datasource_info_list"]
    if not items or not all(isinstance(item, dict) for item in items):
        raise _run_error("datasource_info_list must be a non-empty list of objects")
    if not values["is_published"]:
        # A debug run: the workflow runs on the draft and writes no document.
        run_id = new_id()
        result = {
            "task_id": new_id(),
            "workflow_run_id": run_id,
            "data": {
                "id": run_id,
                "status": "succeeded",
                "outputs": {},
                "created_at": int(ctx.now),
                "finished_at": int(ctx.now),
            },
        }
        if values["response_mode"] == "streaming":
            return _sse([{"event": "workflow_started", **result}, {"event": "workflow_finished", **result}])
        return ok(result)
    ds, state = ctx.dataset, ctx.state
    prepared = [_item_document(ctx, kind, item, index) for index, item in enumerate(items)]
    batch = state.new_batch(ctx.now)
    rule_values = {
        "doc_form": pipeline.chunk_structure,
        "indexing_technique": ds.indexing_technique or "economy",
        "process_rule": pipeline.process_rule,
    }
    documents = []
    for (name, text, upload), item in zip(prepared, items, strict=True):
        doc, _batch = state.create_document(
            ds, name=name, text=text, upload=upload, values=dict(rule_values), allow_upsert=False, now=ctx.now
        )
        doc.created_from = "rag-pipeline"
        state._move_batch(ds, doc, batch)
        documents.append(
            {
                "id": doc.id,
                "position": doc.position,
                "data_source_type": kind,
                "data_source_info": dict(item),
                "name": doc.name,
                "indexing_status": doc.indexing_status,
                "error": doc.error,
                "enabled": doc.enabled,
            }
        )
    pipeline.runs.append(
        {
            "batch": batch,
            "document_ids": [d["id"] for d in documents],
            "inputs": values["inputs"],
            "start_node_id": values["start_node_id"],
        }
    )
    dataset = {"id": ds.id, "name": ds.name, "description": ds.description, "chunk_structure": pipeline.chunk_structure}
    return ok({"batch": batch, "dataset": dataset, "documents": documents})


_D = "/v1/datasets/<uuid:dataset_id>"
_SINCE = (1, 9)

#: The knowledge pipeline routes (registered with the emulator's route table).
PIPELINE_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("POST", "/v1/datasets/pipeline/file-upload", upload_file, min_version=_SINCE),
    Endpoint("GET", _D + "/pipeline/datasource-plugins", datasource_plugins, min_version=_SINCE),
    Endpoint("POST", _D + "/pipeline/datasource/nodes/<string:node_id>/run", run_node, min_version=_SINCE),
    Endpoint("POST", _D + "/pipeline/run", run, min_version=_SINCE),
)
