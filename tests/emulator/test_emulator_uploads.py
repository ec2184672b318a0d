"""File uploads: multipart parsing, extension and size limits, text extraction, large bodies."""

from __future__ import annotations

import io
import json
import os
import time
import uuid
import zipfile

import requests

from airflow_provider_dify.testing import DifyEmulator

DATA = {"data": json.dumps({"indexing_technique": "economy", "process_rule": {"mode": "automatic"}})}


def _create(client, dataset_id: str, files, data=DATA) -> requests.Response:
    return client.post(f"/datasets/{dataset_id}/document/create-by-file", data=data, files=files)


def test_text_files_are_extracted(client, emu: DifyEmulator) -> None:
    dataset_id = client.dataset()
    html = b"<html><head><title>T</title><style>p{}</style></head>"
    html += b"<body><p>Koalas sleep.</p><p>Pandas eat.</p></body>"
    document = _create(client, dataset_id, {"file": ("page.html", html)}).json()["document"]
    upload = document["data_source_detail_dict"]["upload_file"]
    assert (
        upload["extension"] == "html" and upload["mime_type"] == "text/html" and upload["size"] == len(html)
    )
    assert isinstance(upload["created_at"], float)
    csv = _create(client, dataset_id, {"file": ("products.csv", b"sku,name\nA1,pen\n")}).json()["document"]
    assert csv["data_source_detail_dict"]["upload_file"]["mime_type"] == "text/csv"
    docx = io.BytesIO()
    with zipfile.ZipFile(docx, "w") as archive:
        archive.writestr("word/document.xml", "<w:document><w:p><w:t>Docx words</w:t></w:p></w:document>")
    word = _create(client, dataset_id, {"file": ("report.docx", docx.getvalue())}).json()["document"]
    pdf = _create(client, dataset_id, {"file": ("scan.PDF", b"%PDF-1.4 binary")}).json()["document"]
    emu.complete_indexing()
    texts = {d["name"]: d["text"] for d in emu.documents(dataset_id)}
    assert texts["page.html"] == "Koalas sleep.\n\nPandas eat."
    assert texts["products.csv"] == "sku,name\nA1,pen\n"
    assert texts["report.docx"] == "Docx words"
    assert "scan.PDF" in texts[pdf["name"]]
    assert word["data_source_detail_dict"]["upload_file"]["extension"] == "docx"


def test_multipart_errors(client) -> None:
    dataset_id = client.dataset()
    response = _create(client, dataset_id, None)
    assert response.json() == {
        "code": "no_file_uploaded",
        "message": "Please upload your file.",
        "status": 400,
    }
    response = _create(client, dataset_id, [("file", ("a.txt", b"a")), ("other", ("b.txt", b"b"))])
    assert response.json()["code"] == "too_many_files"
    response = _create(client, dataset_id, {"file": ("", b"a")})
    assert response.json()["code"] == "filename_not_exists_error"
    response = _create(client, dataset_id, {"file": ("tool.exe", b"MZ")})
    assert response.status_code == 400
    assert response.json() == {"code": "invalid_param", "message": "", "status": 400}
    response = _create(client, dataset_id, {"file": ("a.txt", b"x")}, data={"data": "{not json"})
    assert response.status_code == 400 and response.json()["code"] == "invalid_param"
    # a JSON request on the file route has no file part
    response = client.post(f"/datasets/{dataset_id}/document/create_by_file", json={"x": 1})
    assert response.json()["code"] == "no_file_uploaded"


def test_size_limit_create_and_update(client, emu: DifyEmulator) -> None:
    emu.configure(upload_limit_bytes=1000)
    dataset_id = client.dataset()
    response = _create(client, dataset_id, {"file": ("big.txt", b"x" * 1001)})
    assert response.json() == {"code": "invalid_param", "message": "", "status": 400}
    document = _create(client, dataset_id, {"file": ("ok.txt", b"x" * 1000)}).json()["document"]
    emu.complete_indexing()
    url = f"/datasets/{dataset_id}/documents/{document['id']}/update-by-file"
    response = client.post(url, files={"file": ("big.txt", b"x" * 1001)})
    assert response.status_code == 413
    assert response.json()["code"] == "file_too_large"
    assert response.json()["message"].startswith("File size exceeded.")
    response = client.post(url, files={"file": ("tool.exe", b"MZ")})
    assert response.status_code == 415
    assert response.json() == {
        "code": "unsupported_file_type",
        "message": "File type not allowed.",
        "status": 415,
    }
    response = client.post(
        url.replace("update-by-file", "update_by_file"), files={"file": ("ok.md", b"# new")}
    )
    assert response.status_code == 200
    assert (
        response.json()["document"]["name"] == "ok.md"
        and response.json()["document"]["created_from"] == "web"
    )


def test_extension_list_is_a_knob(client, emu: DifyEmulator) -> None:
    dataset_id = client.dataset()
    assert _create(client, dataset_id, {"file": ("data.json", b"{}")}).status_code == 400
    emu.configure(allowed_extensions=("txt", "json"))
    document = _create(client, dataset_id, {"file": ("data.json", b'{"a": 1}')}).json()["document"]
    emu.complete_indexing()
    assert emu.document(dataset_id, document["id"])["text"] == '{"a": 1}'


def test_large_upload_is_streamed(client, emu: DifyEmulator) -> None:
    """A 200 MB upload is read in chunks and refused with the real body; the connection stays usable."""
    dataset_id = client.dataset()
    boundary = uuid.uuid4().hex
    size = 200 * 1024 * 1024
    block = os.urandom(1024 * 1024)

    def body():
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="data"\r\n\r\n{DATA["data"]}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="huge.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        for _ in range(size // len(block)):
            yield block
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    started = time.monotonic()
    response = client.post(f"/datasets/{dataset_id}/document/create-by-file", data=body(), headers=headers)
    assert response.status_code == 400
    assert response.json() == {"code": "invalid_param", "message": "", "status": 400}
    assert time.monotonic() - started < 60
    assert client.get("/datasets").status_code == 200


def test_filename_star_and_unicode_names(client, emu: DifyEmulator) -> None:
    dataset_id = client.dataset()
    document = _create(client, dataset_id, {"file": ("naïve résumé.txt", "héllo".encode())}).json()[
        "document"
    ]
    assert document["name"] == "naïve résumé.txt"
