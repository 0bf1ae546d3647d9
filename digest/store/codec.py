"""How the state packs what it keeps in the `[state] keep_days` window and past it: compressed
JSON, a day's papers in one block, reader sets as bitmaps, arXiv ids as integers; and how every
table module writes a moment (`iso`) and slices ids for "IN (...)" (`chunked`). No statements.

Why each form (a year of the full arXiv listing and 1,000 readers, bench/state_growth.py):
- a day's papers compress to 0.45 KB a paper as one lzma block (level 2: a quarter of a second
  for the full listing), against 1.1 KB each compressed alone;
- JSON (a digest's papers and why they matched) is zlib-compressed: it repeats ids and terms;
  orjson writes it (a run records a row per reader: 0.03 ms of json.dumps a row, 0.003 ms of
  orjson's) and reads it, with the standard library's reader behind it for old rows that hold
  what orjson does not read (`NaN`, written by json.dumps before);
- the set of readers sent a day's digest is a bitmap of their numbers (`readers.id`): 125 bytes
  a day for 1,000 readers, where a row per digest took 16 KB;
- `seen_papers`, the one table that grows for ever, keys a modern arXiv id ("2411.12345") as the
  integer 241112345 (4 bytes instead of 11); any other id stays text. The two never collide:
  SQLite compares an integer and a text as different values.
"""

from __future__ import annotations

import datetime as dt
import json
import lzma
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from digest.core.models import Paper

_ARXIV = re.compile(r"\d{4}\.\d{5}", re.ASCII)  # ASCII digits only, as the migration's GLOB
_LZMA_PRESET = 2
CHUNK = 500  # ids per "IN (...)" query, well below SQLite's limit on parameters


def iso(now: dt.datetime) -> str:
    """A moment as the state keeps it: UTC, to the second."""
    return now.astimezone(dt.UTC).isoformat(timespec="seconds")


def chunked(ids: Iterable[str]) -> Iterator[tuple[list[str], str]]:
    """`ids` in slices of CHUNK, each with its "?,?,…" placeholders."""
    ids = list(ids)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        yield chunk, ",".join("?" * len(chunk))


def paper_key(paper_id: str) -> int | str:
    """How `seen_papers` keys `paper_id`."""
    if len(paper_id) == 10 and _ARXIV.fullmatch(paper_id):
        return int(paper_id[:4]) * 100_000 + int(paper_id[5:])
    return paper_id


def paper_id(key: int | str) -> str:
    """The id `paper_key` made `key` from."""
    if isinstance(key, int):
        return f"{key // 100_000:04d}.{key % 100_000:05d}"
    return key


def pack_json(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON, compressed. Its floats must be finite (scores are): orjson
    writes NaN as null. What orjson refuses (a lone surrogate in a title cut inside an emoji,
    an int past 64 bits) is written by json.dumps, as it always was."""
    try:
        text = orjson.dumps(value)
    except TypeError:
        text = json.dumps(value, separators=(",", ":")).encode()
    return zlib.compress(text, 6)


def unpack_json(value: str | bytes) -> Any:
    """What `pack_json` stored, or the plain JSON text of rows written before it (as text, or as
    bytes in a PostgreSQL BYTEA column's default)."""
    if isinstance(value, bytes) and value[:1] not in (b"[", b"{"):  # zlib's first byte is 0x78
        value = zlib.decompress(value)
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:  # NaN and the like, which json.dumps wrote
        return json.loads(value)


def pack_papers(papers: Sequence[Paper]) -> bytes:
    """A day's papers, in order, as one compressed block."""
    text = "[" + ",".join(json.dumps(p.to_json()) for p in papers) + "]"
    return lzma.compress(text.encode(), preset=_LZMA_PRESET)


def unpack_papers(block: bytes) -> list[Paper]:
    return [Paper.from_json(text) for text in json.loads(lzma.decompress(block))]


def pack_body(body: bytes | None) -> bytes | None:
    # None goes through as it is, so that the database refuses it (a NOT NULL column)
    return zlib.compress(body, 6) if body is not None else None


def unpack_body(body: bytes, packed: bool) -> bytes:
    return zlib.decompress(body) if packed else body


def bitmap(numbers: Iterable[int]) -> bytes:
    """The set of non-negative `numbers` as a bitmap: bit n (byte n // 8, bit n % 8) set for n."""
    wanted = list(numbers)
    out = bytearray(max(wanted) // 8 + 1 if wanted else 0)
    for n in wanted:
        out[n >> 3] |= 1 << (n & 7)
    return bytes(out)


def members(block: bytes) -> list[int]:
    """The numbers `bitmap` packed, smallest first."""
    return [i * 8 + b for i, byte in enumerate(block) if byte for b in range(8) if byte >> b & 1]
