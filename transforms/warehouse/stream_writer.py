"""The streaming write path: rows of a stream -> small keyed transactions in the warehouse.

Rows are batched per table with ``GroupIntoBatches`` keyed by the table name (so each table has a
single writer at a time, which an embedded DuckDB file needs) and flushed when a batch is full or
after ``max_latency`` seconds of processing time. Each batch is applied with
:meth:`Warehouse.write_rows` -- one transaction, by the table's key and write mode -- so a batch
retried after a failure, or a message redelivered after a restart, is merged rather than counted
twice. Counters: ``<table>.written`` (rows applied), ``<table>.batches``.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from ... import schemas
from . import Warehouse, open_warehouse
from ..labels import camel

NAMESPACE = "touchline"
#: Row field with a version number (monotone per row key) that a stateful streaming stage may add;
#: the writer orders by it, skips stale versions and strips it.
SEQ = "_update_seq"
DEFAULT_BATCH_SIZE = 500
DEFAULT_MAX_LATENCY = 2.0  # seconds


@dataclasses.dataclass
class SharedWarehouse:
    warehouse: Warehouse
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    initialized: set = dataclasses.field(default_factory=set)  # tables created/upgraded by this process

    #: (table, key) -> highest update sequence written (rows carrying ``SEQ``; see ``write_rows``)
    written_seq: dict = dataclasses.field(default_factory=dict)

    def write_rows(self, table: str, rows: list, upsert: bool = False) -> int:
        """Apply a batch. Rows carrying an update sequence ``SEQ`` (a stateful stage's successive
        versions of one row) are ordered by it and a version older than one already written is
        skipped: bundles can reach the batcher out of order, a stale version must not win."""
        with self.lock:
            if table not in self.initialized:
                self.warehouse.init([table])
                self.initialized.add(table)
            if rows and SEQ in rows[0]:
                key = schemas.table_schema(table).key
                fresh, newest = [], {}
                for row in sorted(rows, key=lambda r: r[SEQ]):
                    k = (table, *(row[c] for c in key))
                    if row[SEQ] > self.written_seq.get(k, -1):
                        newest[k] = row[SEQ]
                        fresh.append({c: v for c, v in row.items() if c != SEQ})
                written = self.warehouse.write_rows(table, fresh, upsert=upsert)
                self.written_seq.update(newest)
                return written
            return self.warehouse.write_rows(table, rows, upsert=upsert)


_SHARED: dict[str, SharedWarehouse] = {}
_SHARED_LOCK = threading.Lock()


def shared_warehouse(url: str) -> SharedWarehouse:
    """One open warehouse (and a lock to write through it) per URL and worker process.

    The DirectRunner sets a DoFn up and tears it down for every bundle; opening and closing a DuckDB
    file that often, while other threads of the process read it, races in DuckDB's instance cache
    ("Unique file handle conflict"). A per-process handle, opened lazily on the first batch and kept
    for the life of the process, avoids that and saves the reconnects. Filled at run time, never at
    import; nothing of it is pickled."""
    with _SHARED_LOCK:
        entry = _SHARED.get(url)
        if entry is None:
            entry = _SHARED[url] = SharedWarehouse(open_warehouse(url))
        return entry


class _CommitBatches(beam.DoFn):
    def __init__(self, warehouse_url: str, tables: list[str], upsert: tuple[str, ...] = ()):
        self._url = warehouse_url
        self._tables = list(tables)
        self._upsert = frozenset(upsert)

    def setup(self):
        self._written = {t: Metrics.counter(NAMESPACE, f"{t}.written") for t in self._tables}
        self._batches = {t: Metrics.counter(NAMESPACE, f"{t}.batches") for t in self._tables}

    def process(self, batch):
        table, rows = batch
        written = shared_warehouse(self._url).write_rows(table, list(rows), upsert=table in self._upsert)  # opened on the first batch
        self._written[table].inc(written)
        self._batches[table].inc()
        yield table, written


class WriteTablesStreaming(beam.PTransform):
    """``{table name: PCollection of rows}`` -> ``(table, rows applied)`` per committed batch.
    ``upsert``: ``replace_scope`` tables whose rows the stream emits complete and never retracts,
    merged by key (see :meth:`Warehouse.write_rows`)."""

    def __init__(self, warehouse_url: str, batch_size: int = DEFAULT_BATCH_SIZE, max_latency: float = DEFAULT_MAX_LATENCY,
                 upsert: tuple[str, ...] = ()):
        super().__init__()
        if batch_size < 1 or max_latency <= 0:
            raise ValueError(f"batch_size must be >= 1 and max_latency > 0, got {batch_size} and {max_latency}")
        self._url = warehouse_url
        self._batch_size = batch_size
        self._max_latency = max_latency
        self._upsert = tuple(upsert)

    def expand(self, tables: dict[str, Any]):
        keyed = [
            rows | f"Key{camel(table)}" >> beam.Map(lambda row, t=table: (t, row)).with_output_types(Tuple[str, Any])
            for table, rows in tables.items()
        ]
        return (
            keyed
            | "FlattenTables" >> beam.Flatten()
            | "BatchPerTable" >> beam.GroupIntoBatches(self._batch_size, max_buffering_duration_secs=self._max_latency)
            | "CommitBatches" >> beam.ParDo(_CommitBatches(self._url, list(tables), self._upsert))
        )
