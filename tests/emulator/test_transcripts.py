"""
Replay the recorded Dify 1.13.2 transcripts against the emulator, step by step, in order.

Each transcript file is parsed into steps (title, request, expected status, content type and body). The steps
are sent to a fresh emulator in 1.13 mode; ids of the recording (UUIDs, batch numbers) are mapped to the
emulator's ids learnt from earlier answers of the same file. Each answer is compared with the recording:
status, content type, error code/message, the set of keys of every JSON object (recursively), the JSON type
of every value both sides have, and the exact value of keys whose value does not depend on ids or time.

A few steps need a hook (waiting for the indexing queue, the retry the recorder did); they are listed in
``BEFORE``/``AFTER`` with the reason. Differences the emulator keeps on purpose are in ``KNOWN_DIFFERENCES``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_dify.testing import DifyEmulator

#: The copies kept with the tests (tests/emulator/transcripts/); DIFY_TRANSCRIPTS names another folder.
TRANSCRIPTS = Path(os.environ.get("DIFY_TRANSCRIPTS") or Path(__file__).resolve().parent / "transcripts")
#: The project's originals: shared/ beside the repository, where there is one.
SHARED_TRANSCRIPTS = Path(__file__).resolve().parents[2].parent / "shared" / "dify-transcripts"
FILES = ("dify-1.13.2-knowledge-api.md", "dify-1.13.2-metadata-tags-updates.md")

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
BATCH_RE = re.compile(r"\b\d{20}\b")
EMPTY = object()

#: Keys whose values must be equal (they depend neither on ids nor on timing).
EXACT_KEYS = frozenset(
    {
        "code",
        "message",
        "status",
        "error",
        "result",
        "has_more",
        "limit",
        "page",
        "total",
        "created_from",
        "indexing_technique",
        "doc_form",
        "enabled",
        "archived",
        "search_method",
        "embedding_available",
        "built_in_field_enabled",
        "type",
        "count",
        "data_source_type",
        "position",
        "score",
        "name",
        "content",
        "sign_content",
        "permission",
        "provider",
        "runtime_mode",
    }
)
#: Keys whose lists are compared as sets: the keywords Dify's jieba index extracted (it stores them as a set,
#: so their order is arbitrary).
SET_KEYS = frozenset({"keywords"})

#: Steps where the emulator differs from the recording on purpose: (file, title) -> reason.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {}

#: Headers sent instead of the emulator's key, by step title.
AUTH_OVERRIDES: dict[str, str | None] = {
    "No Authorization header": None,
    "Bad token": "Bearer dataset-0000000000000000",
    "Authorization header with wrong scheme (`Token abc`)": "Token abc",
    "App-type key format on dataset endpoint": "Bearer app-0000000000000000",
}

#: Content of the files the recorder uploaded (the recording shows names and sizes only).
FILE_CONTENT = {
    "notes.txt": b"Uploaded file content.\n\nA second paragraph about pandas and koalas.",
    "products.csv": b"sku,name,price\nA1,pen,1.50\n",
    "malware.exe": b"MZ\x90\x00 not really a program",
}
UPDATED_CONTENT = {"products.csv": b"sku,name,price\nA1,pen,1.50\nB2,ink,3.25\n"}


@dataclass
class Step:
    """One recorded request and the answer the real server gave."""

    title: str
    method: str = "GET"
    path: str = "/v1/datasets"
    params: dict[str, Any] | None = None
    json_body: Any = EMPTY
    form: dict[str, str] | None = None
    files: list[str] = field(default_factory=list)
    status: int = 0
    content_type: str | None = None
    body: Any = EMPTY
    truncated: bool = False
    polled: bool = False


def _repair_truncated(text: str) -> Any:
    """Parse the beginning of a JSON text cut short ("... [truncated"): close what is open."""
    text = text.split("\n... [truncated", 1)[0]
    cuts = [i for i, ch in enumerate(text) if ch in ",[{"]
    for cut in reversed(cuts):
        candidate = text[:cut] if text[cut] == "," else text[: cut + 1]
        stack: list[str] = []
        in_string = escape = False
        for ch in candidate:
            if in_string:
                if escape:
                    escape = False
                elif ch == "\\":
                    escape = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch in "[{":
                stack.append("]" if ch == "[" else "}")
            elif ch in "]}" and stack:
                stack.pop()
        if in_string:
            continue
        try:
            return json.loads(candidate + "".join(reversed(stack)))
        except ValueError:
            continue
    return None


def _parse_body(block: str) -> tuple[Any, bool]:
    block = block.strip("\n")
    if block.strip() == "(empty body)":
        return EMPTY, False
    if block.startswith("'"):
        return ast.literal_eval(block), False
    if block.lstrip().startswith("<"):
        return block, False
    try:
        return json.loads(block), False
    except ValueError:
        return _repair_truncated(block), True


def parse_transcript(path: Path) -> list[Step]:
    """Split a transcript file into steps."""
    steps: list[Step] = []
    sections = re.split(r"^### ", path.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]
    for section in sections:
        title, _, rest = section.partition("\n")
        step = Step(title=title.strip(), polled="(polled" in title)
        request_match = re.search(r"^`(GET|POST|PATCH|PUT|DELETE) (/[^`\s]*)`(.*)$", rest, re.MULTILINE)
        if request_match:
            step.method, step.path = request_match.group(1), request_match.group(2)
            inline = request_match.group(3).strip()
            if inline.startswith("params="):
                step.params = json.loads(inline[len("params=") :])
            elif inline.startswith("{"):
                value = json.loads(inline)
                if "create-by-file" in step.path or "update-by-file" in step.path:
                    step.form = value
                elif step.method == "GET":
                    step.params = value
                else:
                    step.json_body = value
        body_match = re.search(r"Request JSON:\s*\n```json\n(.*?)\n```", rest, re.DOTALL)
        if body_match:
            step.json_body = json.loads(body_match.group(1))
        multipart = re.search(r"^Request multipart: data=(\{.*\}) files=(\[.*\])$", rest, re.MULTILINE)
        if multipart:
            step.form = json.loads(multipart.group(1))
            step.files = ast.literal_eval(multipart.group(2))
        parts = re.search(r"^multipart parts: (\{.*\})$", rest, re.MULTILINE)
        if parts:
            step.files = [re.sub(r"^<file (.*)>$", r"\1", v) for v in json.loads(parts.group(1)).values()]
        fields = re.search(r"^form fields: (\{.*\})$", rest, re.MULTILINE)
        if fields:
            step.form = json.loads(fields.group(1))
        response = re.search(r"Response: \*\*HTTP (\d+)\*\*(?:[^\n]*content-type `([^`]+)`)?", rest)
        if response is None:
            continue
        step.status = int(response.group(1))
        step.content_type = response.group(2)
        block = re.search(r"```[a-z]*\n(.*?)```", rest[response.end() :], re.DOTALL)
        if block:
            step.body, step.truncated = _parse_body(block.group(1))
        steps.append(step)
    return steps


# --------------------------------------------------------------------------------------------------
# comparison and id mapping
# --------------------------------------------------------------------------------------------------


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    return type(value).__name__


def compare(
    expected: Any, actual: Any, where: str, diffs: list[str], *, key: str = "", partial: bool = False
) -> None:
    """
    Compare key sets, value types and the values of ``EXACT_KEYS``.

    ``partial``: the recording was cut short, so objects may miss keys and lists items.
    """
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            diffs.append(f"{where}: expected an object, got {_json_type(actual)}")
            return
        if partial and not set(expected) <= set(actual):
            diffs.append(f"{where}: keys missing {sorted(set(expected) - set(actual))}")
        elif not partial and set(expected) != set(actual):
            missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
            diffs.append(f"{where}: keys differ (missing {missing}, extra {extra})")
        for name in expected.keys() & actual.keys():
            compare(expected[name], actual[name], f"{where}.{name}", diffs, key=name, partial=partial)
        return
    if key in SET_KEYS and isinstance(expected, list):
        if not isinstance(actual, list) or set(map(str, expected)) != set(map(str, actual)):
            diffs.append(f"{where}: expected the set {sorted(map(str, expected))}, got {actual!r}")
        return
    if isinstance(expected, list):
        if not isinstance(actual, list):
            diffs.append(f"{where}: expected a list, got {_json_type(actual)}")
            return
        wrong_length = len(expected) > len(actual) if partial else len(expected) != len(actual)
        if any(isinstance(item, dict) for item in expected) and wrong_length:
            diffs.append(f"{where}: {len(expected)} items expected, got {len(actual)}")
        for index, (left, right) in enumerate(zip(expected, actual, strict=False)):
            compare(left, right, f"{where}[{index}]", diffs, key=key, partial=partial)
        return
    if key in EXACT_KEYS:
        if expected != actual or _json_type(expected) != _json_type(actual):
            diffs.append(f"{where}: expected {expected!r}, got {actual!r}")
        return
    if expected is not None and actual is not None and _json_type(expected) != _json_type(actual):
        diffs.append(f"{where}: expected a {_json_type(expected)} ({expected!r}), got {actual!r}")


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and bool(UUID_RE.fullmatch(value) or BATCH_RE.fullmatch(value))


def learn_ids(expected: Any, actual: Any, ids: dict[str, str]) -> None:
    """Map the recording's ids to the emulator's, walking both answers in parallel."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for name in expected.keys() & actual.keys():
            learn_ids(expected[name], actual[name], ids)
    elif isinstance(expected, list) and isinstance(actual, list):
        for left, right in zip(expected, actual, strict=False):
            learn_ids(left, right, ids)
    elif _is_id(expected) and isinstance(actual, str):
        ids.setdefault(expected, actual)


def substitute(value: Any, ids: dict[str, str]) -> Any:
    """Replace recorded ids by the emulator's, in strings, lists and dicts."""
    if isinstance(value, str):
        value = UUID_RE.sub(lambda m: ids.get(m.group(0), m.group(0)), value)
        return BATCH_RE.sub(lambda m: ids.get(m.group(0), m.group(0)), value)
    if isinstance(value, list):
        return [substitute(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, ids) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------------------
# the replay
# --------------------------------------------------------------------------------------------------


@dataclass
class Replay:
    """State of one file's replay."""

    emulator: DifyEmulator
    session: requests.Session
    ids: dict[str, str] = field(default_factory=dict)
    last: requests.Response | None = None

    def send(self, step: Step) -> requests.Response:
        headers = {}
        auth = AUTH_OVERRIDES.get(step.title, f"Bearer {self.emulator.api_key}")
        if auth is not None:
            headers["Authorization"] = auth
        url = self.emulator.base_url + substitute(step.path, self.ids)
        kwargs: dict[str, Any] = {"headers": headers, "timeout": 30}
        if step.params is not None:
            kwargs["params"] = substitute(step.params, self.ids)
        if step.json_body is not EMPTY:
            kwargs["json"] = substitute(step.json_body, self.ids)
        if step.form is not None or step.files:
            kwargs["data"] = step.form or {}
            files = []
            for name in step.files:
                filename = name
                if name == "file":  # the recording names the part only: take the name from the answer
                    filename = step.body["document"]["name"] if isinstance(step.body, dict) else "file.txt"
                if ".exe" in step.title:
                    filename = "malware.exe"
                content = FILE_CONTENT.get(filename, b"some text")
                if "update-by-file" in step.path or step.method == "PATCH":
                    content = UPDATED_CONTENT.get(filename, content)
                files.append(("file", (filename, content)))
            if files:
                kwargs["files"] = files
        if ".exe" in step.title and not step.files:
            kwargs["files"] = [("file", ("malware.exe", FILE_CONTENT["malware.exe"]))]
        return self.session.request(step.method, url, **kwargs)

    def poll(self, step: Step, timeout: float = 20.0) -> requests.Response:
        deadline = time.monotonic() + timeout
        while True:
            response = self.send(step)
            data = response.json().get("data") if response.status_code == 200 else None
            if data and all(entry["indexing_status"] in ("completed", "error") for entry in data):
                return response
            if time.monotonic() > deadline:
                return response
            time.sleep(0.05)


def _wait_for_queue(replay: Replay, step: Step) -> None:
    assert replay.emulator.wait_for_indexing(timeout=20)


def _seed_earlier_tag(replay: Replay, step: Step) -> None:
    # The recorded workspace already held one tag from an earlier run (its tag list reports "2 validation
    # errors" after one create): seed one, as the 1.13 create does (it stores the tag, then fails).
    with replay.emulator.lock:
        replay.emulator.state.create_tag("rec-tag-earlier-run", replay.emulator.state.now())


def _retry_until_ok(replay: Replay, step: Step) -> None:
    # "Enable retried 3x over 1.5s until it returned HTTP 200": do the same.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if replay.send(step).status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"{step.title}: never answered 200")


Hook = Callable[[Replay, Step], None]

#: Run before a step: the recorder's pace let the indexing queue finish where the answer shows it finished.
BEFORE: dict[str, Hook] = {
    "Segments of custom-rule document (separator ###)": _wait_for_queue,
    "List documents filtered by status=available": _wait_for_queue,
    "Update document by file (POST update-by-file alias)": _wait_for_queue,
    "Create knowledge tag": _seed_earlier_tag,
}
#: Run after a step.
AFTER: dict[str, Hook] = {
    "Enable document immediately after disable": _retry_until_ok,
}


def _check(step: Step, response: requests.Response) -> list[str]:
    diffs: list[str] = []
    if response.status_code != step.status:
        diffs.append(f"status {response.status_code}, expected {step.status}: {response.text[:300]}")
        return diffs
    if step.content_type and response.headers.get("Content-Type") != step.content_type:
        diffs.append(f"content type {response.headers.get('Content-Type')!r}, expected {step.content_type!r}")
    if step.body is EMPTY:
        if response.content:
            diffs.append(f"expected an empty body, got {response.text[:200]!r}")
    elif isinstance(step.body, str):
        if response.text.strip() != step.body.strip():
            diffs.append(f"body {response.text[:200]!r}, expected {step.body[:200]!r}")
    elif step.body is not None:
        compare(step.body, response.json(), "body", diffs, partial=step.truncated)
    return diffs


def _steps(name: str) -> list[Step]:
    path = TRANSCRIPTS / name
    if not path.exists():
        pytest.skip(f"the transcripts are not there: {TRANSCRIPTS} is missing")
    return parse_transcript(path)


@pytest.fixture(scope="module")
def replay_emulator() -> Iterator[DifyEmulator]:
    emulator = DifyEmulator(
        server_version="1.13", indexing_seconds=0.3, queue_pickup_seconds=0.3, status_change_seconds=0.5
    )
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def test_transcripts_are_parsed() -> None:
    for name in FILES:
        steps = _steps(name)
        assert len(steps) > 30
        assert all(step.status for step in steps)
    first = _steps(FILES[0])
    titles = [s.title for s in first]
    assert "Create dataset with empty name (validation)" in titles
    polled = [s for s in first if s.polled]
    assert len(polled) == 3


@pytest.mark.parametrize("name", FILES)
def test_replay_transcript(name: str, replay_emulator: DifyEmulator) -> None:
    steps = _steps(name)
    replay_emulator.reset()
    session = requests.Session()
    replay = Replay(replay_emulator, session)
    failures: list[str] = []
    matched_known: list[tuple[str, str]] = []
    for step in steps:
        hook = BEFORE.get(step.title)
        if hook:
            hook(replay, step)
        response = replay.poll(step) if step.polled else replay.send(step)
        replay.last = response
        is_json = response.headers.get("Content-Type", "").startswith("application/json") and response.content
        if is_json and step.body is not EMPTY and not isinstance(step.body, str):
            learn_ids(step.body, response.json(), replay.ids)
        diffs = _check(step, response)
        known = KNOWN_DIFFERENCES.get((name, step.title))
        if diffs and not known:
            failures.append(f"[{step.title}] " + "; ".join(diffs))
        elif known and not diffs:
            matched_known.append((name, step.title))
        hook = AFTER.get(step.title)
        if hook:
            hook(replay, step)
    session.close()
    assert not failures, (
        "\n".join(failures) + f"\n(last emulator exception: {replay_emulator.last_exception})"
    )
    assert not matched_known, f"these steps match now, remove them from KNOWN_DIFFERENCES: {matched_known}"


def test_comparison_is_strict() -> None:
    diffs: list[str] = []
    compare({"a": 1, "b": {"c": "x", "d": 1}}, {"a": 1.0, "b": {"c": "x"}}, "body", diffs)
    assert len(diffs) == 2
    diffs = []
    compare({"has_more": True, "data": [{"id": "1"}]}, {"has_more": False, "data": []}, "body", diffs)
    assert len(diffs) == 2
    diffs = []
    compare({"data": [{"id": "1"}]}, {"data": [{"id": "2", "x": 1}]}, "body", diffs, partial=True)
    assert diffs == []
    compare({"keywords": ["a", "b"]}, {"keywords": ["b", "a"]}, "body", diffs)  # Dify keeps them as a set
    assert diffs == []
    compare({"keywords": ["a", "b"]}, {"keywords": ["a", "c"]}, "body", diffs)
    assert len(diffs) == 1


def test_truncated_bodies_are_repaired() -> None:
    text = (
        '{\n  "data": [\n    {\n      "id": "x",\n      "content": "abc"\n    },\n    {\n      "id": "y",\n'
    )
    repaired = _repair_truncated(text + '      "cont\n... [truncated, 4079 chars total]')
    assert repaired == {"data": [{"id": "x", "content": "abc"}, {"id": "y"}]}


def test_the_copies_match_the_shared_transcripts() -> None:
    """The copies the replays read are the project's transcripts, byte for byte (where shared/ is at hand)."""
    if not SHARED_TRANSCRIPTS.is_dir():
        pytest.skip(f"no shared transcripts beside the repository ({SHARED_TRANSCRIPTS}) to compare the copies with")
    copies = Path(__file__).resolve().parent / "transcripts"
    originals = sorted(path.name for path in SHARED_TRANSCRIPTS.glob("*.md"))
    assert originals and originals == sorted(path.name for path in copies.glob("dify-*.md"))
    for name in originals:
        assert (copies / name).read_bytes() == (SHARED_TRANSCRIPTS / name).read_bytes(), name
