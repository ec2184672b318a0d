"""The ``dify`` connection: host normalisation, extras, the key, console URL, and errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify.hooks.connection import (
    CONNECTION_EXTRAS,
    DIFY_CLOUD_API,
    DIFY_CLOUD_CONSOLE,
    DifyConnectionSettings,
    console_url_for,
    normalize_base_url,
)
from airflow_provider_dify.hooks.dify import DifyHook
from tests.unit.helpers import make_api_key, set_dify_connection


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        ("api.dify.ai", None, None, "https://api.dify.ai/v1"),
        ("https://api.dify.ai/v1", None, None, "https://api.dify.ai/v1"),
        ("https://api.dify.ai/v1/", None, None, "https://api.dify.ai/v1"),
        ("http://dify.local", None, None, "http://dify.local/v1"),
        ("  http://dify.local/  ", None, None, "http://dify.local/v1"),
        ("dify.local", "http", None, "http://dify.local/v1"),
        ("dify.local", "https", 8443, "https://dify.local:8443/v1"),
        ("dify.local", "public", None, "https://dify.local/v1"),  # a database-style schema is not a scheme
        ("http://dify.local", None, 5001, "http://dify.local:5001/v1"),
        ("http://dify.local:5001/v1", None, 9999, "http://dify.local:5001/v1"),  # the URL's own port wins
        ("https://example.com/dify/", None, None, "https://example.com/dify/v1"),
        ("HTTP://Dify.Local/v1", None, None, "http://Dify.Local/v1"),
        ("http://127.0.0.1:8080/v1", None, None, "http://127.0.0.1:8080/v1"),
    ],
)
def test_host_normalisation(host: str, schema: str | None, port: int | None, expected: str) -> None:
    assert normalize_base_url(host, schema=schema, port=port) == expected


@pytest.mark.parametrize("host", ["", "   ", "ftp://dify.local", "http://", "https:///v1"])
def test_unusable_hosts_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match=r"^host: "):
        normalize_base_url(host)


@pytest.mark.parametrize(
    ("base_url", "console"),
    [
        (DIFY_CLOUD_API, DIFY_CLOUD_CONSOLE),
        ("http://dify.local/v1", "http://dify.local"),
        ("https://example.com:8443/dify/v1", "https://example.com:8443/dify"),
    ],
)
def test_console_url_derivation(base_url: str, console: str) -> None:
    assert console_url_for(base_url) == console


def _settings(extra: dict[str, Any] | None = None, **fields: Any) -> DifyConnectionSettings:
    arguments: dict[str, Any] = {"host": "http://dify.local/v1", "password": make_api_key(), "extra": extra}
    arguments.update(fields)
    return DifyConnectionSettings.from_fields(conn_id="my_dify", **arguments)


def test_defaults() -> None:
    key = make_api_key()
    settings = _settings(password=f"  {key}\n")
    assert settings.api_key == key
    assert settings.base_url == "http://dify.local/v1"
    assert settings.timeout == (10.0, 60.0)
    assert settings.verify is True
    assert settings.requests_per_minute is None
    assert settings.console_url == "http://dify.local"
    assert (settings.retry.max_attempts, settings.retry.backoff_max, settings.retry.rate_limit_wait) == (5, 30.0, 60.0)


def test_every_extra() -> None:
    settings = _settings(
        {
            "timeout": "90",
            "connect_timeout": 3,
            "verify_ssl": "false",
            "max_retries": 2,
            "retry_wait_max": 12.5,
            "rate_limit_wait": 61,
            "requests_per_minute": "100",
            "console_url": "https://console.example.com/",
        }
    )
    assert settings.timeout == (3.0, 90.0)
    assert settings.verify is False
    assert (settings.retry.max_attempts, settings.retry.backoff_max, settings.retry.rate_limit_wait) == (3, 12.5, 61.0)
    assert settings.requests_per_minute == 100
    assert settings.console_url == "https://console.example.com"


def test_dify_cloud() -> None:
    settings = _settings(host="api.dify.ai")
    assert settings.base_url == DIFY_CLOUD_API
    assert settings.console_url == DIFY_CLOUD_CONSOLE


def test_ca_bundle_replaces_verify(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert _settings({"ca_bundle": str(bundle)}).verify == str(bundle)


@pytest.mark.parametrize("value", [True, "true", "1", "yes", "on", "TRUE"])
def test_verify_ssl_true_spellings(value: Any) -> None:
    assert _settings({"verify_ssl": value}).verify is True


@pytest.mark.parametrize("value", [False, "false", "0", "no", "off", " False "])
def test_verify_ssl_false_spellings(value: Any) -> None:
    assert _settings({"verify_ssl": value}).verify is False


def test_blank_form_fields_mean_defaults() -> None:
    """Connection forms save fields left empty as null or "": they must not break the connection."""
    blank = _settings(dict.fromkeys(CONNECTION_EXTRAS, None))
    empty = _settings(dict.fromkeys(CONNECTION_EXTRAS, ""))
    default = _settings()
    for settings in (blank, empty):
        assert settings.timeout == default.timeout
        assert settings.verify is True
        assert settings.retry == default.retry
        assert settings.requests_per_minute is None
        assert settings.console_url == default.console_url


@pytest.mark.parametrize(
    ("extra", "field", "hint"),
    [
        ({"timeout": "soon"}, "timeout", "must be a number"),
        ({"timeout": 0}, "timeout", "at least"),
        ({"connect_timeout": -1}, "connect_timeout", "at least"),
        ({"max_retries": -1}, "max_retries", "at least"),
        ({"max_retries": 2.5}, "max_retries", "whole number"),
        ({"max_retries": [3]}, "max_retries", "must be a number"),
        ({"retry_wait_max": "x"}, "retry_wait_max", "must be a number"),
        ({"rate_limit_wait": -5}, "rate_limit_wait", "at least"),
        ({"requests_per_minute": 0}, "requests_per_minute", "at least"),
        ({"requests_per_minute": "lots"}, "requests_per_minute", "must be a number"),
        ({"verify_ssl": "maybe"}, "verify_ssl", "true or false"),
        ({"ca_bundle": "/no/such/ca.pem"}, "ca_bundle", "does not exist"),
    ],
)
def test_bad_extras_name_the_field(extra: dict[str, Any], field: str, hint: str) -> None:
    with pytest.raises(ValueError) as raised:
        _settings(extra)
    message = str(raised.value)
    assert "'my_dify'" in message
    assert f"'{field}'" in message
    assert hint in message


def test_unknown_extras_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError) as raised:
        _settings({"timeout": 5, "retries": 3})
    message = str(raised.value)
    assert "unknown extra field(s) retries" in message
    assert all(name in message for name in CONNECTION_EXTRAS)


@pytest.mark.parametrize("password", [None, "", "   "])
def test_missing_password(password: str | None) -> None:
    with pytest.raises(ValueError, match="'my_dify': the Password field must hold the Dify knowledge API key"):
        _settings(password=password)


def test_missing_host_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"^Connection 'my_dify': host: "):
        _settings(host=None)


def test_workspace_key_is_stable_and_not_the_key() -> None:
    key = make_api_key()
    first = _settings(password=key)
    assert first.workspace_key == _settings(password=key).workspace_key
    assert first.workspace_key != _settings().workspace_key
    assert key not in first.workspace_key


# -- through Airflow's connection lookup ------------------------------------------------------------------------------


def test_json_connection_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    key = set_dify_connection(
        monkeypatch, "dify_prod", host="dify.example.com", extra={"timeout": 5, "requests_per_minute": 10}
    )
    settings = DifyHook("dify_prod").settings
    assert settings.base_url == "https://dify.example.com/v1"
    assert settings.api_key == key
    assert settings.timeout == (10.0, 5.0)
    assert settings.requests_per_minute == 10
    assert settings.console_url == "https://dify.example.com"


def test_uri_connection_with_port_and_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    key = make_api_key()
    monkeypatch.setenv("AIRFLOW_CONN_DIFY_URI", f"dify://:{key}@dify.local:8080/http?max_retries=1")
    settings = DifyHook("dify_uri").settings
    assert settings.base_url == "http://dify.local:8080/v1"
    assert settings.api_key == key
    assert settings.retry.max_attempts == 2


def test_connection_without_a_key_fails_when_used(monkeypatch: pytest.MonkeyPatch) -> None:
    set_dify_connection(monkeypatch, "dify_nokey", password="")
    with pytest.raises(ValueError, match="'dify_nokey': the Password field"):
        DifyHook("dify_nokey").get_dataset("e6d8e8dc-2d56-4e90-8b01-f3edb7be07c2")


def test_bad_extra_fails_before_anything_is_sent(monkeypatch: pytest.MonkeyPatch, requests_mock: Any) -> None:
    set_dify_connection(monkeypatch, "dify_bad", extra={"timeout": "forever"})
    with pytest.raises(ValueError, match="extra 'timeout' must be a number"):
        DifyHook("dify_bad").list_datasets()
    assert requests_mock.call_count == 0


def test_poll_interval_max_caps_the_waits_between_polls() -> None:
    assert _settings().poll_interval_max is None
    assert _settings().poll_wait(30) == 30  # no cap: the task's interval
    capped = _settings({"poll_interval_max": "0.05"})
    assert capped.poll_interval_max == 0.05
    assert capped.poll_wait(30) == 0.05 and capped.poll_wait(0.05) == 0.05
    with pytest.raises(ValueError, match=r"'poll_interval_max' must be at least 0\.05"):
        _settings({"poll_interval_max": 0})  # 0 would poll in a busy loop
