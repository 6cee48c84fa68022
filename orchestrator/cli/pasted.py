"""The text `orch explain` reads: plain or UTF-16 text, or gzip-compressed text (journal exports
are often passed around as ``.gz``). Other binary data is refused with one line instead of being
read as garbage and called inconclusive."""

from __future__ import annotations

import zlib

from orchestrator.errors import UsageError

MAX_TEXT_BYTES = 1 << 30
"""Largest text accepted once decompressed (a bound against decompression bombs)."""

_GZIP_MAGIC = b"\x1f\x8b"
_OTHER_COMPRESSED = {
    b"\x28\xb5\x2f\xfd": "zstd",
    b"\xfd7zXZ\x00": "xz",
    b"BZh": "bzip2",
    b"PK\x03\x04": "zip",
}
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_SNIFF_BYTES = 64 * 1024


def decode_pasted(data: bytes, name: str) -> str:
    """``data`` (read from ``name``) as text: gunzipped when it is gzip, UTF-16 by its byte
    order mark, otherwise UTF-8 with undecodable bytes replaced."""
    if data.startswith(_GZIP_MAGIC):
        data = gunzip(data, name)
    for magic, kind in _OTHER_COMPRESSED.items():
        if data.startswith(magic):
            raise UsageError(
                f"{name}: {kind} data: decompress it first (orch explain reads text or gzip)"
            )
    if data.startswith(_UTF16_BOMS):
        return data.decode("utf-16", errors="replace")
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise UsageError(f"{name}: binary data, not text: pass a log or command output")
    return data.decode("utf-8", errors="replace")


def gunzip(data: bytes, name: str, limit: int = MAX_TEXT_BYTES) -> bytes:
    """Every member of gzip ``data``, refusing corrupt or truncated input and more than
    ``limit`` bytes of output."""
    parts: list[bytes] = []
    total = 0
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        try:
            part = inflater.decompress(rest, limit - total + 1)
        except zlib.error as exc:
            raise UsageError(f"{name}: corrupt gzip data ({exc})") from None
        total += len(part)
        if total > limit:
            raise UsageError(f"{name}: more than {limit >> 20} MiB once decompressed")
        if not inflater.eof:
            raise UsageError(f"{name}: truncated gzip data")
        parts.append(part)
        rest = inflater.unused_data
        if not rest.strip(b"\x00"):  # zero padding after the last member, as gzip allows
            break
    return b"".join(parts)
