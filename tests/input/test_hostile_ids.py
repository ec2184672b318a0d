"""Hostile ids through every hook method that takes one (sync and async): no request is sent, and the other
knowledge base is untouched. The methods are found by inspection, so a new one cannot be missed."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from airflow_provider_dify.exceptions import DifyArgumentError
from airflow_provider_dify.hooks.dify import DifyHook
from airflow_provider_dify.hooks.dify_async import DifyAsyncHook
from tests.input.conftest import BATCH, World
from tests.unit.helpers import assert_no_key_piece

#: Ids that, sent as they are, would reach another route (the HTTP clients collapse dot segments).
HOSTILE = [
    "../../{b}",
    "{a}/../../{b}",
    "./../{b}",
    "..%2F..%2F{b}",
    "{b}/",
    "{b}?keyword=x",
    "{b}#top",
    " ../{b}",
    "{b}/../{b}",
]
#: Keyword arguments of the methods that take ``**fields``.
FIELDS = {"update_dataset": {"name": "renamed"}, "update_segment": {"content": "changed"}}
#: Arguments that go into a URL path and the valid value each gets while another one is hostile.
PATH_ARGUMENTS = ("dataset_id", "document_id", "segment_id", "child_chunk_id", "metadata_id", "batch", "node_id")


def _valid(world: World, name: str, tmp: Any) -> Any:
    values = {
        "dataset_id": world.a,
        "document_id": world.doc,
        "segment_id": world.seg,
        "child_chunk_id": world.seg,
        "metadata_id": world.seg,
        "batch": BATCH,
        "name": "n.txt",
        "text": "text",
        "content": "content",
        "query": "kettle",
        "segments": [{"content": "a"}],
        "segment": {"content": "a"},
        "action": "enable",
        "document_ids": [world.doc],
        "tag_ids": [world.seg],
        "tag_id": world.seg,
        "operation_data": [{"document_id": world.doc, "metadata_list": []}],
        "enabled": True,
        "file_path": tmp,
        "node_id": "1750836391776",
        "inputs": {},
        "datasource_type": "local_file",
        "datasource_info_list": [{"reference": world.seg}],
        "start_node_id": "1750836391776",
    }
    return values[name]


#: Methods that take an id but send nothing (they answer from what the hook already saw).
LOCAL_METHODS = {"dataset_gone"}


def _id_methods(cls: type) -> list[tuple[str, str]]:
    pairs = []
    for method_name, method in inspect.getmembers(cls, inspect.isfunction):
        if method_name.startswith("_") or method_name in LOCAL_METHODS:
            continue
        parameters = inspect.signature(method).parameters
        pairs += [(method_name, argument) for argument in parameters if argument in PATH_ARGUMENTS]
    return pairs


SYNC_METHODS = _id_methods(DifyHook)
ASYNC_METHODS = _id_methods(DifyAsyncHook)


def _call_arguments(method: Any, world: World, hostile_argument: str, hostile: str, tmp: Any) -> dict[str, Any]:
    arguments = {}
    for name, parameter in inspect.signature(method).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        if name == hostile_argument:
            arguments[name] = hostile
        elif parameter.default is parameter.empty:
            arguments[name] = _valid(world, name, tmp)
    return arguments


def test_every_id_taking_method_is_covered() -> None:
    covered = {name for name, _ in SYNC_METHODS}
    assert {
        "delete_document",
        "delete_segment",
        "delete_dataset",
        "get_indexing_status",
        "delete_child_chunk",
    } <= covered
    assert len(SYNC_METHODS) >= 40
    assert {name for name, _ in ASYNC_METHODS} == {"get_indexing_status", "get_document"}


@pytest.mark.parametrize("template", HOSTILE)
@pytest.mark.parametrize(("method_name", "argument"), SYNC_METHODS, ids=[f"{m}-{a}" for m, a in SYNC_METHODS])
def test_sync_hook_sends_no_hostile_id(world: World, method_name: str, argument: str, template: str) -> None:
    path = world.tmp / "upload.txt"
    path.write_text("content")
    hostile = template.format(a=world.a, b=world.b)
    hook = DifyHook()
    before = world.snapshot()
    method = getattr(hook, method_name)
    arguments = _call_arguments(getattr(DifyHook, method_name), world, argument, hostile, path)
    with pytest.raises(DifyArgumentError) as raised:
        result = method(**arguments, **FIELDS.get(method_name, {}))
        if inspect.isgenerator(result):  # the iterators build their first request when iterated
            next(result)
    assert raised.value.argument == argument
    assert world.dify.calls == []
    assert world.snapshot() == before
    assert_no_key_piece(world.key, str(raised.value))


@pytest.mark.parametrize("template", HOSTILE)
@pytest.mark.parametrize(("method_name", "argument"), ASYNC_METHODS, ids=[f"{m}-{a}" for m, a in ASYNC_METHODS])
def test_async_hook_sends_no_hostile_id(world: World, method_name: str, argument: str, template: str) -> None:
    hostile = template.format(a=world.a, b=world.b)

    async def call() -> Any:
        async with DifyAsyncHook() as hook:
            arguments = _call_arguments(getattr(DifyAsyncHook, method_name), world, argument, hostile, None)
            return await getattr(hook, method_name)(**arguments)

    before = world.snapshot()
    with pytest.raises(DifyArgumentError) as raised:
        asyncio.run(call())
    assert raised.value.argument == argument
    assert world.dify.calls == []
    assert world.snapshot() == before
