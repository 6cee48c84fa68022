"""What `orch explain` accepts as input: text, UTF-16 text, gzip; other binary refused."""

from __future__ import annotations

import gzip
import lzma
from pathlib import Path

import pytest

from orchestrator.cli.pasted import decode_pasted, gunzip
from orchestrator.errors import UsageError

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed"
JOURNAL = (SEED / "6.1_openvpn_not_yet_valid.txt").read_bytes()


def test_plain_text_passes_with_bad_bytes_replaced() -> None:
    assert decode_pasted(JOURNAL, "j.txt") == JOURNAL.decode()
    assert decode_pasted(b"ok \xff end", "x") == "ok \ufffd end"


def test_gzip_members_and_padding_are_read_whole() -> None:
    one = gzip.compress(JOURNAL)
    assert decode_pasted(one, "j.gz") == JOURNAL.decode()
    # `cat a.gz b.gz` and tape-style zero padding, as gzip(1) reads them
    assert gunzip(one + gzip.compress(b"tail\n") + b"\x00" * 512, "j.gz") == JOURNAL + b"tail\n"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (gzip.compress(JOURNAL)[:-12], "truncated gzip data"),
        (b"\x1f\x8b" + b"\x08" + b"garbage" * 20, "corrupt gzip data"),
        (lzma.compress(JOURNAL), "xz data: decompress it first"),
        (b"\x28\xb5\x2f\xfd" + b"\x00" * 20, "zstd data: decompress it first"),
        (b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 64, "binary data, not text"),
    ],
)
def test_binary_input_is_one_line_naming_the_source(data: bytes, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        decode_pasted(data, "paste.bin")
    text = str(caught.value)
    assert text.startswith("paste.bin: ")
    assert message in text
    assert "\n" not in text


def test_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"a" * 5_000_000)
    with pytest.raises(UsageError, match="once decompressed"):
        gunzip(bomb, "bomb.gz", limit=1_000_000)
    assert len(gunzip(bomb, "bomb.gz", limit=5_000_000)) == 5_000_000


def test_utf16_with_a_byte_order_mark_is_text() -> None:
    # text saved by Windows tools (tickets, PowerShell redirects) is UTF-16 with a BOM
    assert decode_pasted(JOURNAL.decode().encode("utf-16"), "ticket.txt") == JOURNAL.decode()
