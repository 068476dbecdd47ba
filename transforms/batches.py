"""The batch data plane: Beam elements that are batches of rows, keyed by hash bucket.

On a runner, every element costs a fixed price at every step and every shuffle (encode, decode,
bookkeeping), whatever the step does with it. Touchline's batch pipeline therefore moves
**batches** -- an Arrow table of thousands of touchpoints, or a list of a few thousand small
identity records -- and every shuffle is keyed by a **hash bucket** of the key the step groups by
(event_id, identifier hash, component label, person_id): ``(bucket, packed batch)``. A shuffle then
moves a few large elements instead of millions of small ones; inside a bucket the relational work
(deduplication, joins, grouping) is done on the whole table at once, and per-key rules (identity
guards, scoring) are the same plain Python functions the streaming pipeline calls per element.

Why not Beam's Batched DoFns (``process_batch``): a batch there lives only inside one fused stage;
across a shuffle Beam turns it back into elements, which is exactly the per-element cost this
module avoids. Elements here are batches explicitly, so the shuffle key is the bucket.

* :func:`bucket` -- the bucket of a key: CRC-32 of its UTF-8 bytes modulo the bucket count (stable
  across processes, Python versions and runs; ``hash()`` is salted per process).
* :func:`split` -- an Arrow table cut into one table per bucket of its rows' keys.
* :func:`datum_columns` / :func:`datum_rows` -- Arrow columns back to Touchline's datum form
  (``touchline.schemas.rows``: timestamps as int micros, dates as int days, maps as dicts),
  column by column (no per-row ``to_pylist`` of whole rows).
* :func:`from_rows` -- datum rows into a table of a table schema.

The number of buckets is a run setting (``RunContext.buckets``, ``--buckets``): it bounds how much
one worker holds at a time (a bucket's share of the input) and how many workers can share a step.
"""

from __future__ import annotations

import contextlib
import gc
import zlib
from collections import defaultdict
from typing import Any, Callable, Collection, Iterable, Iterator, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import schemas
from ..schemas.arrow import arrow_schema
from ..schemas.model import columns
from ..schemas.rows import column_converter, converter

#: touchpoints per Arrow table a producer builds before cutting it into buckets
CHUNK_ROWS = 50_000


@contextlib.contextmanager
def bulk():
    """Work on a batch with Python's cyclic garbage collector paused.

    A batch step builds and drops hundreds of thousands of small dicts and lists (rows, identifier
    lists); none of them form cycles, so reference counting frees them, but every collection the
    allocations trigger traverses all of them again -- 20 % of a run at 10^6 events (measured,
    docs/benchmarks.md). The collector resumes when the batch is done."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class BatchDoFn(beam.DoFn):
    """A DoFn whose elements are batches: ``_work(element)`` (a generator) runs inside :func:`bulk`."""

    def process(self, element):
        with bulk():
            yield from self._work(element)

    def _work(self, element):
        raise NotImplementedError


def bucket(key: str, buckets: int) -> int:
    """The bucket of ``key`` among ``buckets``: stable everywhere (CRC-32, not the salted ``hash``)."""
    return zlib.crc32(key.encode()) % buckets


def buckets_of(keys: Iterable[str], buckets: int) -> np.ndarray:
    """:func:`bucket` of every key, as an int array."""
    crc = zlib.crc32
    return np.fromiter((crc(k.encode()) % buckets for k in keys), dtype=np.int64)


def split(table: pa.Table, keys: np.ndarray) -> Iterator[tuple[int, pa.Table]]:
    """``(bucket, rows of that bucket)`` for every bucket in ``keys`` (one bucket per row)."""
    if table.num_rows == 0:
        return
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    cuts = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [len(ordered)]))
    taken = table.take(pa.array(order))
    for start, end in zip(starts.tolist(), ends.tolist()):
        yield int(ordered[start]), taken.slice(start, end - start)


def group(items: Iterable[tuple[str, Any]], buckets: int) -> dict[int, list]:
    """``(key, record)`` pairs -> ``{bucket: [records]}``."""
    out: dict[int, list] = defaultdict(list)
    crc = zlib.crc32
    for key, record in items:
        out[crc(key.encode()) % buckets].append(record)
    return out


def concat(tables: Iterable[pa.Table], schema: pa.Schema | None = None) -> pa.Table:
    """One table of several (of one schema); an empty one of ``schema`` when there are none."""
    tables = [t for t in tables if t is not None]
    if not tables:
        if schema is None:
            raise ValueError("no tables and no schema")
        return schema.empty_table()
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


# ------------------------------------------------------------------------------ datum form
def _needs_conversion(dtype: pa.DataType) -> bool:
    """Whether ``to_pylist`` of this type differs from the datum form (timestamps, dates, maps)."""
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype) or pa.types.is_map(dtype):
        return True
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return _needs_conversion(dtype.value_type)
    if pa.types.is_struct(dtype):
        return any(_needs_conversion(dtype.field(i).type) for i in range(dtype.num_fields))
    return False


def _chunks(array: pa.ChunkedArray | pa.Array) -> list[pa.Array]:
    return array.chunks if isinstance(array, pa.ChunkedArray) else [array]


def _maps(array: pa.ChunkedArray | pa.Array) -> list[dict]:
    """A map column of scalars as dicts (null maps as empty ones, the datum form), built from the
    flattened keys and items instead of a list of pairs per row."""
    out: list[dict] = []
    for chunk in _chunks(array):
        offsets = chunk.offsets.to_pylist()
        if not offsets:
            continue
        first, last = offsets[0], offsets[-1]
        keys = chunk.keys.slice(first, last - first).to_pylist()
        items = chunk.items.slice(first, last - first).to_pylist()
        out.extend(dict(zip(keys[a - first:b - first], items[a - first:b - first])) for a, b in zip(offsets, offsets[1:]))
    return out


def _column(array: pa.ChunkedArray | pa.Array, col) -> list:
    dtype = array.type
    if pa.types.is_timestamp(dtype):
        return pc.cast(array, pa.int64()).to_pylist()
    if pa.types.is_date32(dtype):
        return pc.cast(array, pa.int32()).to_pylist()
    if pa.types.is_map(dtype) and not _needs_conversion(dtype.item_type) and not _needs_conversion(dtype.key_type):
        return _maps(array)
    values = array.to_pylist()
    if _needs_conversion(dtype):
        convert = column_converter(col)
        return [convert(v) for v in values]
    if col.kind == "array":
        return [[] if v is None else v for v in values]
    return values


def converters(spec: schemas.TableSpec) -> dict[str, Any]:
    """The schema's columns by name (what :func:`datum_columns` converts with)."""
    return {c.name: c for c in columns(spec.schema)}


def datum_columns(table: pa.Table, spec: schemas.TableSpec, names: Sequence[str] | None = None) -> dict[str, list]:
    """Columns of ``table`` (rows of ``spec``) as lists of datum-form values, by name."""
    cols = converters(spec)
    return {name: _column(table.column(name), cols[name]) for name in (spec.columns if names is None else names) if name in table.column_names}


def datum_rows(table: pa.Table, spec: schemas.TableSpec, only: Collection[str] | None = None) -> list[dict]:
    """Rows of ``table`` as datum dicts with the schema's fields in schema order (the form parsing
    and every pure function of Touchline take); ``only``: just those fields."""
    names = [n for n in spec.columns if n in table.column_names and (only is None or n in only)]
    data = datum_columns(table, spec, names)
    return [dict(zip(names, values)) for values in zip(*(data[n] for n in names))]


def from_rows(rows: list[dict], spec: schemas.TableSpec) -> pa.Table:
    """Datum rows -> a table with the table's Arrow schema (missing nullable fields are null)."""
    return pa.Table.from_pylist(rows, schema=table_schema(spec))


def table_schema(spec: schemas.TableSpec) -> pa.Schema:
    """The table's Arrow schema (about 0.1 ms to build: once per batch, not per row)."""
    return arrow_schema(spec)


def conform(table: pa.Table, spec: schemas.TableSpec) -> pa.Table:
    """A table read from a warehouse file, with exactly the table's columns and Arrow types."""
    schema = table_schema(spec)
    table = table.select([f.name for f in schema])
    if table.schema.equals(schema):
        return table
    try:
        return table.cast(schema)
    except pa.ArrowInvalid:
        pass
    except pa.ArrowNotImplementedError:  # another shape (BigQuery: maps as key/value records): row by row
        convert = converter(spec)
        return from_rows([convert(row) for row in table.to_pylist()], spec)
    # warehouses write every column as nullable, and a null struct (a first day's prev_state) may
    # hold nulls in its required fields: the same types, every field nullable
    return table.cast(_relaxed(schema))


def _relaxed_type(dtype: pa.DataType) -> pa.DataType:
    if pa.types.is_struct(dtype):
        return pa.struct([_relaxed_field(dtype.field(i)) for i in range(dtype.num_fields)])
    if pa.types.is_list(dtype):
        return pa.list_(_relaxed_field(dtype.value_field))
    if pa.types.is_map(dtype):
        return pa.map_(dtype.key_type, _relaxed_type(dtype.item_type))
    return dtype


def _relaxed_field(field: pa.Field) -> pa.Field:
    return pa.field(field.name, _relaxed_type(field.type), nullable=True)


def _relaxed(schema: pa.Schema) -> pa.Schema:
    return pa.schema([_relaxed_field(f) for f in schema])


def with_column(table: pa.Table, name: str, values: pa.Array | list, dtype: pa.DataType | None = None) -> pa.Table:
    """``table`` with column ``name`` set (replaced in place, or appended)."""
    array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, type=dtype)
    index = table.schema.get_field_index(name)
    if index >= 0:
        return table.set_column(index, pa.field(name, array.type, nullable=table.schema.field(index).nullable), array)
    return table.append_column(name, array)


def mapping(keys: list[str], values: list) -> Callable[[pa.Array | pa.ChunkedArray], pa.Array]:
    """A vectorized dict lookup: ``lookup(array)`` gives ``values[keys.index(x)]`` per element (null
    when absent)."""
    key_array = pa.array(keys, pa.string())
    value_array = pa.array(values, pa.string())

    def lookup(array):
        return pc.take(value_array, pc.index_in(array, value_set=key_array))

    return lookup


__all__ = ["CHUNK_ROWS", "BatchDoFn", "bucket", "buckets_of", "split", "group", "concat", "datum_columns", "datum_rows", "from_rows",
           "table_schema", "conform", "with_column", "mapping", "converters"]
