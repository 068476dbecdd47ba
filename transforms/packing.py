"""How batches cross shuffles: packed to bytes where they are made, unpacked where they are used.

Every shuffle of the batch pipeline moves ``(bucket, packed batch)`` elements (see
:mod:`.batches`). :func:`pack` turns a batch into ``bytes`` once, in the stage that made it; the
runner then only copies bytes (flatten buffers, the shuffle, its grouping tables), and
:func:`unpack` restores the batch once, in the stage that uses it:

* an Arrow table -> an Arrow IPC stream, compressed as one zstd frame (about 100 bytes per
  touchpoint, a quarter of the uncompressed size; well under a microsecond a row either way. One
  frame, not Arrow's per-buffer compression: that costs ~0.4 ms per table whatever its size);
* anything else (a list of small identity records) -> pickle.

``unpack(pack(x)) == x`` for every table and picklable value.

**Spilled batches.** With a ``spill_dir`` (``--shuffle_spill``, on by default on the local
runner), a batch's packed bytes -- a table's or a pickled list's -- go to a file there and the
element carries only its path: Beam still does the grouping, parallelism and retries, but the local runner's driver -- which keeps
every shuffle's data in its own memory -- holds references instead of the data, and its
process-to-process data channel moves a path instead of megabytes. Files are written before the
reference is emitted and never changed, so a retried bundle writes new files and the run's
staging clean-up removes them all (Spark shuffles the same way). On Dataflow the shuffle service
holds the data: no spill.

:class:`CoGroupByBucket` is ``CoGroupByKey`` for such elements: ``{name: PCollection of (bucket,
packed)}`` -> ``(bucket, {name: [batches]})`` with every name present, the batches unpacked.
"""

from __future__ import annotations

import os
import pickle
import struct
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from . import batches
from .labels import camel

PROTOCOL = 5
CODEC = "zstd"
_PICKLE, _TABLE, _FILE = b"\x00", b"\x01", b"\x02"
_SIZE = struct.Struct("<Q")
#: packed tables smaller than this stay inline even with a spill folder (a file costs more)
SPILL_BYTES = 32 << 10


def pack(value: Any, spill_dir: str | None = None) -> bytes:
    """A batch as bytes: Arrow tables as compressed IPC, anything else pickled; in a file under
    ``spill_dir`` when one is given and the bytes are not small (the element then carries the path)."""
    if isinstance(value, pa.Table):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, value.schema) as writer:
            writer.write_table(value)
        raw = sink.getvalue()
        blob = _TABLE + _SIZE.pack(raw.size) + pa.compress(raw, codec=CODEC, asbytes=True)
    else:
        blob = _PICKLE + pickle.dumps(value, PROTOCOL)
    if spill_dir is None or len(blob) < SPILL_BYTES:
        return blob
    path = f"{spill_dir.rstrip('/')}/{uuid.uuid4().hex}.batch"
    _write(path, blob)
    return _FILE + path.encode()


def unpack(blob: bytes) -> Any:
    kind = blob[:1]
    if kind == _FILE:
        blob = _read(blob[1:].decode())
        kind = blob[:1]
    view = memoryview(blob)
    if kind == _TABLE:
        (size,) = _SIZE.unpack_from(view, 1)
        return pa.ipc.open_stream(pa.decompress(view[1 + _SIZE.size:], size, codec=CODEC)).read_all()
    return pickle.loads(view[1:])


def restore(batch: Any) -> Any:
    """A batch as its maker built it: packed bytes unpacked, anything else (a table, a list) as given."""
    return unpack(batch) if isinstance(batch, (bytes, bytearray)) else batch


def _write(path: str, data: bytes) -> None:
    if "://" in path:
        with FileSystems.create(path) as fh:
            fh.write(data)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


def _read(path: str) -> bytes:
    if "://" in path:
        with FileSystems.open(path) as fh:
            return fh.read()
    with open(path, "rb") as fh:
        return fh.read()


@dataclass(frozen=True)
class Shuffle:
    """How a step's batches cross the next shuffle: into how many buckets, spilled where (None:
    inline). Steps take one (``RunContext.shuffle``) instead of a bucket count."""

    buckets: int = 32
    spill_dir: str | None = None

    def pack(self, value: Any) -> bytes:
        return pack(value, self.spill_dir)

    def keyed(self, items: Iterable[tuple[str, Any]]) -> Iterator[tuple[int, bytes]]:
        """``(key, record)`` pairs -> ``(bucket, packed [records])`` per bucket."""
        for bucket, records in batches.group(items, self.buckets).items():
            yield bucket, self.pack(records)

    def split(self, table: pa.Table, keys: Iterable[str]) -> Iterator[tuple[int, bytes]]:
        """A table -> ``(bucket, packed rows)`` per bucket of its rows' ``keys``."""
        for bucket, piece in batches.split(table, batches.buckets_of(keys, self.buckets)):
            yield bucket, self.pack(piece)


class _Tag(beam.DoFn):
    def __init__(self, index: int):
        self._index = index

    def process(self, element):
        key, blob = element
        yield key, (self._index, blob)


class _Restore(beam.DoFn):
    def __init__(self, names: tuple[str, ...]):
        self._names = names

    def process(self, element):
        key, tagged = element
        groups: dict[str, list] = {name: [] for name in self._names}
        names = self._names
        for index, blob in tagged:
            groups[names[index]].append(unpack(blob))
        yield key, groups


class CoGroupByBucket(beam.PTransform):
    """``{name: PCollection of (bucket, packed batch)}`` -> ``(bucket, {name: [batches]})``."""

    def expand(self, inputs: dict[str, beam.PCollection]):
        names = tuple(inputs)
        tagged = [inputs[name] | f"Tag{camel(name)}" >> beam.ParDo(_Tag(i)) for i, name in enumerate(names)]
        return (
            tagged
            | "Flatten" >> beam.Flatten()
            | "GroupByKey" >> beam.GroupByKey()
            | "Restore" >> beam.ParDo(_Restore(names))
        )


class KeyTable(beam.DoFn):
    """A table of stored rows -> ``(bucket of column, packed rows of that bucket)``."""

    def __init__(self, column: str, shuffle: Shuffle):
        self._column = column
        self._shuffle = shuffle

    def process(self, table):
        yield from self._shuffle.split(table, table.column(self._column).to_pylist())


class GroupBuckets(beam.PTransform):
    """``(bucket, packed batch)`` -> ``(bucket, [batches])``: one input's batches per bucket, unpacked."""

    def expand(self, pcoll):
        return (
            pcoll
            | "GroupByKey" >> beam.GroupByKey()
            | "Unpack" >> beam.MapTuple(lambda key, blobs: (key, [unpack(b) for b in blobs]))
        )


__all__ = ["CoGroupByBucket", "GroupBuckets", "KeyTable", "Shuffle", "pack", "restore", "unpack"]
