"""Uploads stream from disk: a large file goes over a real socket without being held in memory."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from airflow_provider_dify.hooks.dify import DifyHook
from tests.unit.helpers import (
    DATASET_ID,
    DOCUMENT_ID,
    LocalHttpServer,
    ReceivedRequest,
    json_answer,
    set_dify_connection,
    success_body,
)

MB = 1024 * 1024
START = b"first line of the big export\n"
END = b"\nlast line of the big export"


def _big_file(path: Path, size: int) -> Path:
    """A file of ``size`` bytes: marked start and end, sparse in between (cheap on disk, real to read)."""
    with open(path, "wb") as handle:
        handle.write(START)
        handle.truncate(size - len(END))
        handle.seek(size - len(END))
        handle.write(END)
    assert path.stat().st_size == size
    return path


def _created(request: ReceivedRequest) -> tuple[int, dict[str, str], bytes]:
    return json_answer(200, success_body("create_document_by_file"))


def _assert_whole_upload(request: ReceivedRequest, file_size: int, filename: str) -> None:
    assert int(request.headers["Content-Length"]) == request.body_size
    assert "Transfer-Encoding" not in request.headers
    assert request.body_size > file_size  # the file plus the multipart framing, all of it
    assert f'filename="{filename}"'.encode() in request.head
    assert b'name="data"' in request.head
    assert START in request.head
    boundary = request.headers["Content-Type"].split("boundary=")[1]
    assert request.tail.endswith(END + f"\r\n--{boundary}--\r\n".encode())


def test_a_large_file_is_streamed_with_bounded_memory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    size = 100 * MB
    path = _big_file(tmp_path / "export.txt", size)
    with LocalHttpServer(_created, keep_bodies=False) as server:
        set_dify_connection(monkeypatch, host=server.url, extra={"max_retries": 0, "upload_max_mb": 200})
        hook = DifyHook()
        assert hook.settings.base_url == server.url  # read the connection outside the measurement
        tracemalloc.start()
        try:
            result = hook.create_document_by_file(DATASET_ID, path, indexing_technique="economy")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        hook.close()
    assert result == success_body("create_document_by_file")
    (request,) = server.received
    assert request.method == "POST"
    assert request.path == f"/v1/datasets/{DATASET_ID}/document/create-by-file"
    _assert_whole_upload(request, size, "export.txt")
    assert peak < size / 20, f"peak Python heap {peak / MB:.1f} MB for a {size / MB:.0f} MB upload"


def test_a_repeated_upload_sends_the_whole_file_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    size = 3 * MB
    path = _big_file(tmp_path / "products.csv", size)

    def fail_first(request: ReceivedRequest) -> tuple[int, dict[str, str], bytes]:
        if len(server.received) == 1:
            return 502, {"Content-Type": "text/html"}, b"<html>502 Bad Gateway</html>"
        return _created(request)

    with LocalHttpServer(fail_first, keep_bodies=False) as server:
        set_dify_connection(monkeypatch, host=server.url)
        hook = DifyHook()
        hook.sleep = (sleeps := []).append
        hook.create_document_by_file(DATASET_ID, path)  # same-name upsert: safe to repeat
    assert len(server.received) == 2
    assert len(sleeps) == 1
    for request in server.received:
        _assert_whole_upload(request, size, "products.csv")
    assert server.received[0].body_size == server.received[1].body_size


def test_update_by_file_falls_back_to_post_and_resends_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Dify 1.13.2 answers the PATCH with 405; the hook sends the same upload to POST update-by-file."""
    size = 2 * MB
    path = _big_file(tmp_path / "products.csv", size)

    def old_server(request: ReceivedRequest) -> tuple[int, dict[str, str], bytes]:
        if request.method == "PATCH":
            return json_answer(
                405,
                {
                    "code": "method_not_allowed",
                    "message": "The method is not allowed for the requested URL.",
                    "status": 405,
                },
            )
        return json_answer(200, success_body("update_document_by_file"))

    with LocalHttpServer(old_server, keep_bodies=False) as server:
        set_dify_connection(monkeypatch, host=server.url)
        result = DifyHook().update_document_by_file(DATASET_ID, DOCUMENT_ID, path, process_rule={"mode": "automatic"})
    assert result == success_body("update_document_by_file")
    assert [(r.method, r.path) for r in server.received] == [
        ("PATCH", f"/v1/datasets/{DATASET_ID}/documents/{DOCUMENT_ID}"),
        ("POST", f"/v1/datasets/{DATASET_ID}/documents/{DOCUMENT_ID}/update-by-file"),
    ]
    _assert_whole_upload(server.received[1], size, "products.csv")
    data_part = server.received[1].head.split(b'name="data"')[1].split(b"\r\n\r\n", 1)[1].split(b"\r\n", 1)[0]
    assert json.loads(data_part) == {"process_rule": {"mode": "automatic"}}


@pytest.mark.parametrize(
    ("make_path", "filename", "error"),
    [
        (lambda tmp: tmp / "missing.pdf", None, "does not exist"),
        (lambda tmp: tmp, None, "not a regular file"),
        (lambda tmp: _big_file(tmp / "a.txt", 1024), "", "non-empty file name"),
        (lambda tmp: _big_file(tmp / "a.txt", 1024), "../etc/passwd", "must not contain"),
    ],
    ids=["missing file", "directory", "empty filename", "path as filename"],
)
def test_bad_uploads_are_refused_before_sending(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_path: object, filename: str | None, error: str
) -> None:
    with LocalHttpServer(_created) as server:
        set_dify_connection(monkeypatch, host=server.url)
        with pytest.raises(ValueError, match=f"^file: .*{error}"):
            DifyHook().create_document_by_file(DATASET_ID, make_path(tmp_path), filename=filename)
    assert server.received == []
