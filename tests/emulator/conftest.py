"""Fixtures of the emulator tests: one shared emulator (reset per test) and an authenticated HTTP client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_dify.testing import DifyEmulator

FAST = {"indexing_seconds": 0.2, "queue_pickup_seconds": 0.02, "status_change_seconds": 0.3}


class Client:
    """A ``requests.Session`` bound to an emulator: ``client.get("/datasets")`` with the key sent."""

    def __init__(self, emulator: DifyEmulator) -> None:
        self.emulator = emulator
        self.session = requests.Session()
        self.session.headers.update(emulator.headers)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send a request to ``emulator.url + path``."""
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.emulator.url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """GET."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        """POST."""
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        """PATCH."""
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        """DELETE."""
        return self.request("DELETE", path, **kwargs)

    # helpers for common set-ups
    def dataset(self, name: str = "kb", **values: Any) -> str:
        """Create an economy dataset over HTTP; return its id."""
        body = {"name": name, "indexing_technique": "economy", **values}
        response = self.post("/datasets", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    def text_document(self, dataset_id: str, name: str, text: str, **values: Any) -> dict[str, Any]:
        """Create a text document; return ``{"document": ..., "batch": ...}``."""
        body = {
            "name": name,
            "text": text,
            "indexing_technique": "economy",
            "process_rule": {"mode": "automatic"},
        }
        body.update(values)
        response = self.post(f"/datasets/{dataset_id}/document/create-by-text", json=body)
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture(scope="session")
def _shared_emulator() -> Iterator[DifyEmulator]:
    emulator = DifyEmulator(**FAST)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def emu(_shared_emulator: DifyEmulator) -> Iterator[DifyEmulator]:
    """A running emulator with fast indexing, reset before and after the test."""
    _shared_emulator.reset()
    yield _shared_emulator
    _shared_emulator.reset()


@pytest.fixture
def client(emu: DifyEmulator) -> Iterator[Client]:
    """An authenticated client of ``emu``."""
    c = Client(emu)
    yield c
    c.session.close()
