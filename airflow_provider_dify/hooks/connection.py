"""The ``dify`` Airflow connection: how its fields and extras become client settings.

Shared by the sync hook and the async trigger client, so both read a connection the same way.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_dify.hooks.retries import RetryPolicy
from airflow_provider_dify.hooks.validation import (
    DEFAULT_UPLOAD_EXTENSIONS,
    DEFAULT_UPLOAD_MAX_MB,
    MIN_POLL_INTERVAL,
    refuse,
)

CONN_TYPE = "dify"
DEFAULT_CONN_ID = "dify_default"
DIFY_CLOUD_API = "https://api.dify.ai/v1"
DIFY_CLOUD_CONSOLE = "https://cloud.dify.ai"

#: Extras understood by the connection, with their meaning (also shown in the connection form).
CONNECTION_EXTRAS: dict[str, str] = {
    "timeout": "Seconds to wait for a response (default 60).",
    "connect_timeout": "Seconds to wait for a TCP/TLS connection (default 10).",
    "verify_ssl": "Verify the server's TLS certificate (default true).",
    "ca_bundle": "Path to a CA bundle to verify the server's certificate with.",
    "max_retries": "Retries after a failed attempt for errors worth repeating (default 4).",
    "retry_wait_max": "Longest back-off between retries, in seconds (default 30).",
    "rate_limit_wait": "Seconds to wait after a 429 without Retry-After (default 60; Dify's 403 waits for its window).",
    "requests_per_minute": "The workspace's knowledge rate limit per window (Dify Cloud: 10/100/1000 a minute).",
    "rate_limit_window": "Seconds of the rate limit's sliding window (default 60, Dify's).",
    "rate_limit_storage": (
        "Where the workspace's rate window is shared: 'machine' (default: the processes of this machine, through a"
        " lock file), 'process' (none: each process learns its share from 403s), or a 'limits' storage URI shared"
        " by all workers, e.g. redis://host:6379/0."
    ),
    "console_url": "Dify console URL for the task links (default: derived from the API URL).",
    "upload_max_mb": "The server's upload limit in MB (UPLOAD_FILE_SIZE_LIMIT; default 15, Dify's).",
    "upload_extensions": "File extensions the server accepts, comma-separated (default: Dify's default ETL's).",
    "poll_interval_max": (
        "Longest wait between two polls of the indexing status, in seconds, whatever a task's poll_interval or"
        " poke_interval says (default: none). The testing kit's dify_emulator fixture sets it so tests do not wait."
    ),
}


def normalize_base_url(host: str, *, schema: str | None = None, port: int | None = None) -> str:
    """
    Turn a connection host into the API base URL, ending in ``/v1``.

    ``api.dify.ai`` becomes ``https://api.dify.ai/v1``; ``http://dify.local`` becomes
    ``http://dify.local/v1``; a URL that already ends in ``/v1`` is kept.
    """
    host = (host or "").strip()
    if not host:
        raise ValueError(
            "host: the Dify connection needs the API base URL, e.g. https://api.dify.ai/v1 or http://my-dify-host/v1."
        )
    if "://" not in host:
        scheme = (schema or "").strip() if (schema or "").strip() in ("http", "https") else "https"
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"host: {host!r} is not an http(s) URL of a Dify API.")
    if "@" in parts.netloc:  # the message must not repeat what came before the @: it may be a password
        raise ValueError(
            f"host: the URL holds a user name or password before its host ({parts.scheme}://...@{parts.hostname});"
            " remove them: the Dify API key belongs in the connection's password field."
        )
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path = f"{path}/v1"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def console_url_for(base_url: str) -> str:
    """The console URL matching an API base URL: Dify Cloud's console, or the same host for self-hosted."""
    parts = urlsplit(base_url)
    if parts.hostname == "api.dify.ai":
        return DIFY_CLOUD_CONSOLE
    path = parts.path.rstrip("/")
    path = path[: -len("/v1")] if path.endswith("/v1") else path
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


@dataclass(frozen=True)
class DifyConnectionSettings:
    """
    Everything a client needs from a ``dify`` connection. The API key never appears in its repr.

    :param base_url: API base URL ending in ``/v1``.
    :param api_key: the knowledge ("dataset") API key.
    :param timeout: ``(connect, read)`` timeouts in seconds.
    :param verify: ``True``/``False`` or the path of a CA bundle.
    :param retry: the retry policy.
    :param requests_per_minute: the workspace's rate limit per window, ``None`` when unknown (then it is learnt
        from Dify's 403s; see :mod:`airflow_provider_dify.hooks.budget`).
    :param rate_limit_window: seconds of the rate limit's sliding window.
    :param rate_limit_storage: where the workspace's window is shared: ``"machine"`` (the processes of this
        machine, the default when ``requests_per_minute`` is set), ``"process"`` (no sharing), a ``limits``
        storage URI shared by all workers (never shown: it may hold a password), or ``None`` without a limit.
    :param console_url: the console URL for task links.
    :param upload_max_mb: the server's upload limit in MB.
    :param upload_extensions: the file extensions the server accepts.
    :param poll_interval_max: the longest wait between two indexing polls, whatever a task asks (``None``: no
        cap); see :meth:`poll_wait`.
    """

    base_url: str
    api_key: str = field(repr=False)
    timeout: tuple[float, float] = (10.0, 60.0)
    verify: bool | str = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    requests_per_minute: int | None = None
    console_url: str = ""
    upload_max_mb: float = DEFAULT_UPLOAD_MAX_MB
    upload_extensions: tuple[str, ...] = DEFAULT_UPLOAD_EXTENSIONS
    rate_limit_window: float = 60.0
    rate_limit_storage: str | None = field(default=None, repr=False)
    poll_interval_max: float | None = None

    def poll_wait(self, poll_interval: float) -> float:
        """The wait before the next indexing poll: a task's ``poll_interval``, at most ``poll_interval_max``."""
        if self.poll_interval_max is None:
            return poll_interval
        return min(poll_interval, self.poll_interval_max)

    @property
    def workspace_key(self) -> str:
        """A stable, non-secret identifier of the workspace (the key's hash), for sharing a throttle."""
        digest = hashlib.sha256(f"{self.base_url}\n{self.api_key}".encode()).hexdigest()
        return digest[:16]

    @classmethod
    def from_fields(
        cls,
        *,
        host: str | None,
        password: str | None,
        extra: Mapping[str, Any] | None,
        schema: str | None = None,
        port: int | None = None,
        conn_id: str = DEFAULT_CONN_ID,
    ) -> DifyConnectionSettings:
        """Build settings from the fields of an Airflow connection, with errors that name the field."""
        if not password or not password.strip():
            raise ValueError(
                f"Connection {conn_id!r}: the Password field must hold the Dify knowledge API key "
                "(Knowledge -> Service API -> API Key)."
            )
        _check_key(password.strip(), conn_id)
        # Connection forms store a field left blank as null or "": such a field is unset.
        extra = {key: value for key, value in dict(extra or {}).items() if value is not None and value != ""}
        unknown = sorted(set(extra) - set(CONNECTION_EXTRAS))
        if unknown:
            raise ValueError(
                f"Connection {conn_id!r}: unknown extra field(s) {', '.join(unknown)}; "
                f"known ones are {', '.join(CONNECTION_EXTRAS)}."
            )
        try:
            base_url = normalize_base_url(host or "", schema=schema, port=port)
        except ValueError as error:
            raise ValueError(f"Connection {conn_id!r}: {error}") from None

        def number(name: str, default: float, minimum: float = 0.0) -> float:
            value = extra.get(name, default)
            try:
                result = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"Connection {conn_id!r}: extra {name!r} must be a number, got {value!r}.") from None
            if result < minimum:
                raise ValueError(f"Connection {conn_id!r}: extra {name!r} must be at least {minimum:g}, got {value!r}.")
            return result

        def whole_number(name: str, default: int, minimum: int = 0) -> int:
            result = number(name, default, minimum)
            if not result.is_integer():
                raise ValueError(
                    f"Connection {conn_id!r}: extra {name!r} must be a whole number, got {extra.get(name)!r}."
                )
            return int(result)

        verify: bool | str = _boolean(extra.get("verify_ssl", True), "verify_ssl", conn_id)
        if extra.get("ca_bundle"):
            verify = str(extra["ca_bundle"])
            if not os.path.exists(verify):
                raise ValueError(
                    f"Connection {conn_id!r}: extra 'ca_bundle' is {verify!r}, which does not exist on this machine;"
                    " give the path of a PEM CA bundle (or a directory of certificates)."
                )
        requests_per_minute = whole_number("requests_per_minute", 0, 1) if "requests_per_minute" in extra else None
        retry = RetryPolicy(
            max_attempts=whole_number("max_retries", 4) + 1,
            backoff_max=number("retry_wait_max", 30.0),
            rate_limit_wait=number("rate_limit_wait", 60.0),
        )
        return cls(
            base_url=base_url,
            api_key=password.strip(),
            timeout=(number("connect_timeout", 10.0, 0.001), number("timeout", 60.0, 0.001)),
            verify=verify,
            retry=retry,
            requests_per_minute=requests_per_minute,
            console_url=str(extra.get("console_url") or console_url_for(base_url)).rstrip("/"),
            upload_max_mb=number("upload_max_mb", DEFAULT_UPLOAD_MAX_MB, 0.001),
            upload_extensions=_extensions(extra.get("upload_extensions"), conn_id),
            rate_limit_window=number("rate_limit_window", 60.0, 0.001),
            rate_limit_storage=_storage_uri(extra.get("rate_limit_storage"), requests_per_minute, conn_id),
            poll_interval_max=(
                number("poll_interval_max", MIN_POLL_INTERVAL, MIN_POLL_INTERVAL)
                if "poll_interval_max" in extra
                else None
            ),
        )

    @classmethod
    def from_connection(cls, conn: Any) -> DifyConnectionSettings:
        """Build settings from an Airflow ``Connection`` (its extras must be a JSON object)."""
        from airflow_provider_dify.exceptions import DifyArgumentError

        _check_extra_json(getattr(conn, "extra", None), conn.conn_id)
        try:
            return cls.from_fields(
                host=conn.host,
                password=conn.password,
                extra=conn.extra_dejson,
                schema=conn.schema,
                port=conn.port,
                conn_id=conn.conn_id,
            )
        except DifyArgumentError:
            raise
        except ValueError as error:  # a field the connection form got wrong: typed, naming the field
            text = str(error)
            field_name = "password" if "Password field" in text else "host" if ": host:" in text else "extra"
            raise DifyArgumentError(text, argument=field_name) from None


def _boolean(value: Any, name: str, conn_id: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return value.strip().lower() in ("true", "1", "yes", "on")
    raise ValueError(f"Connection {conn_id!r}: extra {name!r} must be true or false, got {value!r}.")


def _check_key(key: str, conn_id: str) -> None:
    """Refuse a key with whitespace or control characters inside (a paste with a line break): the message
    shows no part of the key, and no HTTP client gets to put it in an error of its own."""
    for char in key:
        if not 33 <= ord(char) <= 126:
            if char in "\r\n":
                kind = "a line break"
            elif char.isspace():
                kind = "whitespace"
            elif ord(char) < 32 or ord(char) == 127:
                kind = "a control character"
            else:
                kind = "a character that is not printable ASCII"
            refuse(
                "password",
                f"connection {conn_id!r}: the API key holds {kind} inside it; Dify's keys are 'dataset-' and"
                " letters and digits only. Copy the key again (Knowledge -> Service API -> API Key) and paste it"
                " without it.",
            )


def _check_extra_json(extra: Any, conn_id: str) -> None:
    """Refuse extras that are not a JSON object (Airflow would otherwise ignore them with a log line)."""
    import json

    if extra is None or (isinstance(extra, str) and not extra.strip()) or isinstance(extra, Mapping):
        return
    try:
        parsed = json.loads(extra)
    except (TypeError, ValueError) as error:
        refuse(
            "extra",
            f"connection {conn_id!r}: the Extra field is not valid JSON ({error}); write a JSON object"
            ' such as {"timeout": 60}.',
        )
    if not isinstance(parsed, Mapping):
        refuse("extra", f"connection {conn_id!r}: the Extra field must be a JSON object, got {type(parsed).__name__}.")


def _extensions(value: Any, conn_id: str) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_UPLOAD_EXTENSIONS
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        refuse(
            "extra", f"connection {conn_id!r}: extra 'upload_extensions' must be comma-separated text, got {value!r}."
        )
    extensions = tuple(item.strip().lower().lstrip(".") for item in items if item.strip())
    if not extensions:
        refuse("extra", f"connection {conn_id!r}: extra 'upload_extensions' names no extension.")
    return extensions


#: ``rate_limit_storage`` values that are not storage URIs.
MACHINE_STORAGE = "machine"
PROCESS_STORAGE = "process"


def _storage_uri(value: Any, requests_per_minute: int | None, conn_id: str) -> str | None:
    if value is None:
        return MACHINE_STORAGE if requests_per_minute is not None else None
    uri = str(value).strip()
    if uri == PROCESS_STORAGE:  # nothing shared: harmless without a limit
        return uri if requests_per_minute is not None else None
    if uri != MACHINE_STORAGE and "://" not in uri:
        raise ValueError(
            f"Connection {conn_id!r}: extra 'rate_limit_storage' must be 'machine', 'process' or a storage URI of"
            " the 'limits' library, e.g. redis://redis-host:6379/0."
        )
    if requests_per_minute is None:
        raise ValueError(
            f"Connection {conn_id!r}: extra 'rate_limit_storage' shares the workspace's rate limit, so it needs"
            " 'requests_per_minute' (the plan's limit) as well."
        )
    return uri
