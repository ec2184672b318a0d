"""Knobs for tests and benchmarks: limits, faults, indexing outcomes, counters, resets, the plugin."""

from __future__ import annotations

import json
import os
import time

import pytest
import requests

from airflow_provider_dify.testing import DifyEmulator

RATE_LIMIT_BODY = {
    "code": "forbidden",
    "message": "Sorry, you have reached the knowledge base request rate limit of your subscription.",
    "status": 403,
}


def test_rate_limit_only_on_limited_routes_and_rejected_calls_count(client, emu: DifyEmulator) -> None:
    emu.configure(rate_limit_per_minute=3, rate_limit_window_seconds=0.5)
    for index in range(3):
        assert client.post("/datasets", json={"name": f"kb-{index}"}).status_code == 200
    response = client.post("/datasets", json={"name": "kb-3"})
    assert response.status_code == 403 and response.json() == RATE_LIMIT_BODY
    assert "Retry-After" not in response.headers
    for _ in range(5):  # GET routes are not limited
        assert client.get("/datasets").status_code == 200
    time.sleep(0.3)
    assert client.post("/datasets", json={"name": "kb-3"}).status_code == 403  # the rejected call counted
    time.sleep(0.55)
    assert client.post("/datasets", json={"name": "kb-3"}).status_code == 200


def test_document_quota_and_sandbox(client, emu: DifyEmulator) -> None:
    emu.configure(document_limit=1, sandbox_plan=True)
    dataset_id = client.dataset()
    doc_id = client.text_document(dataset_id, "a.txt", "text")["document"]["id"]
    response = client.post(f"/datasets/{dataset_id}/document/create-by-text", json={"name": "b", "text": "b"})
    assert response.status_code == 403
    assert response.json()["message"] == "The number of documents has reached the limit of your subscription."
    emu.complete_indexing()
    response = client.post(
        f"/datasets/{dataset_id}/documents/{doc_id}/segments", json={"segments": [{"content": "x"}]}
    )
    assert response.status_code == 403
    assert response.json()["message"].startswith("To unlock this feature and elevate your Dify experience")
    assert client.get(f"/datasets/{dataset_id}/documents/{doc_id}/segments").status_code == 200


def test_fail_next_before_processing_does_not_write(client, emu: DifyEmulator) -> None:
    emu.fail_next(status=503, method="POST", route="/datasets")
    response = client.post("/datasets", json={"name": "kb"})
    assert response.status_code == 503 and response.headers["Content-Type"].startswith("text/html")
    assert emu.datasets() == []
    assert client.post("/datasets", json={"name": "kb"}).status_code == 200  # only the next one failed


def test_fail_next_after_processing_writes_then_fails(client, emu: DifyEmulator) -> None:
    dataset_id = client.dataset()
    emu.fail_next(status=500, route="/datasets/{dataset_id}/document/create-by-text", after_processing=True)
    response = client.post(
        f"/datasets/{dataset_id}/document/create-by-text",
        json={
            "name": "a.txt",
            "text": "t",
            "indexing_technique": "economy",
            "process_rule": {"mode": "automatic"},
        },
    )
    assert response.status_code == 500 and response.json()["code"] == "unknown"
    assert [d["name"] for d in emu.documents(dataset_id)] == ["a.txt"]  # the write happened


def test_fail_next_reset_drops_the_connection(client, emu: DifyEmulator) -> None:
    emu.fail_next(count=2, status="reset", method="POST", after_processing=True)
    with pytest.raises(requests.ConnectionError):
        client.post("/datasets", json={"name": "lost-1"})
    with pytest.raises(requests.ConnectionError):
        client.post("/datasets", json={"name": "lost-2"})
    assert sorted(d["name"] for d in emu.datasets()) == ["lost-1", "lost-2"]
    emu.fail_next(status="reset", route="/datasets")
    with pytest.raises(requests.ConnectionError):
        client.get("/datasets")
    assert client.get("/datasets").status_code == 200
    assert emu.count(route="/datasets", status=0) == 3


def test_fault_rate_is_seeded(emu: DifyEmulator) -> None:
    def run() -> list[int]:
        emu.reset()
        emu.configure(fault_rate=0.3, seed=7)
        session = requests.Session()
        statuses = [session.get(emu.url + "/datasets", headers=emu.headers).status_code for _ in range(40)]
        session.close()
        return statuses

    first, second = run(), run()
    assert first == second
    assert 0 < sum(s != 200 for s in first) < 40
    assert set(first) <= {200, 500, 502, 503}
    assert emu.count(status=200) == first.count(200)


def test_reset_rate_and_latency(emu: DifyEmulator) -> None:
    emu.configure(reset_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        requests.get(emu.url + "/datasets", headers=emu.headers, timeout=10)
    emu.configure(reset_rate=0.0, latency_seconds=0.2)
    started = time.monotonic()
    assert requests.get(emu.url + "/datasets", headers=emu.headers, timeout=10).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_counters(client, emu: DifyEmulator) -> None:
    dataset_id = client.dataset()
    client.get(f"/datasets/{dataset_id}")
    client.get(f"/datasets/{dataset_id}")
    client.get("/no-such-route")
    requests.get(emu.url + "/datasets", timeout=10)  # 401
    assert emu.count() == 5
    assert emu.count("GET", "/datasets/{dataset_id}") == 2
    assert emu.count(route=f"/v1/datasets/{dataset_id}") == 2
    assert emu.count(status=401) == 1
    assert emu.write_count() == 1
    calls = emu.calls
    assert calls[0].method == "POST" and calls[0].route == "/datasets" and calls[0].status == 200
    assert calls[3].route is None and calls[3].status == 404
    emu.reset_counters()
    assert emu.calls == [] and emu.count() == 0
    assert len(emu.datasets()) == 1  # the state is kept


def test_calls_keep_request_bodies_but_not_uploaded_files(client, emu: DifyEmulator) -> None:
    dataset_id = client.dataset()
    text = {"name": "a.txt", "text": "first text", "indexing_technique": "economy"}
    text["process_rule"] = {"mode": "automatic"}
    assert client.post(f"/datasets/{dataset_id}/document/create-by-text", json=text).status_code == 200
    upload = client.post(
        f"/datasets/{dataset_id}/document/create-by-file",
        data={"data": json.dumps({"indexing_technique": "economy", "process_rule": {"mode": "automatic"}})},
        files={"file": ("b.txt", b"file bytes", "text/plain")},
    )
    assert upload.status_code == 200
    client.get(f"/datasets/{dataset_id}")
    emu.fail_next(status=502)
    assert client.post(f"/datasets/{dataset_id}/document/create-by-text", json=text).status_code == 502
    create_dataset, by_text, by_file, get, refused = emu.calls
    assert create_dataset.json() == {"name": "kb", "indexing_technique": "economy"}
    assert by_text.json() == text  # the body as sent, in the order answered
    assert by_file.body == b"" and by_file.json() is None  # the upload's parts are not kept
    assert get.body == b"" and refused.body == b""  # refused before it was read
    assert "first text" not in repr(by_text)


def test_reset_clears_state_faults_and_knobs(client, emu: DifyEmulator) -> None:
    client.dataset()
    emu.configure(indexing_seconds=9, rate_limit_per_minute=1)
    emu.fail_next(count=5)
    emu.set_indexing_outcome("x", "error")
    emu.reset()
    assert emu.datasets() == [] and emu.calls == []
    assert emu.config.indexing_seconds == 0.2 and emu.config.rate_limit_per_minute is None
    assert emu.state.outcome_rules == []
    assert client.get("/datasets").status_code == 200


def test_indexing_outcomes(client, emu: DifyEmulator) -> None:
    emu.set_indexing_outcome("broken.txt", "error", error="PDF is encrypted")
    emu.set_indexing_outcome("slow.txt", "stall")
    emu.set_indexing_outcome(lambda doc: doc["name"].startswith("queued"), "stuck")
    emu.set_indexing_outcome("held.txt", "paused", count=1)
    dataset_id = client.dataset()
    batches = {
        name: client.text_document(dataset_id, name, "some text")["batch"]
        for name in ["broken.txt", "slow.txt", "queued-1.txt", "held.txt", "fine.txt"]
    }
    assert emu.wait_for_indexing(timeout=10)

    def entry(name: str) -> dict:
        return client.get(f"/datasets/{dataset_id}/documents/{batches[name]}/indexing-status").json()["data"][
            0
        ]

    broken = entry("broken.txt")
    assert broken["indexing_status"] == "error" and broken["error"] == "PDF is encrypted"
    assert broken["stopped_at"] is not None
    assert entry("slow.txt")["indexing_status"] == "indexing" and entry("slow.txt")["completed_segments"] == 0
    assert entry("queued-1.txt")["indexing_status"] == "waiting"
    assert entry("held.txt")["indexing_status"] == "paused"
    assert entry("fine.txt")["indexing_status"] == "completed"  # stalled and stuck documents do not block
    statuses = {
        d["name"]: d["display_status"] for d in client.get(f"/datasets/{dataset_id}/documents").json()["data"]
    }
    assert statuses == {
        "broken.txt": "error",
        "slow.txt": "indexing",
        "queued-1.txt": "queuing",
        "held.txt": "paused",
        "fine.txt": "available",
    }
    # the "paused" rule was for one document only: a re-upload indexes normally
    again = client.text_document(dataset_id, "held.txt", "new text")["batch"]
    emu.complete_indexing()
    status = client.get(f"/datasets/{dataset_id}/documents/{again}/indexing-status").json()["data"][0]
    assert status["indexing_status"] == "completed"


def test_advance_time_drives_indexing(client, emu: DifyEmulator) -> None:
    emu.configure(indexing_seconds=100)
    dataset_id = client.dataset()
    batch = client.text_document(dataset_id, "a.txt", "text")["batch"]
    emu.advance_time(50)
    assert (
        client.get(f"/datasets/{dataset_id}/documents/{batch}/indexing-status").json()["data"][0][
            "indexing_status"
        ]
        == "indexing"
    )
    emu.advance_time(60)
    status = client.get(f"/datasets/{dataset_id}/documents/{batch}/indexing-status").json()["data"][0]
    assert status["indexing_status"] == "completed" and status["completed_segments"] == 1


def test_seeding_helpers(emu: DifyEmulator, client) -> None:
    dataset = emu.create_dataset("seeded")
    document = emu.create_document(dataset["id"], "a.txt", "Seeded text.")
    assert document["indexing_status"] == "completed" and document["text"] == "Seeded text."
    assert emu.find_dataset("seeded")["total_available_documents"] == 1
    assert client.get(f"/datasets/{dataset['id']}/documents").json()["total"] == 1
    assert emu.count() == 1  # seeding does not count as requests


def test_plugin_fixture_sets_the_airflow_connection(dify_emulator: DifyEmulator) -> None:
    connection = json.loads(os.environ["AIRFLOW_CONN_DIFY_DEFAULT"])
    assert connection == {
        "conn_type": "dify",
        "host": dify_emulator.url,
        "password": dify_emulator.api_key,
        "extra": json.dumps({"poll_interval_max": 0.05}),  # the fixture's cap on indexing polls
    }
    assert dify_emulator.config.indexing_seconds == 0.01 and dify_emulator.config.queue_pickup_seconds == 0
    assert (
        requests.get(dify_emulator.url + "/datasets", headers=dify_emulator.headers, timeout=10).status_code
        == 200
    )
    assert dify_emulator.datasets() == []


@pytest.mark.dify_emulator(server_version="1.13", indexing_seconds=0.3, poll_interval_max=None)
def test_plugin_marker_sets_knobs(dify_emulator: DifyEmulator) -> None:
    assert dify_emulator.config.server_version == "1.13"
    assert dify_emulator.config.indexing_seconds == 0.3  # realistic pacing, asked for
    assert "extra" not in json.loads(os.environ["AIRFLOW_CONN_DIFY_DEFAULT"])  # no cap on the polls
