"""
Streaming request bodies: a reader for ``Content-Length`` and chunked bodies, and a multipart/form-data parser
that keeps at most ``limit + 1`` bytes of a file part in memory (the rest is counted and discarded).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import unquote

READ_SIZE = 256 * 1024
MAX_FIELD_BYTES = 4 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024


class BodyError(Exception):
    """The request body could not be read (the client went away or sent a malformed body)."""


class BodyReader:
    """
    Reads a request body from a socket file: ``Content-Length`` bytes, or a chunked body.

    :param rfile: the connection's buffered reader.
    :param length: the ``Content-Length`` (``None`` with ``chunked``).
    :param chunked: ``Transfer-Encoding: chunked``.
    """

    def __init__(self, rfile: BinaryIO, length: int | None, chunked: bool = False) -> None:
        self._rfile = rfile
        self._remaining = 0 if length is None else max(0, length)
        self._chunked = chunked
        self._chunk_left = 0
        self._done = not chunked and self._remaining == 0

    def read(self, size: int = READ_SIZE) -> bytes:
        """Up to ``size`` bytes of the body; ``b""`` at its end."""
        if self._done:
            return b""
        if not self._chunked:
            data = self._rfile.read(min(size, self._remaining))
            if not data:
                raise BodyError("connection closed while reading the body")
            self._remaining -= len(data)
            self._done = self._remaining == 0
            return data
        if self._chunk_left == 0:
            line = self._rfile.readline(1024)
            if not line:
                raise BodyError("connection closed while reading a chunk size")
            try:
                self._chunk_left = int(line.split(b";", 1)[0].strip() or b"0", 16)
            except ValueError as exc:
                raise BodyError("malformed chunk size") from exc
            if self._chunk_left == 0:
                while True:  # trailers
                    trailer = self._rfile.readline(1024)
                    if trailer in (b"\r\n", b"\n", b""):
                        break
                self._done = True
                return b""
        data = self._rfile.read(min(size, self._chunk_left))
        if not data:
            raise BodyError("connection closed while reading a chunk")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._rfile.readline(16)
        return data

    def read_all(self, limit: int | None = None) -> bytes:
        """The whole body (keeps at most ``limit`` bytes, discards the rest)."""
        parts: list[bytes] = []
        kept = 0
        while True:
            data = self.read()
            if not data:
                break
            if limit is None or kept < limit:
                take = data if limit is None else data[: limit - kept]
                parts.append(take)
                kept += len(take)
        return b"".join(parts)

    def drain(self) -> None:
        """Read and discard what is left of the body (keeps the connection usable)."""
        while self.read():
            pass


@dataclass
class Part:
    """
    One part of a multipart body.

    :param name: the form field name.
    :param filename: the file name (``None`` for a plain form field, ``""`` for an empty one).
    :param content_type: the part's content type.
    :param data: the part's bytes, at most the parser's limit.
    :param size: the part's full size in bytes.
    """

    name: str
    filename: str | None
    content_type: str
    data: bytes = b""
    size: int = 0
    _chunks: list[bytes] = field(default_factory=list, repr=False)

    @property
    def text(self) -> str:
        """The part decoded as UTF-8."""
        return self.data.decode("utf-8", "replace")


_PARAM_RE = re.compile(r';\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def _disposition_params(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, raw in _PARAM_RE.findall(value):
        key = key.lower()
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        if key.endswith("*"):
            key = key[:-1]
            charset, _, rest = raw.partition("'")
            _, _, encoded = rest.partition("'")
            raw = unquote(encoded, encoding=charset or "utf-8", errors="replace")
            params[key] = raw
        else:
            params.setdefault(key, raw)
    return params


def boundary_of(content_type: str) -> bytes | None:
    """The boundary parameter of a ``multipart/form-data`` content type."""
    params = _disposition_params(";" + content_type.split(";", 1)[1]) if ";" in content_type else {}
    boundary = params.get("boundary")
    return boundary.encode("latin-1") if boundary else None


def parse_multipart(reader: BodyReader, boundary: bytes, file_limit: int) -> list[Part]:
    """
    Parse a multipart body while reading it.

    :param reader: the body reader.
    :param boundary: the multipart boundary.
    :param file_limit: bytes to keep of a file part; the part's ``size`` still counts everything.
    """
    delimiter = b"\r\n--" + boundary
    keep = len(delimiter) - 1
    buf = b"\r\n"
    eof = False
    parts: list[Part] = []

    def fill() -> None:
        nonlocal buf, eof
        data = reader.read()
        if not data:
            eof = True
        else:
            buf += data

    while True:  # preamble
        index = buf.find(delimiter)
        if index >= 0:
            buf = buf[index + len(delimiter) :]
            break
        if eof:
            return parts
        buf = buf[-keep:]
        fill()

    while True:
        while len(buf) < 2 and not eof:
            fill()
        if buf[:2] == b"--" or len(buf) < 2:
            break
        while (line_end := buf.find(b"\r\n")) < 0:
            if eof:
                return parts
            fill()
        buf = buf[line_end + 2 :]
        if buf.startswith(b"\r\n"):
            header_block, buf = b"", buf[2:]
        else:
            while (header_end := buf.find(b"\r\n\r\n")) < 0:
                if eof or len(buf) > MAX_HEADER_BYTES:
                    return parts
                fill()
            header_block, buf = buf[:header_end], buf[header_end + 4 :]
        headers: dict[str, str] = {}
        for raw_line in header_block.decode("utf-8", "replace").split("\r\n"):
            name, sep, value = raw_line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        params = _disposition_params(";" + headers.get("content-disposition", "").partition(";")[2])
        part = Part(
            name=params.get("name", ""),
            filename=params.get("filename"),
            content_type=headers.get("content-type", "text/plain" if "filename" not in params else ""),
        )
        cap = file_limit + 1 if part.filename is not None else MAX_FIELD_BYTES
        kept = 0

        def emit(data: bytes, part: Part = part, cap: int = cap) -> None:
            nonlocal kept
            part.size += len(data)
            if kept < cap and data:
                take = data[: cap - kept]
                part._chunks.append(take)
                kept += len(take)

        finished = False
        while True:
            index = buf.find(delimiter)
            if index >= 0:
                emit(buf[:index])
                buf = buf[index + len(delimiter) :]
                break
            if eof:
                emit(buf)
                buf = b""
                finished = True
                break
            if len(buf) > keep:
                emit(buf[:-keep])
                buf = buf[-keep:]
            fill()
        part.data = b"".join(part._chunks)
        part._chunks = []
        parts.append(part)
        if finished:
            break
    reader.drain()
    return parts
