"""HTTP behaviour of the emulator: auth, routing, bodies, keep-alive, lifecycle and the CLI."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from airflow_provider_dify.testing import DifyEmulator, EmulatorConfig


def test_auth_answers_like_dify(emu: DifyEmulator) -> None:
    url = emu.url + "/datasets"
    cases = [
        ({}, "Authorization header must be provided and start with 'Bearer'"),
        ({"Authorization": "Bearer"}, "Authorization header must be provided and start with 'Bearer'"),
        ({"Authorization": "Token abc"}, "Authorization scheme must be 'Bearer'"),
        ({"Authorization": "Bearer dataset-wrong"}, "Access token is invalid"),
        ({"Authorization": "Bearer app-123"}, "Access token is invalid"),
    ]
    for headers, message in cases:
        response = requests.get(url, headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json() == {"code": "unauthorized", "message": message, "status": 401}
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert (
        requests.get(url, headers={"Authorization": f"bearer {emu.api_key}"}, timeout=10).status_code == 200
    )


def test_api_key_is_random_per_instance() -> None:
    first, second = DifyEmulator(), DifyEmulator()
    assert first.api_key.startswith("dataset-") and len(first.api_key) > 16
    assert first.api_key != second.api_key
    assert DifyEmulator(api_key="dataset-fixed").api_key == "dataset-fixed"


def test_unknown_route_wrong_method_and_bad_ids(client) -> None:
    response = client.get("/no-such-route")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<title>404 Not Found</title>" in response.text
    assert client.get("/datasets/not-a-uuid").status_code == 404  # the uuid converter does not match
    response = client.request("PUT", "/datasets")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"] and "POST" in response.headers["Allow"]
    # routing happens before auth, as in Flask
    assert requests.put(client.emulator.url + "/datasets", timeout=10).status_code == 405


def test_json_body_errors(client) -> None:
    response = client.post(
        "/datasets", data="name=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    response = client.post("/datasets", data="{broken", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert response.json()["message"].startswith("Failed to decode JSON object: ")
    response = client.post("/datasets", data="", headers={"Content-Type": "application/json"})
    assert response.json()["message"] == "Invalid JSON payload received or JSON payload is empty."


def test_validation_errors_read_like_pydantic(client) -> None:
    response = client.post("/datasets", json={"name": ""})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_param"
    assert body["message"].startswith(
        "1 validation error for DatasetCreatePayload\nname\n  String should have"
    )
    response = client.post("/datasets", json={"name": "x" * 41, "indexing_technique": "fast"})
    message = response.json()["message"]
    assert message.startswith("2 validation errors for DatasetCreatePayload")
    assert "Input should be 'high_quality' or 'economy' [type=literal_error" in message


def test_delete_answers_204_with_json_content_type(client) -> None:
    dataset_id = client.dataset()
    response = client.delete(f"/datasets/{dataset_id}")
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["Content-Type"] == "application/json"
    assert client.get(f"/datasets/{dataset_id}").json()["message"] == "Dataset not found."


def test_keep_alive_reuses_one_connection(emu: DifyEmulator) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    headers = {"Authorization": f"Bearer {emu.api_key}", "Content-Type": "application/json"}
    for index in range(20):
        body = json.dumps({"name": f"ds-{index}", "indexing_technique": "economy"})
        conn.request("POST", "/v1/datasets", body=body, headers=headers)
        response = conn.getresponse()
        assert response.status == 200
        assert int(response.getheader("Content-Length")) == len(response.read())
        conn.request("GET", "/v1/nothing-here", headers=headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 404
    sock = conn.sock
    conn.request("GET", "/v1/datasets?limit=100", headers=headers)
    assert conn.getresponse().read()
    assert conn.sock is sock  # the same socket served every request
    conn.close()


def test_chunked_request_body(emu: DifyEmulator) -> None:
    def chunks():
        yield b'{"name": "chunked", '
        yield b'"indexing_technique": "economy"}'

    headers = {**emu.headers, "Content-Type": "application/json"}
    response = requests.post(emu.url + "/datasets", data=chunks(), headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "chunked"


def test_start_stop_context_manager_and_connection() -> None:
    with DifyEmulator(EmulatorConfig(indexing_seconds=0), server_version="1.13") as dify:
        assert dify.running
        assert dify.url == f"http://127.0.0.1:{dify.port}/v1"
        assert json.loads(dify.connection_json) == {
            "conn_type": "dify",
            "host": dify.url,
            "password": dify.api_key,
        }
        assert dify.connection_uri.startswith("dify://http://:")
        assert requests.get(dify.url + "/datasets", headers=dify.headers, timeout=10).status_code == 200
        port = dify.port
    assert not dify.running
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/v1/datasets", timeout=2)


def test_connection_uri_round_trips_through_airflow() -> None:
    connection_module = pytest.importorskip("airflow.models.connection")
    with DifyEmulator() as dify:
        conn = connection_module.Connection(conn_id="dify_uri", uri=dify.connection_uri)
        assert conn.host == dify.url
        assert conn.password == dify.api_key
        conn = connection_module.Connection.from_json(dify.connection_json, conn_id="dify_json")
        assert conn.host == dify.url and conn.password == dify.api_key and conn.conn_type == "dify"


def test_unknown_knob_and_bad_values_are_refused() -> None:
    with pytest.raises(TypeError):
        DifyEmulator(indexing_secs=1)
    with pytest.raises(ValueError):
        DifyEmulator(fault_rate=2)
    with pytest.raises(ValueError):
        DifyEmulator(server_version="latest")
    dify = DifyEmulator()
    with pytest.raises(TypeError):
        dify.configure(port=1)


def _run_command_line(*arguments: str, stop: signal.Signals = signal.SIGINT) -> tuple[list[str], int]:
    """Start ``python -m airflow_provider_dify.testing`` with a free port, read its banner, answer one
    ``high_quality`` create with the banner's key, stop it with ``stop`` (Ctrl-C's signal by default); return
    the banner and the status."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "airflow_provider_dify.testing", "--port", "0", *arguments]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    banner: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any("Press Ctrl-C" in line for line in banner) and time.monotonic() < deadline:
            banner.append(process.stdout.readline())
        exported = next(line for line in banner if "export AIRFLOW_CONN_DIFY_DEFAULT=" in line)
        connection = json.loads(exported.split("=", 1)[1].strip().strip("'"))
        response = requests.post(
            connection["host"] + "/datasets",
            headers={"Authorization": f"Bearer {connection['password']}"},
            json={"name": "curl-example", "indexing_technique": "high_quality"},
            timeout=10,
        )
        banner.append(f"create: {response.status_code}")
    finally:
        process.send_signal(stop)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()  # no emulator outlives the test
            raise
    return banner, process.returncode


def test_command_line_runs_until_interrupted() -> None:
    banner, returncode = _run_command_line("--api-key", "dataset-cli")
    assert returncode == 0
    assert any('"password": "dataset-cli"' in line for line in banner)
    # Dify's own curl examples create high_quality knowledge bases: an embedding model is emulated by default.
    assert banner[-1] == "create: 200"
    assert any("Embedding model: emulated" in line for line in banner)


def test_command_line_stops_cleanly_on_sigterm() -> None:
    banner, returncode = _run_command_line("--api-key", "dataset-cli", stop=signal.SIGTERM)
    assert returncode == 0 and banner[-1] == "create: 200"


def test_command_line_stops_on_ctrl_c_even_when_started_with_it_ignored() -> None:
    """A shell without job control starts background commands with Ctrl-C ignored (``cmd &`` in a script),
    and Python then never raises KeyboardInterrupt: the emulator takes Ctrl-C back, so no copy outlives a
    script or a test run that started it so."""
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the child, as from such a shell
    try:
        banner, returncode = _run_command_line("--api-key", "dataset-cli")
    finally:
        signal.signal(signal.SIGINT, ignored)
    assert returncode == 0 and banner[-1] == "create: 200"


def test_command_line_key_is_fixed_and_embeddings_can_be_refused() -> None:
    from airflow_provider_dify.testing.__main__ import CLI_API_KEY, CLI_PORT, _parser

    assert CLI_PORT != 5001  # a self-hosted Dify's API port
    banner, returncode = _run_command_line("--no-embedding-available")
    assert returncode == 0
    assert any(f"API key: {CLI_API_KEY}" in line for line in banner)  # the same on every start
    assert banner[-1] == "create: 400"  # as a Dify without an embedding model answers
    assert any("--embedding-available to emulate one" in line for line in banner)
    assert _parser().parse_args([]).port == CLI_PORT
