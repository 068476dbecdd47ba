"""Warehouses: where a run's tables land. One interface, two implementations.

A run never writes to target tables directly. Pipelines write each table's rows to *staging files*
(:meth:`Warehouse.stage`); when the pipeline has finished, :meth:`Warehouse.commit` applies them to
the targets in one step according to each table's write mode (from its schema's ``touchline``
attribute):

* ``merge`` -- rows replace the rows with the same key, new keys are inserted
* ``insert_if_absent`` -- only new keys are inserted (``pipeline_runs``)
* ``replace`` -- the table's content is replaced
* ``replace_scope`` -- rows derived per person and day (journeys, daily scores): the run stages a
  *recompute scope* (``_recompute_scope``: person_id, from_date) saying "for this person, I
  recomputed everything from this day on"; the commit deletes the target rows in that scope and
  inserts the staged ones. Rows that a recompute no longer produces (a journey that merged into
  another, a day that moved to another person after a late link) disappear; rows outside the scope
  are untouched. Staging a row outside the scope is an error (it would duplicate).

so a re-run, or a retried bundle, never double-counts and a failed run leaves the targets as they
were.

Streaming pipelines cannot wait for a run to end: they call :meth:`Warehouse.write_rows` with small
batches of rows, each applied in one transaction with the same write-mode semantics (``merge`` /
``insert_if_absent`` by key), so a batch retried after a failure or a message redelivered after a
restart is applied again without double-counting.

URLs: ``duckdb:PATH`` or a plain path ending in ``.duckdb`` (embedded default) and
``bigquery://PROJECT.DATASET`` (production).
"""

from __future__ import annotations

from typing import Any, Iterable

import apache_beam as beam

from ... import schemas


class WarehouseError(Exception):
    """A warehouse problem a person can fix; the message says what and how."""


class Warehouse:
    """Interface every warehouse implements."""

    url: str
    #: Can workers on a remote runner reach the staging location? (DuckDB: no)
    remote_ok: bool = False

    def check(self) -> None:
        """Fail fast (WarehouseError) if the warehouse cannot be reached or written."""
        raise NotImplementedError

    def init(self, tables: Iterable[str] | None = None) -> list[str]:
        """Create missing tables (and add new nullable columns); return what was done."""
        raise NotImplementedError

    def stage(self, table: str, staging_dir: str) -> beam.PTransform:
        """A sink writing a table's rows as staging files under ``staging_dir``."""
        raise NotImplementedError

    def staged_files(self, table: str, staging_dir: str) -> list[str]:
        raise NotImplementedError

    def commit(self, staging_dir: str, tables: Iterable[str], rows: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, int]:
        """Apply staged files (and extra in-memory rows) to the targets atomically; rows staged per table."""
        raise NotImplementedError

    def write_rows(self, table: str, rows: list[dict[str, Any]], upsert: bool = False) -> int:
        """Apply rows (datum form) to one table now, in one transaction, by the table's write mode.

        For streaming writers. ``merge`` replaces rows with the same key and inserts new keys;
        ``insert_if_absent`` inserts new keys only; rows of one batch that repeat a key collapse to
        the last one. ``replace`` tables are refused (a stream never holds a whole table), and so
        are ``replace_scope`` tables unless ``upsert``: a streaming stage that only ever emits
        complete rows and never needs one retracted (journeys once closed, score rows of days with
        activity -- days never lose it) may merge them by key; the batch replay still owns their
        scopes. The table must exist (:meth:`init`). Returns the number of rows applied after
        collapsing."""
        raise NotImplementedError

    def read(self, table: str, staging_dir: str, where: str | None = None) -> beam.PTransform:
        """A source of the table's current rows (datum form, see :mod:`touchline.schemas.rows`).

        The snapshot is taken when this is called (at graph construction), so a run sees the state
        as of its launch however long it runs. ``where`` is a SQL condition in the common subset of
        DuckDB and BigQuery SQL (e.g. ``event_date >= DATE '2026-10-01'``)."""
        raise NotImplementedError

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        raise NotImplementedError

    def erase(
        self,
        person_ids: Iterable[str],
        id_hashes: Iterable[str],
        event_ids: Iterable[str],
        requests: list[dict[str, Any]],
    ) -> dict[str, int]:
        """Delete everything that belongs to erased persons, and record the erasure; one transaction.

        Driven by schema metadata, so tables added later are covered without code changes: every
        table whose schema's ``touchline`` attribute has ``erase_by`` (a map column -> what it holds,
        see ``schemas.ERASE_MATCHES``) loses each row where *any* of those columns matches:

        * ``"person_id"`` -- the column's value is in ``person_ids`` (current and merged-away ids);
        * ``"id_hash"`` -- the value is in ``id_hashes`` (keyed identifier hashes);
        * ``"event_id"`` -- the value is in ``event_ids`` (the erased persons' touchpoints);
        * ``"tokens"`` -- a text column (dead-letter payloads) contains a ``<kind:HASH>`` token whose
          32-hex HASH is in ``id_hashes``.

        ``requests`` are ``erasure_requests`` rows, applied with that table's write mode (insert if
        absent): the list later runs honour so that a replay does not bring the data back. Either
        every delete and the insert happen, or nothing does (raise WarehouseError on failure).
        Returns the number of rows deleted per table (tables without matches included, as 0) plus
        ``erasure_requests``: rows inserted."""
        raise NotImplementedError

    def close(self) -> None:
        pass


#: Write modes a streaming writer can apply batch by batch.
STREAMABLE_WRITE_MODES = ("merge", "insert_if_absent")


def stream_write_mode(spec, upsert: bool = False) -> str:
    """The write mode ``write_rows`` applies to a table (see :meth:`Warehouse.write_rows`), or WarehouseError."""
    if spec.write in STREAMABLE_WRITE_MODES:
        return spec.write
    if spec.write == "replace_scope" and upsert:
        return "merge"
    raise WarehouseError(
        f"table {spec.name} has write mode {spec.write!r}, which a streaming writer cannot apply batch by batch; "
        f"write it from a batch run (stage + commit)"
    )


def collapse_by_key(key: tuple[str, ...], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with distinct keys, the last row of each key winning, in first-seen key order."""
    last: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        k = tuple(row.get(c) for c in key)
        last.pop(k, None)  # re-insert: the last occurrence decides the position too
        last[k] = row
    return list(last.values())


def stream_batch(table: str, rows: list[dict[str, Any]], upsert: bool = False):
    """What every ``write_rows`` applies: (table spec, write mode, rows collapsed by key)."""
    spec = schemas.table_schema(table)
    return spec, stream_write_mode(spec, upsert), collapse_by_key(spec.key, rows)


def open_warehouse(url: str) -> Warehouse:
    """``duckdb:path``, ``path.duckdb`` or ``bigquery://project.dataset``."""
    if url.startswith("bigquery://"):
        from .bigquery import BigQueryWarehouse

        return BigQueryWarehouse.from_url(url)
    if url.startswith("duckdb:") or url.endswith(".duckdb") or url.endswith(".db"):
        from .duckdb import DuckDBWarehouse

        return DuckDBWarehouse(url.removeprefix("duckdb://").removeprefix("duckdb:"))
    raise WarehouseError(
        f"unknown warehouse {url!r}; use a DuckDB file (e.g. --warehouse touchline.duckdb) "
        f"or --warehouse bigquery://PROJECT.DATASET"
    )
