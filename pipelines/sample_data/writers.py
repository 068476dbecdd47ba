"""Output formats: the file layout, JSONL shaping per channel, deterministic Avro containers (fixed
sync markers, so the same config gives the same bytes), the deliberately corrupt Avro file, and
truth lines.

Layout (``OUT`` is ``GenerateConfig.out_dir``)::

    OUT/<channel>/part-00000-of-00004.avro|jsonl   one file per shard and channel
    OUT/<channel>/part-corrupt-00000.avro          Avro channels, when malformed_rate > 0
    OUT/truth/records.jsonl                        one line per input unit, file by file, in file order
    OUT/truth/persons.jsonl                        one line per person
    OUT/manifest.json

Formats: with ``format="mixed"`` app and transactions are Avro (deflate codec, the channel's schema
from ``touchline.schemas``), web and support JSON Lines; ``"avro"``/``"jsonl"`` use one format for
all. JSONL producers differ like real ones do: web and app omit unset fields, support and
transactions write explicit nulls; web and transactions are compact, the others use ", "/": ".

Truth (``truth/records.jsonl``), one line per input unit::

    {"channel", "file", "index", "event_id", "person", "role", "status", "reason", "records"}

* ``index``: 0-based line of a JSONL file, record of an Avro file (records of a corrupt block are
  counted, so indexes after it skip its records), or the *block* index for the corrupt block.
* ``status``: ``good`` (first emission), ``duplicate`` (exact copy of a good record, possibly placed
  before it), ``conflict`` (same event_id, different occurred_at or properties), ``malformed``
  (``reason`` is the parser's dead-letter code; the event it was derived from is not emitted
  otherwise).
* ``event_id``: the record's event_id when the record is an object with a string event_id (what a
  parser can report), else null (undecodable lines, non-objects, a missing or non-string event_id,
  corrupt blocks).
* ``person``/``role``: whose touchpoint it is; for a corrupt block, those of its first record.
* ``records``: 1, or the number of records in a corrupt block.

The corrupt file holds exact copies of good Avro records (status ``duplicate``) in 4 blocks of 4;
the data bytes of the second block are overwritten (its count, size and sync marker are intact,
so a reader can skip it), which makes it one ``corrupt_avro`` input unit.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import zlib
from typing import Any, Callable

import fastavro

from touchline import schemas

CHANNELS = ("app", "web", "support", "transactions")
SCHEMA_NAMES = {
    "app": "raw_app_event",
    "web": "raw_web_event",
    "support": "raw_support_event",
    "transactions": "raw_transaction_event",
}
MIXED_FORMATS = {"app": "avro", "web": "jsonl", "support": "jsonl", "transactions": "avro"}
AVRO_CODEC = "deflate"
AVRO_SYNC_INTERVAL = 64 * 1024
AVRO_COMPRESSION_LEVEL = 1  # zlib level: fast; sample data favours generation speed over size
CORRUPT_FILE = "part-corrupt-00000.avro"
CORRUPT_BLOCK_RECORDS = 4
CORRUPT_BLOCKS = 4
CORRUPT_INDEX = 1  # the second block is the corrupt one


def channel_format(fmt: str, channel: str) -> str:
    return MIXED_FORMATS[channel] if fmt == "mixed" else fmt


def part_path(channel: str, shard: int, shards: int, ext: str) -> str:
    """Path of a part file relative to OUT (always with '/' separators)."""
    return f"{channel}/part-{shard:05d}-of-{shards:05d}.{ext}"


def avro_schema(channel: str) -> dict:
    return schemas.parsed(SCHEMA_NAMES[channel])


def _field_names(channel: str) -> tuple[str, ...]:
    return tuple(f["name"] for f in schemas.load(SCHEMA_NAMES[channel])["fields"])


# ---------------------------------------------------------------------------- JSONL
_COMPACT = json.JSONEncoder(separators=(",", ":")).encode
_SPACED = json.JSONEncoder().encode


class JsonlStyle:
    """How one channel's producer writes JSON: some omit unset fields, some write explicit nulls."""

    def __init__(self, channel: str):
        self.channel = channel
        self.with_nulls = channel in ("support", "transactions")
        self.encode: Callable[[dict], str] = _COMPACT if channel in ("web", "transactions") else _SPACED
        self.template = {name: None for name in _field_names(channel)}
        self.template["properties"] = {}

    def shape(self, rec: dict) -> dict:
        if self.with_nulls:
            out = dict(self.template)
            out.update(rec)
            return out
        return rec


# ---------------------------------------------------------------------------- Avro
def sync_marker(channel: str, seed: int, kind: str = "part") -> bytes:
    """The 16-byte sync marker of a channel's files: fixed per (seed, channel), so files are reproducible."""
    return hashlib.blake2b(f"touchline-sample:{seed}:{channel}:{kind}".encode(), digest_size=16).digest()


_HEADERS: dict[tuple[str, bytes], bytes] = {}


def avro_header(channel: str, sync: bytes) -> bytes:
    key = (channel, sync)
    header = _HEADERS.get(key)
    if header is None:
        buf = io.BytesIO()
        fastavro.writer(buf, avro_schema(channel), [], codec=AVRO_CODEC, sync_marker=sync)
        header = _HEADERS[key] = buf.getvalue()
    return header


def avro_blocks(channel: str, sync: bytes, records: list[dict]) -> bytes:
    """Container blocks (no header) holding ``records``; append them to a file that has the header.

    Byte-identical to what ``fastavro.writer(..., codec="deflate", sync_marker=sync,
    sync_interval=AVRO_SYNC_INTERVAL, codec_compression_level=AVRO_COMPRESSION_LEVEL)`` writes after
    its header (see :func:`fastavro_blocks`; the tests compare the two), but about 3x faster:
    records are encoded by a function compiled from the channel's schema.
    """
    if not records:
        return b""
    encode = record_encoder(channel)
    if encode is None:  # a schema the compiled encoder does not cover: let fastavro do it
        return fastavro_blocks(channel, sync, records)
    out = bytearray()
    buf = bytearray()
    count = 0
    interval = AVRO_SYNC_INTERVAL
    cache: dict[str, bytes] = {}  # encoded low-cardinality strings (device, session, ids, screens)
    for rec in records:
        encode(rec, buf, cache)
        count += 1
        if len(buf) >= interval:
            out += _block(count, buf, sync)
            buf = bytearray()
            count = 0
    if count:
        out += _block(count, buf, sync)
    return bytes(out)


def _block(count: int, data: bytearray, sync: bytes) -> bytes:
    packed = zlib.compress(data, AVRO_COMPRESSION_LEVEL)[2:-1]  # raw deflate, exactly as fastavro writes it
    return _zigzag(count) + _zigzag(len(packed)) + packed + sync


def fastavro_blocks(channel: str, sync: bytes, records: list[dict]) -> bytes:
    """The same blocks, written by fastavro itself (reference implementation, slower)."""
    if not records:
        return b""
    header = avro_header(channel, sync)
    buf = io.BytesIO()
    fastavro.writer(buf, avro_schema(channel), records, codec=AVRO_CODEC, sync_marker=sync,
                    sync_interval=AVRO_SYNC_INTERVAL, codec_compression_level=AVRO_COMPRESSION_LEVEL)
    data = buf.getvalue()
    assert data[: len(header)] == header
    return data[len(header):]


_ENCODERS: dict[str, Any] = {}


def record_encoder(channel: str):
    """``encode(record, bytearray, cache)`` for the channel's schema (Avro binary encoding, as fastavro's
    schemaless_writer), or None if the schema uses types it does not handle."""
    if channel not in _ENCODERS:
        try:
            _ENCODERS[channel] = _compile_encoder(schemas.load(SCHEMA_NAMES[channel]))
        except _Unsupported:
            _ENCODERS[channel] = None
    return _ENCODERS[channel]


class _Unsupported(Exception):
    pass


_SMALL = [None] * 128
# fields whose values are (nearly) unique per record: caching their encoding would only cost memory
UNCACHED = frozenset(("event_id", "occurred_at", "order_id", "amount_minor", "card_fingerprint", "email", "phone",
                      "requester_email", "requester_phone"))


def _compile_encoder(schema: dict):
    """Generate Python source for one flat record schema: strings, ints/longs, enums, maps of
    strings, and unions of null with one of those or with a flat record of them."""
    env: dict[str, Any] = {"LEN": _SMALL, "zz": _zigzag}
    lines = ["def encode(rec, out, cache):", "    get = rec.get", "    cached = cache.get"]
    counter = iter(range(10**6))

    def string(var, ind, field=None):
        if field in UNCACHED or field is None:
            return [f"{ind}b = {var}.encode()", f"{ind}n = len(b)", f"{ind}out += LEN[n] if n < 128 else zz(n)", f"{ind}out += b"]
        return [f"{ind}c = cached({var})", f"{ind}if c is None:", f"{ind}    b = {var}.encode()", f"{ind}    n = len(b)",
                f"{ind}    c = cache[{var}] = (LEN[n] if n < 128 else zz(n)) + b", f"{ind}out += c"]

    def value(t, var, ind, field=None):
        if t == "string":
            return string(var, ind, field)
        if t in ("int", "long"):
            return [f"{ind}out += LEN[{var}] if 0 <= {var} < 128 else zz({var})"]
        if isinstance(t, dict) and t.get("type") == "enum":
            name = f"E{next(counter)}"
            env[name] = {s: _zigzag(i) for i, s in enumerate(t["symbols"])}
            return [f"{ind}out += {name}[{var}]"]
        if isinstance(t, dict) and t.get("type") == "map" and t["values"] == "string":
            return [f"{ind}if {var}:", f"{ind}    n = len({var})", f"{ind}    out += LEN[n] if n < 128 else zz(n)",
                    f"{ind}    for k, x in {var}.items():",
                    *string("k", ind + "        ", "map"), *string("x", ind + "        ", "map"), f"{ind}out += b'\\x00'"]
        if isinstance(t, dict) and t.get("type") == "record":
            code = []
            for f in t["fields"]:
                sub = f"{var}_{next(counter)}"
                code.append(f"{ind}{sub} = {var}[{f['name']!r}]")
                code += value(f["type"], sub, ind)
            return code
        if isinstance(t, list) and len(t) == 2 and t[0] == "null":
            return [f"{ind}if {var} is None:", f"{ind}    out += b'\\x00'", f"{ind}else:", f"{ind}    out += b'\\x02'",
                    *value(t[1], var, ind + "    ", field)]
        raise _Unsupported(repr(t))

    def nullable(f):
        return isinstance(f["type"], list) and f["type"][0] == "null" and f.get("default", 0) is None

    fields = schema["fields"]
    i = 0
    while i < len(fields):
        f = fields[i]
        if "default" in f and f["default"] not in (None, {}):
            raise _Unsupported(f"default {f['default']!r}")
        run = []
        while i + len(run) < len(fields) and nullable(fields[i + len(run)]):
            run.append(fields[i + len(run)])
        if len(run) >= 2:
            # optional fields are mostly unset: write a run of nulls in one go
            names = [f"v{next(counter)}" for _ in run]
            lines += [f"    {var} = get({g['name']!r})" for var, g in zip(names, run)]
            lines.append(f"    if {' and '.join(f'{var} is None' for var in names)}:")
            lines.append(f"        out += {bytes(len(run))!r}")
            lines.append("    else:")
            for var, g in zip(names, run):
                lines += ["    " + line for line in value(g["type"], var, "    ", g["name"])]
            i += len(run)
            continue
        var = f"v{next(counter)}"
        if "default" in f:  # optional: may be absent from the dict
            lines.append(f"    {var} = get({f['name']!r})")
        else:  # required: always present in records we write
            lines.append(f"    {var} = rec[{f['name']!r}]")
        lines += value(f["type"], var, "    ", f["name"])
        i += 1
    exec("\n".join(lines), env)  # noqa: S102 -- source generated from our own schema files
    return env["encode"]


def _zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def corrupt_avro_file(channel: str, seed: int, records: list[dict]) -> tuple[bytes, list[tuple[int, int]]]:
    """A small Avro file of CORRUPT_BLOCKS blocks whose second block's data bytes are overwritten.

    The block's count, size and sync marker are kept, so readers can skip to the next block.
    Returns (file bytes, [(first record index, record count) per block]).
    """
    sync = sync_marker(channel, seed, "corrupt")
    schema = avro_schema(channel)
    out = io.BytesIO()
    out.write(avro_header(channel, sync))
    rng = random.Random(f"touchline-sample:{seed}:{channel}:corrupt")
    layout = []
    first = 0
    for b in range(CORRUPT_BLOCKS):
        chunk = records[b * CORRUPT_BLOCK_RECORDS:(b + 1) * CORRUPT_BLOCK_RECORDS]
        raw = io.BytesIO()
        for rec in chunk:
            fastavro.schemaless_writer(raw, schema, rec)
        data = bytearray(zlib.compress(raw.getvalue())[2:-1])  # raw deflate, as the Avro spec says
        if b == CORRUPT_INDEX:
            noise = bytearray(rng.getrandbits(8) for _ in range(len(data)))
            # the first deflate header bits say "reserved block type 3": inflating fails at once
            noise[0] = (noise[0] & 0xF8) | 0x06 | (noise[0] & 0x01)
            data = noise
            try:
                zlib.decompress(bytes(data), -15)
            except zlib.error:
                pass
            else:  # pragma: no cover -- impossible with block type 3
                raise AssertionError("corrupt block still inflates")
        out.write(_zigzag(len(chunk)))
        out.write(_zigzag(len(data)))
        out.write(data)
        out.write(sync)
        layout.append((first, len(chunk)))
        first += len(chunk)
    return out.getvalue(), layout


# ---------------------------------------------------------------------------- truth
def truth_suffix(event_id: Any, person: str, role: str, status: str, reason: str | None, records: int = 1) -> str:
    """The part of a truth line after ``"index": N, `` (the index is known only when files are assembled)."""
    eid = f'"{event_id}"' if isinstance(event_id, str) and event_id.isascii() and '"' not in event_id and "\\" not in event_id \
        else json.dumps(event_id)
    rsn = f'"{reason}"' if reason is not None else "null"
    return f'"event_id": {eid}, "person": "{person}", "role": "{role}", "status": "{status}", "reason": {rsn}, "records": {records}}}\n'


def truth_prefix(channel: str, path: str) -> str:
    return f'{{"channel": "{channel}", "file": "{path}", "index": '


for _n in range(128):
    _SMALL[_n] = _zigzag(_n)
