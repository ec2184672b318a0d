"""Nothing a caller passes changes which route a request description names: for every operation that puts an
id into its path, thousands of mutated ids (dot segments, slashes, query and fragment marks, encodings,
whitespace, control characters) are either refused or leave the path's shape exactly as it was."""

from __future__ import annotations

import inspect
import random
import re
from typing import Any

import pytest

from airflow_provider_dify.exceptions import DifyArgumentError
from airflow_provider_dify.hooks import operations as ops

DATASET = "96d82e49-408d-46ea-b2ac-169fd6a21cc3"
IDS = {
    "dataset_id": DATASET,
    "document_id": "bc33cd8c-dab8-459d-8b62-36a9f08ecc72",
    "segment_id": "c42a017a-93b2-44a3-bf35-e67d8bcf8ab7",
    "child_chunk_id": "5f1c7a2e-0d3b-4c8e-9a61-2b7d4e8f0c13",
    "metadata_id": "8e0f3b6a-7c21-4d59-b0a4-6f3e2d1c9b87",
    "batch": "20261123194403568155",
    "node_id": "1750836391776",
}
OTHER_VALUES: dict[str, Any] = {
    "name": "n.txt",
    "text": "text",
    "content": "content",
    "query": "kettle",
    "segments": [{"content": "a"}],
    "segment": {"content": "a"},
    "action": "enable",
    "document_ids": [IDS["document_id"]],
    "tag_ids": ["t"],
    "tag_id": "t",
    "operation_data": [{"document_id": IDS["document_id"], "metadata_list": []}],
    "enabled": True,
    "upload": None,
    "inputs": {},
    "datasource_type": "local_file",
    "datasource_info_list": [{"reference": "f"}],
    "start_node_id": "1750836391776",
}
#: Arguments with a default that a valid call still needs (retrieve's query, unless attachment_ids are given).
NEEDED_DEFAULTS = {"query"}
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SHAPES = {argument: r"[0-9]+" if argument == "batch" else UUID for argument in IDS} | {"node_id": r"[A-Za-z0-9_-]+"}
PIECES = ["..", "/", "\\", "?", "#", "%2e", "%2F", "%00", " ", "\t", "\n", "\x00", ";", "&", "=", "@", ":", "~", "."]


def _operations() -> list[tuple[str, str]]:
    pairs = []
    for name, function in inspect.getmembers(ops, inspect.isfunction):
        if name.startswith("_") or function.__module__ != ops.__name__:
            continue
        if inspect.signature(function).return_annotation not in ("ApiRequest", ops.ApiRequest):
            continue
        pairs += [(name, argument) for argument in inspect.signature(function).parameters if argument in IDS]
    return pairs


OPERATIONS = _operations()


def _describe(name: str, **changed: Any) -> ops.ApiRequest:
    function = getattr(ops, name)
    arguments = {}
    for argument, parameter in inspect.signature(function).parameters.items():
        if parameter.kind is parameter.VAR_KEYWORD:
            continue
        if parameter.default is not parameter.empty and argument not in NEEDED_DEFAULTS:
            continue
        arguments[argument] = changed.get(argument, IDS.get(argument, OTHER_VALUES.get(argument)))
    extra = {"name": "renamed"} if name == "update_dataset" else {}
    return function(**arguments, **extra)


def _mutations(valid: str, rng: random.Random, count: int) -> list[str]:
    found = []
    for _ in range(count):
        text = valid
        for _ in range(rng.randint(1, 3)):
            position = rng.randint(0, len(text))
            text = text[:position] + rng.choice([*PIECES, valid, DATASET]) + text[position:]
        found.append(text)
    return found


def test_every_path_operation_is_covered() -> None:
    names = {name for name, _ in OPERATIONS}
    assert {"get_dataset", "delete_document", "delete_segment", "get_indexing_status", "delete_child_chunk"} <= names
    assert len(OPERATIONS) >= 50


@pytest.mark.parametrize(("name", "argument"), OPERATIONS, ids=[f"{n}-{a}" for n, a in OPERATIONS])
def test_a_mutated_id_is_refused_or_leaves_the_route_alone(name: str, argument: str) -> None:
    valid = _describe(name)
    rng = random.Random(f"{name}:{argument}")
    refused = 0
    for mutated in _mutations(IDS[argument], rng, 150):
        try:
            request = _describe(name, **{argument: mutated})
        except DifyArgumentError as error:
            assert error.argument == argument
            refused += 1
            continue
        # Accepted only as an id of the same form (a UUID, or digits for a batch), in the same place of the
        # same route: nothing else in the path changed.
        accepted = mutated.strip()
        assert re.fullmatch(SHAPES[argument], accepted), repr(mutated)
        assert request.method == valid.method
        assert request.path == valid.path.replace(IDS[argument], accepted, 1)
    assert refused > 100
