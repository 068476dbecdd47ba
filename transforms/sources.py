"""Reading raw channel files (Avro and JSON Lines, local or any Beam filesystem such as gs://).

Files are matched at run time, cut into byte ranges and the ranges shuffled across workers, so one
large file is read in parallel. Each record comes out as a ``(source, payload, error)`` tuple:

* ``source`` -- a stable position: ``path@offset`` for a JSONL line (the line's first byte),
  ``path@block#i`` for the i-th record of the Avro block that starts at byte ``block``. Re-reading
  the same files yields the same positions, which makes dead-letter ids stable across re-runs.
* ``payload`` -- the line's bytes (JSONL) or the decoded record dict (Avro)
* ``error`` -- ``None``, or ``(reason, error_class, message)`` when the bytes could not be read at
  all (a corrupt Avro block, a file that is not Avro); ``payload`` then holds the raw bytes.

Gzip-compressed JSONL (``.jsonl.gz``) is read whole by one worker (gzip cannot be split).
"""

from __future__ import annotations

import io
import zlib
from typing import Iterable, Iterator

import apache_beam as beam
import fastavro
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")
AVRO_SUFFIXES = (".avro",)
SUFFIXES = JSONL_SUFFIXES + AVRO_SUFFIXES
DEFAULT_SPLIT_BYTES = 64 << 20
_MAGIC = b"Obj\x01"
_SYNC_SIZE = 16
_UNBOUNDED = 1 << 62

RawRecord = tuple  # (source, payload, error)


def file_format(path: str) -> str | None:
    lower = path.lower()
    if lower.endswith(AVRO_SUFFIXES):
        return "avro"
    if lower.endswith(JSONL_SUFFIXES):
        return "jsonl"
    return None


def _read_long(stream: io.BufferedIOBase) -> int | None:
    """Avro zig-zag varint; None at a clean end of file."""
    shift = result = 0
    while True:
        byte = stream.read(1)
        if not byte:
            if shift == 0:
                return None
            raise EOFError("truncated varint")
        b = byte[0]
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1)
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _decompress(codec: str, data: bytes) -> bytes:
    if codec == "null":
        return data
    if codec == "deflate":
        return zlib.decompress(data, -15)
    if codec == "snappy":
        import snappy  # type: ignore[import-not-found]

        return snappy.decompress(data[:-4])
    if codec == "zstandard":
        import zstandard  # type: ignore[import-not-found]

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    raise ValueError(f"unsupported Avro codec {codec!r}")


def _seek_past_sync(stream, sync: bytes, start: int) -> int | None:
    """Position the stream just after the first sync marker that ends at or after ``start``."""
    pos = max(start - _SYNC_SIZE, 0)
    stream.seek(pos)
    tail = b""
    while True:
        chunk = stream.read(1 << 16)
        if not chunk:
            return None
        buf = tail + chunk
        idx = buf.find(sync)
        if idx >= 0:
            found = pos - len(tail) + idx + _SYNC_SIZE
            stream.seek(found)
            return found
        tail = buf[-(_SYNC_SIZE - 1):]
        pos += len(chunk)


def read_avro_range(path: str, start: int, end: int) -> Iterator[RawRecord]:
    """Records of the Avro blocks that start in [start, end)."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        if stream.read(4) != _MAGIC:
            if start == 0:
                stream.seek(0)
                yield (f"{path}@0", stream.read(1024), ("unreadable_file", "ValueError", "not an Avro container file (bad magic bytes)"))
            return
        stream.seek(0)
        try:
            header = fastavro.reader(stream)
            # Parse once: schemaless_reader re-parses a raw schema on every call (3x slower).
            schema = fastavro.parse_schema(header.writer_schema)
            codec = header.metadata.get("avro.codec", "null")
            sync = header._header["sync"]
        except Exception as exc:  # noqa: BLE001 -- an unreadable header is data, not a crash
            if start == 0:
                stream.seek(0)
                yield (f"{path}@0", stream.read(1024), ("unreadable_file", type(exc).__name__, f"unreadable Avro header: {exc}"))
            return
        first_block = stream.tell()
        if start <= first_block:
            pos = first_block
            stream.seek(pos)
        else:
            found = _seek_past_sync(stream, sync, start)
            if found is None:
                return
            pos = found
        while pos < end:
            try:
                count = _read_long(stream)
                if count is None:
                    return
                size = _read_long(stream)
                if size is None or size < 0 or count < 0:
                    raise ValueError(f"bad block header (count={count}, size={size})")
                data = stream.read(size)
                marker = stream.read(_SYNC_SIZE)
                if len(data) != size or marker != sync:
                    raise ValueError("block does not end with the file's sync marker (truncated or corrupt)")
            except (ValueError, EOFError) as exc:
                stream.seek(pos)
                yield (f"{path}@{pos}", stream.read(4096), ("corrupt_avro", type(exc).__name__, f"Avro block at byte {pos}: {exc}"))
                found = _seek_past_sync(stream, sync, pos + 1)
                if found is None:
                    return
                pos = found
                continue
            next_pos = stream.tell()
            try:
                decoded = io.BytesIO(_decompress(codec, data))
                records = [fastavro.schemaless_reader(decoded, schema, None) for _ in range(count)]
            except Exception as exc:  # noqa: BLE001 -- corrupt bytes raise anything from zlib to UnicodeError
                yield (
                    f"{path}@{pos}",
                    data,
                    ("corrupt_avro", type(exc).__name__, f"Avro block at byte {pos} ({count} records) cannot be decoded: {exc}"),
                )
            else:
                for i, record in enumerate(records):
                    yield (f"{path}@{pos}#{i}", record, None)
            pos = next_pos


def read_jsonl_range(path: str, start: int, end: int) -> Iterator[RawRecord]:
    """Lines that start in [start, end); positions are byte offsets of the line start."""
    compressed = path.lower().endswith(".gz")
    compression = CompressionTypes.GZIP if compressed else CompressionTypes.UNCOMPRESSED
    with FileSystems.open(path, compression_type=compression) as stream:
        if start > 0:
            stream.seek(start - 1)
            pos = start - 1 + len(stream.readline())
        else:
            pos = 0
        readline = stream.readline
        while pos < end:
            line = readline()
            if not line:
                return
            yield (f"{path}@{pos}", line.rstrip(b"\r\n"), None)
            pos += len(line)


def file_splits(path: str, size: int, split_bytes: int) -> Iterator[tuple[str, int, int]]:
    """Byte ranges ``(path, start, end)`` of one file (gzip is read whole; unknown suffixes: none)."""
    if file_format(path) is None:
        return
    if path.lower().endswith(".gz") or size <= split_bytes:
        yield (path, 0, _UNBOUNDED)
        return
    for start in range(0, size, split_bytes):
        end = start + split_bytes
        yield (path, start, end if end < size else _UNBOUNDED)


class _SplitFiles(beam.DoFn):
    def __init__(self, split_bytes: int):
        self._split = split_bytes

    def process(self, meta) -> Iterable[tuple[str, int, int]]:
        yield from file_splits(meta.path, meta.size_in_bytes, self._split)


class _MatchSource(beam.DoFn):
    """(source, pattern) -> (source, path, start, end) for every byte range of every matched file."""

    def __init__(self, split_bytes: int):
        self._split = split_bytes

    def process(self, element):
        source, pattern = element
        try:
            matched = FileSystems.match([pattern])[0].metadata_list
        except Exception:  # noqa: BLE001 -- a pattern matching nothing is checked before the run (preflight)
            return
        for meta in sorted(matched, key=lambda m: m.path):
            for path, start, end in file_splits(meta.path, meta.size_in_bytes, self._split):
                yield source, path, start, end


def read_range(element: tuple[str, int, int]) -> Iterator[RawRecord]:
    path, start, end = element
    if file_format(path) == "avro":
        return read_avro_range(path, start, end)
    return read_jsonl_range(path, start, end)


class ReadChannelFiles(beam.PTransform):
    """File patterns -> ``(source, payload, error)`` records, read in parallel by byte range."""

    def __init__(self, patterns: list[str], split_bytes: int = DEFAULT_SPLIT_BYTES):
        super().__init__()
        self._patterns = list(patterns)
        self._split = split_bytes

    def expand(self, pbegin):
        return (
            pbegin
            | "Patterns" >> beam.Create(self._patterns)
            | "Match" >> fileio.MatchAll()
            | "Split" >> beam.ParDo(_SplitFiles(self._split))
            | "Distribute" >> beam.Reshuffle()
            | "Read" >> beam.FlatMap(read_range)
        )


class ReadSources(beam.PTransform):
    """``{source: [file patterns]}`` -> splits ``(source, path, start, end)``, spread over workers:
    one read step for every file source of a batch run (each split is parsed where it lands, see
    ``parse.ParseSplits``)."""

    def __init__(self, inputs: dict[str, list[str]], split_bytes: int = DEFAULT_SPLIT_BYTES):
        super().__init__()
        self._patterns = [(source, pattern) for source, patterns in inputs.items() for pattern in patterns]
        self._split = split_bytes

    def expand(self, pbegin):
        return (
            pbegin
            | "Patterns" >> beam.Create(self._patterns)
            | "Match" >> beam.ParDo(_MatchSource(self._split))
            | "Distribute" >> beam.Reshuffle()
        )


def expand_input(root: str, channel: str) -> str:
    """The pattern of a channel under a root folder in the generator's layout (ROOT/channel/*).
    Files without a known suffix (README, _SUCCESS markers) are skipped when read."""
    return f"{root.rstrip('/')}/{channel}/*"


def inputs_under_root(root: str, names: list[str], named_explicitly: bool = False) -> dict[str, str]:
    """The pattern of every source under ``root`` (``ROOT/<source>/*``). Optional sources (adapters)
    are left out when their folder has no readable files, unless they were named explicitly."""
    from . import channels

    out = {}
    for name in names:
        pattern = expand_input(root, name)
        if channels.get(name).optional_under_input and not named_explicitly and not match_count([pattern])[pattern]:
            continue
        out[name] = pattern
    return out


def match_count(patterns: list[str]) -> dict[str, int]:
    """How many readable files each pattern matches now (used by preflight checks)."""
    out = {}
    for pattern in patterns:
        try:
            result = FileSystems.match([pattern])[0]
            out[pattern] = sum(1 for m in result.metadata_list if file_format(m.path))
        except Exception:  # noqa: BLE001 -- a bad pattern simply matches nothing
            out[pattern] = 0
    return out

