"""Checks of what callers pass, made before anything is sent: ids, texts, names, keys, uploads, metadata names.

Every check raises :class:`~airflow_provider_dify.exceptions.DifyArgumentError` (a ``ValueError``) whose message
starts with the argument's name and says how to fix it. The request descriptions of
:mod:`airflow_provider_dify.hooks.operations` call them for every id that goes into a URL path, so no id a
caller passes can change which route is called; the operators, the sensor and the trigger call the same ones
to fail earlier. Nothing here does I/O, and nothing here imports Airflow at module level (the connection
settings import this module while the provider info is read).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
from collections.abc import Iterable
from typing import Any, NoReturn

#: Dify's ids (knowledge bases, documents, chunks, child chunks, metadata fields, tags) are UUIDs.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: A UUID shown in messages (and used to describe a request without sending it).
UUID_EXAMPLE = "e6d8e8dc-2d56-4e90-8b01-f3edb7be07c2"
#: Batch ids are digit strings (``YYYYmmddHHMMSS`` plus 6 random digits on Dify 1.13.2: 20 digits).
_BATCH = re.compile(r"[0-9]{1,64}")
#: A workflow node id (Dify's are digit strings such as '1750836391776', or words such as 'start').
_NODE = re.compile(r"[A-Za-z0-9_-]{1,128}")
#: Control characters a text may hold: tab, line feed, vertical tab, form feed, carriage return.
_TEXT_WHITESPACE = frozenset("\t\n\x0b\x0c\r")

#: Dify's default ``UPLOAD_FILE_SIZE_LIMIT`` for documents, in MB.
DEFAULT_UPLOAD_MAX_MB = 15.0
#: The extensions Dify accepts for documents with its default ``ETL_TYPE=dify``.
DEFAULT_UPLOAD_EXTENSIONS: tuple[str, ...] = (
    "txt", "markdown", "md", "mdx", "pdf", "html", "htm", "xlsx", "xls", "docx", "csv", "vtt", "properties",
)  # fmt: skip
#: The longest metadata field name Dify accepts.
MAX_METADATA_NAME_LENGTH = 255
#: The names of Dify's built-in metadata fields: a custom field may not take them.
BUILT_IN_METADATA_NAMES: tuple[str, ...] = ("document_name", "uploader", "upload_date", "last_update_date", "source")
#: The shortest wait between two polls of the indexing status (``poll_interval``, ``poke_interval``), in seconds.
MIN_POLL_INTERVAL = 0.05
#: Length of the pieces of a secret that :func:`contains_secret` looks for.
SECRET_PIECE_LENGTH = 7
#: The public prefix of every knowledge API key: its pieces are no secret.
KEY_PREFIX = "dataset-"


def refuse(argument: str, message: str) -> NoReturn:
    """Raise :class:`~airflow_provider_dify.exceptions.DifyArgumentError` for ``argument`` (``"argument: message"``)."""
    from airflow_provider_dify.exceptions import DifyArgumentError

    raise DifyArgumentError(f"{argument}: {message}", argument=argument)


def refuse_upload(argument: str, message: str) -> NoReturn:
    """Raise :class:`~airflow_provider_dify.exceptions.DifyUploadRefusedError` for a file not sent (``argument``)."""
    from airflow_provider_dify.exceptions import DifyUploadRefusedError

    raise DifyUploadRefusedError(f"{argument}: {message}", argument=argument)


def _shown(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_id(value: Any, argument: str) -> str:
    """A Dify id (a UUID) that is safe in a URL path; anything else (``../..``, ``a/b``, a name) is refused."""
    if isinstance(value, str) and _UUID.fullmatch(value.strip()):
        return value.strip()
    by_name = {"dataset_id": "dataset_name", "document_id": "document_name"}.get(argument.split("[")[0])
    hint = f", or {by_name} to look it up by name" if by_name else ""
    refuse(
        argument,
        f"must be a Dify id (a UUID such as {UUID_EXAMPLE!r}), got {_shown(value)}; pass the id Dify returned{hint}.",
    )


def check_batch(value: Any, argument: str = "batch") -> str:
    """A Dify batch id: the digit string a create or update call returned."""
    if isinstance(value, str) and _BATCH.fullmatch(value.strip()):
        return value.strip()
    refuse(
        argument,
        f"must be the batch id a create or update call returned (digits, e.g. '20261123194403568155'),"
        f" got {_shown(value)}.",
    )


def check_node_id(value: Any, argument: str = "node_id") -> str:
    """A knowledge pipeline's node id, safe in a URL path: letters, digits, ``_`` and ``-`` only."""
    if isinstance(value, str) and _NODE.fullmatch(value.strip()):
        return value.strip()
    refuse(
        argument,
        f"must be the id of a node of the pipeline (letters, digits, '_' or '-', e.g. '1750836391776'),"
        f" got {_shown(value)}; copy it from the pipeline's editor in Dify.",
    )


#: Line breaks beyond ASCII's (NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR): ``str.splitlines`` and browsers break
#: lines there, so they are refused in one-line values (names, keys) as ``\n`` is.
UNICODE_LINE_BREAKS = frozenset("\x85\u2028\u2029")


def check_no_control(value: str, argument: str, *, text: bool = False) -> str:
    """``value`` without NUL or control characters (a ``text`` may hold tabs and line breaks) and without lone
    surrogates (which no UTF-8 request can carry); a one-line value without Unicode line breaks either."""
    for position, char in enumerate(value):
        code = ord(char)
        if (code < 32 or code == 127) and not (text and char in _TEXT_WHITESPACE):
            what = "tabs and line breaks are allowed, other" if text else "line breaks, tabs and other"
            refuse(
                argument,
                f"holds the control character {char!r} at position {position} ({what} control characters are"
                " not); remove it from the value.",
            )
        if not text and char in UNICODE_LINE_BREAKS:
            refuse(
                argument,
                f"holds the line break {char!r} (U+{code:04X}) at position {position}; a one-line value cannot hold"
                " line breaks; remove it from the value.",
            )
        if 0xD800 <= code <= 0xDFFF:
            refuse(
                argument,
                f"holds a lone surrogate {char!r} at position {position}, which is not a character (text decoded"
                " with errors='surrogateescape'?); decode the source as UTF-8 or remove it.",
            )
    return value


#: Dify truncates document names longer than this.
MAX_DOCUMENT_NAME_LENGTH = 200


def check_document_name(name: str, argument: str = "name") -> str:
    """A document name Dify keeps as given: one line, at most :data:`MAX_DOCUMENT_NAME_LENGTH` characters."""
    if len(name) > MAX_DOCUMENT_NAME_LENGTH:
        refuse(
            argument,
            f"the document name {name[:60]!r}... has {len(name)} characters; Dify keeps at most"
            f" {MAX_DOCUMENT_NAME_LENGTH} and silently cuts the rest, so the name would not find the document again;"
            " shorten it.",
        )
    return check_no_control(name, argument)


def check_metadata_name(name: Any, argument: str) -> str:
    """A custom metadata field name Dify accepts: 1-255 characters, one line, not a built-in field's name."""
    if not isinstance(name, str) or not name.strip():
        refuse(argument, f"metadata names must be non-empty strings, got {_shown(name)}.")
    if len(name) > MAX_METADATA_NAME_LENGTH:
        refuse(argument, f"the metadata name {name[:40]!r}... has {len(name)} characters; Dify allows at most 255.")
    if name in BUILT_IN_METADATA_NAMES:
        refuse(
            argument,
            f"{name!r} is the name of one of Dify's built-in metadata fields ({', '.join(BUILT_IN_METADATA_NAMES)});"
            " choose another name (e.g. with a prefix: 'src_source').",
        )
    return check_no_control(name, argument)


def non_finite(value: Any) -> bool:
    """Whether ``value`` is a NaN or an infinity (a float or a ``Decimal``), which JSON and Dify cannot hold."""
    import decimal
    import math

    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, decimal.Decimal) and not value.is_finite()


def check_metadata_value(value: Any, argument: str) -> Any:
    """A metadata value Dify stores: a string, a finite number or ``None`` (a dict or list would be turned into
    text; NaN and infinity cannot be sent)."""
    if isinstance(value, (dict, list, tuple, set, frozenset, bytes)):
        refuse(
            argument,
            f"metadata values are strings, numbers or None, got {type(value).__name__} {_shown(value)}; pick one"
            " value, or join the items into a string yourself.",
        )
    if non_finite(value):
        refuse(
            argument,
            f"metadata values are strings, finite numbers or None, got {type(value).__name__} {value!r}, which JSON"
            " and Dify cannot hold; pass None (or a number) instead.",
        )
    if isinstance(value, str):
        check_no_control(value, argument)
    return value


def check_key_value(value: Any, argument: str) -> Any:
    """A record key: a string or a number, never a dict or a list (whose text would not be stable)."""
    if isinstance(value, (dict, list, tuple, set, frozenset, bytes)):
        refuse(
            argument,
            f"a key must be a string or a number, got {type(value).__name__} {_shown(value)}; choose a key_field"
            " column holding one value per record.",
        )
    return value


def check_poll_interval(value: Any, argument: str) -> float:
    """Seconds between two polls: a number of at least :data:`MIN_POLL_INTERVAL` (0 would poll in a busy loop)."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= MIN_POLL_INTERVAL:
        refuse(
            argument,
            f"must be a number of seconds of at least {MIN_POLL_INTERVAL:g}, got {_shown(value)}; 5 is reasonable"
            " for a self-hosted Dify, 30 for Dify Cloud.",
        )
    return float(value)


def upload_extension(filename: str) -> str:
    """The lower-case extension of a file name (``""`` when it has none)."""
    return filename.rsplit(".", 1)[-1].lower() if "." in filename else ""


def check_upload(
    path: str | os.PathLike[str],
    filename: str,
    *,
    max_mb: float = DEFAULT_UPLOAD_MAX_MB,
    extensions: Iterable[str] = DEFAULT_UPLOAD_EXTENSIONS,
    size: int | None = None,
    argument: str = "file",
) -> None:
    """
    Refuse (:class:`~airflow_provider_dify.exceptions.DifyUploadRefusedError`) a file that the server would
    refuse or index as nothing: empty, over ``max_mb``, or of an extension not in ``extensions``.

    The connection's extras ``upload_max_mb`` and ``upload_extensions`` state the server's limits (default:
    Dify's, 15 MB and the default ETL's extensions).
    """
    allowed = tuple(extension.lower().lstrip(".") for extension in extensions)
    extension = upload_extension(filename)
    if extension not in allowed:
        refuse_upload(
            argument,
            f"{filename!r} has the extension {extension or '(none)'!r}, which the Dify server does not accept"
            f" (it accepts {', '.join(allowed)}); convert the file, or set the connection extra"
            " 'upload_extensions' if your server accepts more (ETL_TYPE=Unstructured).",
        )
    if size is None:
        size = os.path.getsize(path)
    if size == 0:
        refuse_upload(
            argument,
            f"{filename!r} is empty (0 bytes): it holds no text to index, as text='' would not; pass a file with"
            " content.",
        )
    if size > max_mb * 1024 * 1024:
        refuse_upload(
            argument,
            f"{filename!r} has {size / 1024 / 1024:.1f} MB, over the server's upload limit of {max_mb:g} MB; split the"
            " file, or set the connection extra 'upload_max_mb' to your server's UPLOAD_FILE_SIZE_LIMIT.",
        )


def check_upload_allowed(
    settings: Any, path: str | os.PathLike[str], filename: str, *, size: int | None = None, argument: str = "file"
) -> None:
    """:func:`check_upload` with the limits of a connection's settings (``upload_max_mb``, ``upload_extensions``)."""
    check_upload(
        path,
        filename,
        max_mb=getattr(settings, "upload_max_mb", DEFAULT_UPLOAD_MAX_MB),
        extensions=getattr(settings, "upload_extensions", DEFAULT_UPLOAD_EXTENSIONS),
        size=size,
        argument=argument,
    )


def secret_pieces(secret: str) -> set[str]:
    """Every piece of :data:`SECRET_PIECE_LENGTH` characters of ``secret`` but those of the public ``dataset-``."""
    if len(secret) < SECRET_PIECE_LENGTH:
        return {secret} if secret else set()
    pieces = {secret[start : start + SECRET_PIECE_LENGTH] for start in range(len(secret) - SECRET_PIECE_LENGTH + 1)}
    return {piece for piece in pieces if piece not in KEY_PREFIX}


def contains_secret(text: str, secret: str) -> bool:
    """Whether ``text`` holds ``secret`` or any piece of :data:`SECRET_PIECE_LENGTH` characters of it."""
    return bool(secret) and any(piece in text for piece in secret_pieces(secret))


def without_secret(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` replaced by ``***``; withheld entirely if a piece of the secret remains."""
    if not secret:
        return text
    cleaned = text.replace(secret, "***")
    if contains_secret(cleaned, secret):
        return "(message withheld: it held part of the API key)"
    return cleaned
