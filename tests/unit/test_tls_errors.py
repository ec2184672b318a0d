"""A failed TLS handshake is a DifyTLSError and is never retried; other connection failures still are."""

from __future__ import annotations

import ssl

import httpx
import requests
from urllib3.exceptions import MaxRetryError

from airflow_provider_dify.exceptions import DifyConnectionError, DifyTLSError
from airflow_provider_dify.hooks import operations as ops
from airflow_provider_dify.hooks.responses import connection_error
from airflow_provider_dify.hooks.retries import RetryPolicy

REQUEST = ops.get_dataset("e6d8e8dc-2d56-4e90-8b01-f3edb7be07c2")


def _requests_tls_error() -> requests.exceptions.SSLError:
    reason = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    return requests.exceptions.SSLError(MaxRetryError(None, "/v1/datasets/d1", reason=reason))


def _httpx_tls_error() -> httpx.ConnectError:
    try:
        try:
            raise ssl.SSLCertVerificationError(1, "certificate verify failed")
        except ssl.SSLError as cause:
            raise httpx.ConnectError("certificate verify failed") from cause
    except httpx.ConnectError as error:
        return error


def test_requests_tls_failure_maps_to_tls_error_and_is_not_retried() -> None:
    error = connection_error(REQUEST, _requests_tls_error(), maybe_delivered=False)
    assert isinstance(error, DifyTLSError)
    assert error.method == "GET" and error.path == "/datasets/e6d8e8dc-2d56-4e90-8b01-f3edb7be07c2"
    assert RetryPolicy().should_retry(REQUEST, error) is False


def test_httpx_tls_failure_maps_to_tls_error() -> None:
    error = connection_error(REQUEST, _httpx_tls_error(), maybe_delivered=False)
    assert isinstance(error, DifyTLSError)
    assert RetryPolicy().should_retry(REQUEST, error) is False


def test_a_refused_connection_is_still_retried() -> None:
    refused = requests.exceptions.ConnectionError(
        MaxRetryError(None, "/v1/datasets/d1", reason=ConnectionRefusedError())
    )
    error = connection_error(REQUEST, refused, maybe_delivered=False)
    assert type(error) is DifyConnectionError
    assert RetryPolicy().should_retry(REQUEST, error) is True
