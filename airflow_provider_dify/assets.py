"""Dify knowledge bases as Airflow assets (datasets on Airflow 2.11), and as OpenLineage datasets.

A knowledge base is the asset ``dify://<api host>/datasets/<dataset id>``: the host (and port, when it is not
80 or 443) of the connection's API base URL, and the knowledge base's id (a UUID, lower case). Documents and
chunks are not assets of their own: a sync writes hundreds of them; the asset event's ``extra`` says which.

Registered in the provider info (``asset-uris`` for Airflow 3, ``dataset-uris`` for Airflow 2.11):

* :func:`sanitize_uri`: Airflow's normaliser for the ``dify`` scheme;
* :func:`create_asset`: the factory (``create_asset(host=..., dataset_id=...)``), as hook-level lineage calls it;
* :func:`convert_asset_to_openlineage`: the OpenLineage dataset of such an asset.

A knowledge base a DAG names by a literal name is also the asset ``dify-knowledge-base://<connection id>/<name>``
(the name percent-encoded): known when the DAG file is parsed, with no lookup, so a writing operator given
``dataset_name="support-faq"`` declares it as its outlet and Airflow has the asset before the first event. Its
handler, factory and converter are :func:`sanitize_named_uri`, :func:`create_named_asset` and
:func:`convert_named_asset_to_openlineage`.

For DAG authors: :func:`knowledge_base_asset` (the asset of a knowledge base by id, or by name through the API),
:func:`knowledge_base_named` (the asset of a knowledge base by connection and name, no I/O) and
:func:`knowledge_base_alias` (the asset alias for knowledge bases known only at run time). See docs/assets.md.

Nothing here is imported when a DAG file is parsed unless the DAG uses it; it imports no HTTP client.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, quote, unquote, urlsplit, urlunsplit

from airflow_provider_dify.hooks.connection import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import Dataset as OpenLineageDataset

#: The URI scheme of Dify knowledge bases.
SCHEME = "dify"
#: The URI scheme of a knowledge base named by its connection and its name.
NAMED_SCHEME = "dify-knowledge-base"
#: The prefix of the default asset alias of the writing operators (followed by the Dify connection id).
ALIAS_PREFIX = "dify:"
_DEFAULT_PORTS = (80, 443)


def _authority(host: str) -> str:
    """``host[:port]`` in lower case, without a default port; ``host`` may be a URL or ``host[:port]``."""
    text = str(host or "").strip()
    if not text:
        raise ValueError("host: the Dify API host is empty; pass the connection's host, e.g. 'api.dify.ai'.")
    parts = urlsplit(text if "//" in text else f"//{text}")
    try:
        hostname, port = parts.hostname, parts.port
    except ValueError as error:  # a port that is not a number
        raise ValueError(f"host: {host!r} has an invalid port ({error}).") from None
    if not hostname:
        raise ValueError(f"host: {host!r} names no host; pass e.g. 'api.dify.ai' or 'https://api.dify.ai/v1'.")
    if ":" in hostname:  # IPv6
        hostname = f"[{hostname}]"
    return hostname if port in (None, *_DEFAULT_PORTS) else f"{hostname}:{port}"


def _dataset_id(value: Any) -> str:
    """A knowledge base id in its canonical form (Dify's ids are UUIDs)."""
    text = str(value or "").strip()
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise ValueError(
            f"dataset_id: {value!r} is not a Dify knowledge base id (a UUID such as"
            " '5f0e1c2a-9d1b-4c3e-8f4a-1b2c3d4e5f60')."
        ) from None


def knowledge_base_uri(host: str, dataset_id: str) -> str:
    """
    The asset URI of a knowledge base: ``dify://<host>/datasets/<dataset id>``.

    :param host: the Dify API host, or the API base URL (``https://api.dify.ai/v1``); only the host and a
        non-default port are kept.
    :param dataset_id: the knowledge base's id.
    """
    return f"{SCHEME}://{_authority(host)}/datasets/{_dataset_id(dataset_id)}"


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """
    Normalise a ``dify://`` URI (Airflow's ``asset-uris`` handler): lower-case host, no default port, the id as a
    lower-case UUID, no query or fragment.

    :raises ValueError: when the URI is not ``dify://<host>/datasets/<dataset id>`` (document URIs included:
        documents are not assets).
    """
    if not uri.netloc:
        raise ValueError("A dify:// URI names the Dify API host: dify://<host>/datasets/<dataset id>.")
    segments = [segment for segment in uri.path.split("/") if segment]
    if len(segments) != 2 or segments[0] != "datasets":
        raise ValueError(
            f"A dify:// URI is dify://<host>/datasets/<dataset id> (a knowledge base), got path {uri.path!r};"
            " documents and chunks are not assets (the asset event's extra lists them)"
        )
    return SplitResult(
        scheme=SCHEME,
        netloc=_authority(uri.netloc.rpartition("@")[2]),
        path=f"/datasets/{_dataset_id(segments[1])}",
        query="",
        fragment="",
    )


def _conn_id(value: Any) -> str:
    """A Dify connection id as it goes into a named knowledge base's URI."""
    text = unquote(str(value or "")).strip()
    if not text or any(char in text for char in "/@:?#") or not text.isprintable():
        raise ValueError(f"dify_conn_id: {value!r} is not an Airflow connection id (letters, digits, '_', '-', '.').")
    return text


def _knowledge_base_name(value: Any) -> str:
    """A knowledge base name as Dify keeps it (checked, not altered)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"dataset_name: {value!r} is not a knowledge base name (a non-empty string).")
    return value


def knowledge_base_named_uri(dify_conn_id: str, dataset_name: str) -> str:
    """
    The asset URI of a knowledge base named ``dataset_name`` in the workspace of connection ``dify_conn_id``:
    ``dify-knowledge-base://<connection id>/<name, percent-encoded>``. No I/O.

    :param dify_conn_id: the ``dify`` connection the writing operators use.
    :param dataset_name: the knowledge base's exact name (Dify's names are unique in a workspace).
    """
    conn_id, name = quote(_conn_id(dify_conn_id), safe=""), quote(_knowledge_base_name(dataset_name), safe="")
    return f"{NAMED_SCHEME}://{conn_id}/{name}"


def sanitize_named_uri(uri: SplitResult) -> SplitResult:
    """
    Normalise a ``dify-knowledge-base://`` URI (Airflow's ``asset-uris`` handler): the name percent-encoded
    one way, no query or fragment.

    :raises ValueError: when the URI is not ``dify-knowledge-base://<connection id>/<name>``.
    """
    conn_id, name = _split_named(uri)
    clean = urlsplit(knowledge_base_named_uri(conn_id, name))
    return SplitResult(scheme=NAMED_SCHEME, netloc=clean.netloc, path=clean.path, query="", fragment="")


def _split_named(uri: SplitResult) -> tuple[str, str]:
    path = uri.path[1:] if uri.path.startswith("/") else uri.path
    if not uri.netloc or not path or "/" in path:
        raise ValueError(
            "A dify-knowledge-base:// URI is dify-knowledge-base://<connection id>/<knowledge base name>, with the"
            f" name percent-encoded (a '/' as %2F); got {urlunsplit(uri)!r}."
        )
    return _conn_id(uri.netloc), _knowledge_base_name(unquote(path))


def split_named_uri(uri: str) -> tuple[str, str]:
    """``(connection id, knowledge base name)`` of a ``dify-knowledge-base://`` URI."""
    parts = urlsplit(uri)
    if parts.scheme != NAMED_SCHEME:
        raise ValueError(f"Not a {NAMED_SCHEME}:// URI: {uri!r}.")
    return _split_named(parts)


def create_named_asset(*, dify_conn_id: str, dataset_name: str, extra: dict[str, Any] | None = None) -> Any:
    """
    The asset (a ``Dataset`` on Airflow 2.11) of a knowledge base by connection and name: Airflow's
    ``asset-uris`` factory of the ``dify-knowledge-base`` scheme.

    :param dify_conn_id: the ``dify`` connection.
    :param dataset_name: the knowledge base's exact name.
    :param extra: the asset's extra (not the event's).
    """
    return _asset_class()(uri=knowledge_base_named_uri(dify_conn_id, dataset_name), extra=extra)


def knowledge_base_named(dataset_name: str, dify_conn_id: str = DEFAULT_CONN_ID) -> Any:
    """
    The asset of the knowledge base named ``dataset_name``, for ``schedule=`` or ``outlets=``: no I/O, so it
    belongs in a DAG file.

    A writing operator given a literal ``dataset_name`` (``name`` for ``DifyCreateDatasetOperator``) declares
    this asset as its outlet by itself, and its events go to it; schedule a consumer on the same call.

    :param dataset_name: the knowledge base's exact name.
    :param dify_conn_id: the ``dify`` connection the writing operators use (default ``dify_default``).
    """
    return create_named_asset(dify_conn_id=dify_conn_id, dataset_name=dataset_name)


def convert_named_asset_to_openlineage(asset: Any, lineage_context: Any = None) -> OpenLineageDataset:
    """The OpenLineage dataset of a ``dify-knowledge-base://`` asset: namespace ``dify-knowledge-base://<connection
    id>``, name the knowledge base's name (the operators themselves report the knowledge base by host and id)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset as OpenLineageDataset

    conn_id, name = split_named_uri(asset.uri)
    return OpenLineageDataset(namespace=f"{NAMED_SCHEME}://{conn_id}", name=name)


def _asset_class() -> type:
    from airflow.providers.common.compat.sdk import Asset

    return Asset


def create_asset(*, host: str, dataset_id: str, extra: dict[str, Any] | None = None) -> Any:
    """
    The asset (a ``Dataset`` on Airflow 2.11) of a knowledge base: Airflow's ``asset-uris`` factory.

    :param host: the Dify API host, or the API base URL.
    :param dataset_id: the knowledge base's id.
    :param extra: the asset's extra (not the event's).
    """
    return _asset_class()(uri=knowledge_base_uri(host, dataset_id), extra=extra)


def knowledge_base_asset(
    dataset_id: str | None = None,
    *,
    dataset_name: str | None = None,
    dify_conn_id: str | None = None,
    host: str | None = None,
) -> Any:
    """
    The asset of a knowledge base, for ``schedule=`` or ``outlets=``, by id (no request) or by name.

    :param dataset_id: the knowledge base's id.
    :param dataset_name: its exact name instead: looked up through the Dify API, so call it in a task, not while
        the DAG file is parsed.
    :param dify_conn_id: the ``dify`` connection whose API host names the asset (default ``dify_default``);
        read from the connection unless ``host`` is given.
    :param host: the Dify API host or base URL (``https://api.dify.ai/v1``); then no connection is read.
    """
    if (dataset_id is None) == (dataset_name is None):
        raise ValueError("dataset_id or dataset_name: pass exactly one of them.")
    hook = None
    if host is None or dataset_name is not None:
        from airflow_provider_dify.hooks.dify import DifyHook

        hook = DifyHook(**({"dify_conn_id": dify_conn_id} if dify_conn_id else {}))
        host = host or hook.settings.base_url
    if dataset_name is not None:
        assert hook is not None
        found = hook.find_dataset_by_name(dataset_name)
        if found is None:
            raise ValueError(f"dataset_name: no knowledge base is named {dataset_name!r} in this workspace.")
        dataset_id = str(found["id"])
    return create_asset(host=str(host), dataset_id=str(dataset_id))


def default_alias_name(dify_conn_id: str) -> str:
    """The name of the asset alias the writing operators of connection ``dify_conn_id`` report through."""
    return f"{ALIAS_PREFIX}{dify_conn_id}"


def knowledge_base_alias(dify_conn_id: str = DEFAULT_CONN_ID) -> Any:
    """
    The asset alias (``DatasetAlias`` on 2.11) that the writing operators of a connection report through.

    A DAG scheduled on it runs after any of them changed a knowledge base; the triggering events' ``extra``
    says which one and what changed.

    :param dify_conn_id: the ``dify`` connection the writing operators use.
    """
    from airflow.providers.common.compat.sdk import AssetAlias

    return AssetAlias(name=default_alias_name(dify_conn_id))


def split_uri(uri: str) -> tuple[str, str]:
    """``(host, dataset id)`` of a ``dify://`` URI (normalised)."""
    parts = urlsplit(uri)
    if parts.scheme != SCHEME:
        raise ValueError(f"Not a dify:// URI: {uri!r}.")
    clean = sanitize_uri(parts)
    return clean.netloc, clean.path.rsplit("/", 1)[-1]


def openlineage_dataset(host: str, dataset_id: str, facets: dict[str, Any] | None = None) -> OpenLineageDataset:
    """The OpenLineage dataset of a knowledge base: namespace ``dify://<host>``, name ``datasets/<id>``."""
    from airflow.providers.common.compat.openlineage.facet import Dataset as OpenLineageDataset

    clean = urlsplit(knowledge_base_uri(host, dataset_id))
    return OpenLineageDataset(
        namespace=urlunsplit((SCHEME, clean.netloc, "", "", "")), name=clean.path.lstrip("/"), facets=facets or {}
    )


def convert_asset_to_openlineage(asset: Any, lineage_context: Any = None) -> OpenLineageDataset:
    """The OpenLineage dataset of a ``dify://`` asset (Airflow's ``asset-uris`` converter)."""
    host, dataset_id = split_uri(asset.uri)
    return openlineage_dataset(host, dataset_id)
