"""
Replay the Dify 1.16.1 recording (``dify-1.16.1-differences.md``) against the emulator's default mode.

That file records the answers of a real 1.16.1 server to one sequence of requests (the steps' titles name
them; the requests themselves are rebuilt here from the titles and the answers: names, texts and queries are
the recorded ones). Each answer is compared as the 1.13.2 replay compares (``tests/emulator/
test_transcripts.py``): status, the key set of every object (bodies cut short in the file: the recorded keys
at least), value types, and the exact values of id- and time-independent keys. The same requests to an
emulator in ``"1.13"`` mode answer as 1.13.2 did where the two servers differ.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from airflow_provider_dify.testing import DifyEmulator
from tests.emulator.test_transcripts import EMPTY, TRANSCRIPTS, compare, learn_ids, substitute

FILE = "dify-1.16.1-differences.md"
TEXT = "The zebrafish quokka protocol verifies keyword indexing in Dify."
RETRIEVAL = {"search_method": "keyword_search", "reranking_enable": False, "top_k": 2, "score_threshold_enabled": False}
MISSING = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Request:
    """One request of the recorded sequence; ``{dataset}``, ``{document}``, ``{batch}``, ``{segment}`` and
    ``{field}`` are filled from earlier answers."""

    title: str
    method: str
    path: str
    body: Any = None
    auth: str | None = "key"
    wait: bool = False  # the recorder's pace: the indexing queue had finished


SEQUENCE = [
    Request(
        "create dataset",
        "POST",
        "/datasets",
        {"name": "kbdiff-b-53e29641", "description": "d", "indexing_technique": "economy"},
    ),
    Request("create dataset dup name", "POST", "/datasets", {"name": "kbdiff-b-53e29641"}),
    Request("create dataset no name", "POST", "/datasets", {}),
    Request("list datasets", "GET", "/datasets"),
    Request("get dataset", "GET", "/datasets/{dataset}"),
    Request("patch dataset", "PATCH", "/datasets/{dataset}", {"description": "d2"}),
    Request(
        "create doc by text",
        "POST",
        "/datasets/{dataset}/document/create-by-text",
        {"name": "a.txt", "text": TEXT, "indexing_technique": "economy", "process_rule": {"mode": "automatic"}},
    ),
    Request("indexing-status", "GET", "/datasets/{dataset}/documents/{batch}/indexing-status", wait=True),
    Request("list documents", "GET", "/datasets/{dataset}/documents"),
    Request("get document", "GET", "/datasets/{dataset}/documents/{document}"),
    Request(
        "retrieve keyword", "POST", "/datasets/{dataset}/retrieve", {"query": "quokka", "retrieval_model": RETRIEVAL}
    ),
    Request(
        "hit-testing keyword",
        "POST",
        "/datasets/{dataset}/hit-testing",
        {"query": "quokka", "retrieval_model": RETRIEVAL},
    ),
    Request("retrieve no query", "POST", "/datasets/{dataset}/retrieve", {"retrieval_model": RETRIEVAL}),
    Request(
        "add segment",
        "POST",
        "/datasets/{dataset}/documents/{document}/segments",
        {"segments": [{"content": "A second chunk about the wombat ledger."}]},
    ),
    Request("add segment empty", "POST", "/datasets/{dataset}/documents/{document}/segments", {"segments": []}),
    Request("list segments", "GET", "/datasets/{dataset}/documents/{document}/segments"),
    Request("get segment", "GET", "/datasets/{dataset}/documents/{document}/segments/{segment}"),
    Request(
        "update segment",
        "POST",
        "/datasets/{dataset}/documents/{document}/segments/{segment}",
        {"segment": {"content": "Updated wombat ledger chunk."}},
    ),
    Request("list metadata", "GET", "/datasets/{dataset}/metadata"),
    Request("create metadata", "POST", "/datasets/{dataset}/metadata", {"type": "string", "name": "author"}),
    Request("create metadata dup", "POST", "/datasets/{dataset}/metadata", {"type": "string", "name": "author"}),
    Request("list metadata after", "GET", "/datasets/{dataset}/metadata"),
    Request("built-in metadata", "GET", "/datasets/{dataset}/metadata/built-in"),
    Request(
        "doc metadata update",
        "POST",
        "/datasets/{dataset}/documents/metadata",
        {
            "operation_data": [
                {
                    "document_id": "{document}",
                    "metadata_list": [{"id": "{field}", "name": "author", "value": "bob"}],
                }
            ]
        },
    ),
    Request("list tags", "GET", "/datasets/tags"),
    Request(
        "update doc by text",
        "POST",
        "/datasets/{dataset}/documents/{document}/update-by-text",
        {"name": "a2.txt", "text": "Updated text of a2.txt."},
    ),
    Request(
        "disable doc",
        "PATCH",
        "/datasets/{dataset}/documents/status/disable",
        {"document_ids": ["{document}"]},
        wait=True,
    ),
    Request("get missing dataset", "GET", f"/datasets/{MISSING}"),
    Request("get missing document", "GET", f"/datasets/{{dataset}}/documents/{MISSING}"),
    Request("bad token", "GET", "/datasets", auth="Bearer dataset-0000000000000000"),
    Request("no auth", "GET", "/datasets", auth=None),
    Request("delete segment", "DELETE", f"/datasets/{{dataset}}/documents/{{document}}/segments/{MISSING}"),
    Request("delete document", "DELETE", "/datasets/{dataset}/documents/{document}"),
    Request("delete dataset", "DELETE", "/datasets/{dataset}"),
    Request("delete dataset again", "DELETE", "/datasets/{dataset}"),
]

#: Steps whose chunk keywords differ on purpose, with the reason: the real server kept fewer keywords for these
#: added and updated chunks ("second", "chunk" dropped; on update even "ledger", which it kept on add), which
#: the emulator's jieba extraction with its stop words does not reproduce (docs/emulator.md, "Search quality").
KEYWORD_DIFFERENCES = {
    "add segment": "added chunk's keywords",
    "list segments": "the added chunk's keywords",
    "get segment": "the added chunk's keywords",
    "update segment": "the updated chunk's keywords",
}

#: Where 1.13.2 answered otherwise, the 1.13 mode still does: (title, what the 1.13 answer shows).
OLD_SHAPES = {
    "create dataset": lambda body: "maintainer" not in body,
    "create doc by text": lambda body: body["document"]["doc_metadata"] is None,
    "list documents": lambda body: body["data"][0]["doc_metadata"] is None,
    "retrieve keyword": lambda body: (
        body["records"][0]["files"] is None
        and body["records"][0]["child_chunks"] is None
        and body["records"][0]["segment"]["sign_content"] == TEXT
    ),
}


def recorded_answers() -> dict[str, tuple[int, Any, bool]]:
    """``title -> (status, body, cut short)`` from the file's "answers of 1.16.1" section."""
    path = TRANSCRIPTS / FILE
    if not path.exists():
        pytest.skip(f"the transcripts are not there: {TRANSCRIPTS} is missing")
    answers: dict[str, tuple[int, Any, bool]] = {}
    text = path.read_text(encoding="utf-8").split("## The answers of 1.16.1", 1)[1]
    for section in re.split(r"^### ", text, flags=re.MULTILINE)[1:]:
        heading, _, rest = section.partition("\n")
        match = re.fullmatch(r"(.+): HTTP (\d+)", heading.strip())
        block = re.search(r"```json\n(.*?)```", rest, re.DOTALL)
        if match is None or block is None:
            continue
        raw = block.group(1)
        cut = "... (cut)" in raw
        if cut:
            from tests.emulator.test_transcripts import _repair_truncated

            body = _repair_truncated(raw.replace("\n... (cut)", "\n... [truncated"))
        else:
            body = json.loads(raw)
        answers[match.group(1)] = (int(match.group(2)), body, cut)
    return answers


@pytest.fixture(scope="module")
def newest_emulator() -> Iterator[DifyEmulator]:
    with DifyEmulator(indexing_seconds=0.05, queue_pickup_seconds=0.0, status_change_seconds=0.0) as emulator:
        yield emulator


class Replayer:
    """Sends :data:`SEQUENCE` to an emulator, filling the ids from its answers."""

    def __init__(self, emulator: DifyEmulator) -> None:
        self.emulator = emulator
        self.session = requests.Session()
        self.names: dict[str, str] = {}

    def fill(self, value: Any) -> Any:
        if isinstance(value, str):
            return re.sub(r"\{(\w+)\}", lambda m: self.names.get(m.group(1), m.group(0)), value)
        if isinstance(value, list):
            return [self.fill(item) for item in value]
        if isinstance(value, dict):
            return {key: self.fill(item) for key, item in value.items()}
        return value

    def send(self, request: Request) -> requests.Response:
        if request.wait:
            assert self.emulator.wait_for_indexing(timeout=20)
        headers = {}
        if request.auth == "key":
            headers["Authorization"] = f"Bearer {self.emulator.api_key}"
        elif request.auth is not None:
            headers["Authorization"] = request.auth
        kwargs: dict[str, Any] = {"headers": headers, "timeout": 30}
        if request.body is not None:
            kwargs["json"] = self.fill(request.body)
        response = self.session.request(request.method, self.emulator.url + self.fill(request.path), **kwargs)
        self.learn(request.title, response)
        return response

    def learn(self, title: str, response: requests.Response) -> None:
        if response.status_code != 200 and response.status_code != 201:
            return
        body = response.json()
        if title == "create dataset":
            self.names["dataset"] = body["id"]
        elif title == "create doc by text":
            self.names["document"], self.names["batch"] = body["document"]["id"], body["batch"]
        elif title == "add segment":
            self.names["segment"] = body["data"][0]["id"]
        elif title == "create metadata":
            self.names["field"] = body["id"]


#: Listed differences that depend on what else the recorded workspaces held (other knowledge bases in the list),
#: not on the server version.
WORKSPACE_DEPENDENT = {
    "data[].doc_metadata[].id",
    "data[].doc_metadata[].name",
    "data[].doc_metadata[].type",
    "data[].data_source_type",
    "data[].doc_form",
    "has_more",
}


def listed_differences() -> list[tuple[str, str, str, str]]:
    """The file's field-by-field list: ``(step, sign, path, 1.16.1 type)``, e.g. ``("create dataset", "+",
    "maintainer", "str")``; ``~`` entries give the type 1.16.1 answered."""
    path = TRANSCRIPTS / FILE
    if not path.exists():
        pytest.skip(f"the transcripts are not there: {TRANSCRIPTS} is missing")
    text = path.read_text(encoding="utf-8")
    block = text.split("## Differences, step by step", 1)[1].split("```", 2)[1]
    entries: list[tuple[str, str, str, str]] = []
    step = ""
    for line in block.splitlines():
        heading = re.match(r"^\[(.+?)\]", line)
        if heading:
            step = heading.group(1)
            continue
        entry = re.match(r"^  ([+~-]) ([\w.\[\]]+)(?: \(([\w\[\]]+)\)|: \w+ -> (\w+))$", line)
        if entry:
            entries.append((step, entry.group(1), entry.group(2), entry.group(3) or entry.group(4)))
    return entries


def values_at(body: Any, path: str) -> list[Any]:
    """Every value at a path like ``records[].segment.sign_content`` (``name[]``: each item of that list)."""
    values = [body]
    for part in path.split("."):
        name = part.removesuffix("[]")
        values = [value[name] for value in values if isinstance(value, dict) and name in value]
        if part.endswith("[]"):
            values = [item for value in values if isinstance(value, list) for item in value]
    return values


def _json_name(value: Any) -> str:
    return {type(None): "NoneType", bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}[
        type(value)
    ]


def test_the_listed_differences_are_the_default_modes_answers(newest_emulator: DifyEmulator) -> None:
    """Each field the file lists as new or changed in 1.16.1 is in the default mode's answer, of 1.16.1's type;
    each field only 1.13.2 had is absent (or no longer of its 1.13.2 type)."""
    newest_emulator.reset()
    replayer = Replayer(newest_emulator)
    answers: dict[str, Any] = {}
    for request in SEQUENCE:
        response = replayer.send(request)
        if response.content and response.headers.get("Content-Type", "").startswith("application/json"):
            answers[request.title] = response.json()
    replayer.session.close()
    checked, failures = 0, []
    for step, sign, path, kind in listed_differences():
        if (
            step not in answers
            or path in WORKSPACE_DEPENDENT
            or sign == "="
            or step in ("add segment empty", "list tags")
        ):
            continue
        checked += 1
        if path.endswith("[]"):  # "+ x[] ([])": x is a list
            path, kind = path.removesuffix("[]"), "list"
        types = {_json_name(value) for value in values_at(answers[step], path)}
        if sign == "+" and types != {kind}:
            failures.append(f"[{step}] {path} should be a {kind}: {types or 'missing'}")
        elif sign == "-" and kind in types:
            failures.append(f"[{step}] {path} is still a {kind} (1.13.2's)")
        elif sign == "~" and types != {kind}:
            failures.append(f"[{step}] {path} should be {kind}, is {types}")
    assert checked >= 15
    assert not failures, "\n".join(failures)


def test_the_sequence_covers_every_recorded_answer() -> None:
    recorded = recorded_answers()
    titles = [request.title for request in SEQUENCE]
    # openapi.json (the whole spec) and the swagger/index pages are not part of the Knowledge API.
    assert set(recorded) - set(titles) <= {"v1 index", "v1 openapi.json", "v1 swagger.json"}
    assert len(titles) == len(set(titles))


def test_the_default_mode_answers_as_dify_1_16_1(newest_emulator: DifyEmulator) -> None:
    recorded = recorded_answers()
    newest_emulator.reset()
    replayer = Replayer(newest_emulator)
    failures: list[str] = []
    matched_known: list[str] = []
    ids: dict[str, str] = {}
    for request in SEQUENCE:
        response = replayer.send(request)
        status, body, cut = recorded[request.title]
        if response.status_code != status:
            failures.append(
                f"[{request.title}] status {response.status_code}, expected {status}: {response.text[:300]}"
            )
            continue
        if status == 204 or body is EMPTY or body is None:
            continue
        actual = response.json()
        learn_ids(body, actual, ids)
        diffs: list[str] = []
        compare(substitute(body, {}), actual, "body", diffs, partial=cut)
        if request.title in KEYWORD_DIFFERENCES:
            kept = [diff for diff in diffs if ".keywords:" not in diff]
            if len(kept) == len(diffs):
                matched_known.append(request.title)
            diffs = kept
        failures += [f"[{request.title}] {diff}" for diff in diffs]
    replayer.session.close()
    assert not failures, "\n".join(failures)
    assert not matched_known, f"these steps match now, remove them from KEYWORD_DIFFERENCES: {matched_known}"


def test_the_1_13_mode_keeps_the_1_13_2_shapes() -> None:
    with DifyEmulator(server_version="1.13", indexing_seconds=0.05, queue_pickup_seconds=0.0) as old:
        replayer = Replayer(old)
        seen: dict[str, Any] = {}
        for request in SEQUENCE:
            if request.title in ("retrieve no query",):
                continue
            response = replayer.send(request)
            if request.title in OLD_SHAPES:
                assert response.status_code == 200, response.text
                seen[request.title] = response.json()
            if request.title == "retrieve keyword":
                break
        replayer.session.close()
    assert set(seen) == set(OLD_SHAPES)
    assert all(OLD_SHAPES[title](body) for title, body in seen.items()), seen
