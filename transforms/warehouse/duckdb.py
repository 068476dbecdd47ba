"""The embedded warehouse: one DuckDB file, same table names and columns as BigQuery.

Staging files are Parquet (written by workers); the commit loads them in a single DuckDB
transaction. DuckDB allows one writing process per file: while a run commits, other processes
that hold the file open (a notebook, a BI tool) make the commit fail with a clear message.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

import duckdb
import pyarrow as pa

from ... import schemas
from ...schemas import TableSpec
from ...schemas.arrow import arrow_schema
from ...schemas.duckdb import comments, create_table, quote
from ..errors import TOKEN_HASH_PATTERN
from . import Warehouse, WarehouseError, stream_batch
from .staging import PARQUET_SUFFIX, ReadSnapshot, StageParquet, list_staged
from .state import Session


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _parquet(files: list[str]) -> str:
    """SQL reading these Parquet files as one relation."""
    return f"read_parquet([{', '.join(_lit(f) for f in files)}])"


#: how much memory one DuckDB connection may use before spilling to disk; the environment variable
#: overrides it (a DuckDB size such as '8GB'; empty: DuckDB's own default, 80 % of RAM)
DEFAULT_MEMORY_LIMIT = "2GB"
MEMORY_LIMIT_ENV = "TOUCHLINE_DUCKDB_MEMORY_LIMIT"


class DuckDBWarehouse(Warehouse):
    remote_ok = False

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.url = f"duckdb:{self.path}"
        self._con: duckdb.DuckDBPyConnection | None = None

    # -- connection --------------------------------------------------------------------------
    def _connect(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            folder = os.path.dirname(self.path)
            if not os.path.isdir(folder):
                raise WarehouseError(f"folder {folder} of the DuckDB warehouse does not exist; create it or pick another --warehouse path")
            try:
                self._con = duckdb.connect(self.path)
                # Staging files are read once; a cached copy of a file rewritten in the same
                # second (same name, same size) would be served stale.
                self._con.execute("SET enable_external_file_cache = false")
                # no progress bar on stdout (a commit or snapshot runs inside a command's output)
                self._con.execute("SET enable_progress_bar = false")
                # DuckDB's default (80 % of RAM) let a 10^7-row commit take 10 GB; above the limit it
                # spills to <file>.tmp/ instead (measured: docs/benchmarks.md)
                limit = os.environ.get(MEMORY_LIMIT_ENV, DEFAULT_MEMORY_LIMIT).strip()
                if limit:
                    self._con.execute(f"SET memory_limit = {_lit(limit)}")
            except duckdb.IOException as exc:
                if "lock" in str(exc).lower():
                    raise WarehouseError(
                        f"DuckDB file {self.path} is open in another process ({str(exc).split('(', 1)[-1].rstrip(')')}); "
                        f"close that program (notebook, BI tool) and run again"
                    ) from None
                raise WarehouseError(f"cannot open DuckDB file {self.path}: {exc}") from None
            except duckdb.Error as exc:
                raise WarehouseError(f"{self.path} is not a usable DuckDB file ({exc}); point --warehouse at another file") from None
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def check(self) -> None:
        self._connect()

    # -- schema ------------------------------------------------------------------------------
    def _existing_columns(self, table: str) -> dict[str, str]:
        rows = self._connect().execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
        return dict(rows)

    def init(self, tables: Iterable[str] | None = None) -> list[str]:
        con = self._connect()
        done = []
        for name in tables or schemas.table_schemas():
            spec = schemas.table_schema(name)
            existing = self._existing_columns(spec.name)
            if not existing:
                con.execute(create_table(spec))
                for stmt in comments(spec):
                    con.execute(stmt)
                done.append(f"created {spec.name}")
                continue
            probe = f"__touchline_probe_{spec.name}"
            con.execute(create_table(spec, name=probe, if_not_exists=False).replace("CREATE TABLE", "CREATE TEMP TABLE", 1))
            wanted = self._existing_columns(probe)
            con.execute(f"DROP TABLE {quote(probe)}")
            for column, dtype in wanted.items():
                if column not in existing:
                    con.execute(f"ALTER TABLE {quote(spec.name)} ADD COLUMN {quote(column)} {dtype}")
                    done.append(f"added {spec.name}.{column}")
                elif existing[column] != dtype:
                    raise WarehouseError(
                        f"table {spec.name} column {column} is {existing[column]} but the schema says {dtype}; "
                        f"migrate the table (see docs/runbook.md, 'Schema change') before running"
                    )
        return done

    # -- writes ------------------------------------------------------------------------------
    def stage(self, table: str, staging_dir: str):
        return StageParquet(table, staging_dir)

    def staged_files(self, table: str, staging_dir: str) -> list[str]:
        return list_staged(staging_dir, table, PARQUET_SUFFIX)

    def _apply_scoped(self, con, spec: TableSpec, source_sql: str, scope: str | None) -> int:
        person, day = (quote(c) for c in spec.scope_by)
        cols = ", ".join(quote(c) for c in spec.columns)
        stage = f"__stage_{spec.name}"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(stage)} AS SELECT {cols} FROM {source_sql}")
        if scope is None:
            (n,) = con.execute(f"SELECT count(*) FROM {quote(stage)}").fetchone()
            outside = n or None
        else:
            outside = con.execute(
                f"SELECT s.{person}, s.{day} FROM {quote(stage)} s LEFT JOIN {quote(scope)} c ON s.{person} = c.person_id "
                f"WHERE c.person_id IS NULL OR s.{day} < c.from_date LIMIT 1"
            ).fetchone()
        if outside:
            raise WarehouseError(f"staged {spec.name} row {outside} lies outside the run's recompute scope; refusing to commit")
        if scope is not None:
            con.execute(
                f"DELETE FROM {quote(spec.name)} t WHERE EXISTS (SELECT 1 FROM {quote(scope)} c "
                f"WHERE t.{person} = c.person_id AND t.{day} >= c.from_date)"
            )
        con.execute(f"INSERT INTO {quote(spec.name)} ({cols}) SELECT {cols} FROM {quote(stage)}")
        (count,) = con.execute(f"SELECT count(*) FROM {quote(stage)}").fetchone()
        con.execute(f"DROP TABLE {quote(stage)}")
        return count

    def _apply(self, con, spec: TableSpec, source_sql: str, mode: str | None = None) -> int:
        cols = ", ".join(quote(c) for c in spec.columns)
        stage = f"__stage_{spec.name}"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(stage)} AS SELECT {cols} FROM {source_sql}")
        keys = ", ".join(quote(k) for k in spec.key)
        dup = con.execute(
            f"SELECT {keys}, count(*) FROM {quote(stage)} GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
        ).fetchone()
        if dup:
            raise WarehouseError(f"staged rows for {spec.name} repeat key {dup[:-1]} ({dup[-1]} times); refusing to commit")
        match = " AND ".join(f"t.{quote(k)} IS NOT DISTINCT FROM s.{quote(k)}" for k in spec.key)
        mode = mode or spec.write
        if mode == "replace":
            con.execute(f"DELETE FROM {quote(spec.name)}")
            con.execute(f"INSERT INTO {quote(spec.name)} ({cols}) SELECT {cols} FROM {quote(stage)}")
        elif mode == "merge":
            con.execute(f"DELETE FROM {quote(spec.name)} t WHERE EXISTS (SELECT 1 FROM {quote(stage)} s WHERE {match})")
            con.execute(f"INSERT INTO {quote(spec.name)} ({cols}) SELECT {cols} FROM {quote(stage)}")
        else:  # insert_if_absent
            con.execute(
                f"INSERT INTO {quote(spec.name)} ({cols}) SELECT {cols} FROM {quote(stage)} s "
                f"WHERE NOT EXISTS (SELECT 1 FROM {quote(spec.name)} t WHERE {match})"
            )
        (count,) = con.execute(f"SELECT count(*) FROM {quote(stage)}").fetchone()
        con.execute(f"DROP TABLE {quote(stage)}")
        return count

    def commit(self, staging_dir: str, tables: Iterable[str], rows: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, int]:
        con = self._connect()
        self.init()
        written: dict[str, int] = {}
        tables = list(tables)
        con.execute("BEGIN TRANSACTION")
        try:
            scope = None
            scope_files = self.staged_files(schemas.RECOMPUTE_SCOPE, staging_dir)
            if schemas.RECOMPUTE_SCOPE in tables and scope_files:
                scope = "__recompute_scope"
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {scope} AS SELECT person_id, min(from_date) AS from_date "
                    f"FROM {_parquet(scope_files)} GROUP BY person_id"
                )
            for table in tables:
                spec = schemas.table_schema(table)
                if spec.staging_only:
                    continue
                files = self.staged_files(table, staging_dir)
                if files:
                    source = _parquet(files)
                else:  # nothing staged: a scoped table still loses the rows of its scope
                    source = f"(SELECT * FROM {quote(spec.name)} WHERE false)"
                if spec.write == "replace_scope":
                    written[table] = self._apply_scoped(con, spec, source, scope)
                else:
                    written[table] = self._apply(con, spec, source) if files else 0
            if scope is not None:
                con.execute(f"DROP TABLE {scope}")
            for table, table_rows in (rows or {}).items():
                spec = schemas.table_schema(table)
                arrow = pa.Table.from_pylist(table_rows, schema=arrow_schema(spec))  # noqa: F841 -- referenced by name below
                con.register("__touchline_rows", arrow)
                written[table] = written.get(table, 0) + self._apply(con, spec, "__touchline_rows")
                con.unregister("__touchline_rows")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        return written

    def write_rows(self, table: str, rows: list[dict[str, Any]], upsert: bool = False) -> int:
        """One transaction per call; the same keyed apply as :meth:`commit` (see the interface)."""
        spec, mode, rows = stream_batch(table, rows, upsert)
        if not rows:
            return 0
        con = self._connect()
        arrow = pa.Table.from_pylist(rows, schema=arrow_schema(spec))  # noqa: F841 -- referenced by name below
        con.execute("BEGIN TRANSACTION")
        try:
            con.register("__touchline_rows", arrow)
            count = self._apply(con, spec, "__touchline_rows", mode)
            con.unregister("__touchline_rows")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        return count

    def read(self, table: str, staging_dir: str, where: str | None = None):
        """Export the rows to Parquet under ``staging_dir/_snapshots`` now; read them in the pipeline."""
        spec = schemas.table_schema(table)
        self.init([table])
        folder = os.path.join(staging_dir, "_snapshots", table)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "snapshot.parquet")
        cols = ", ".join(quote(c) for c in spec.columns)
        condition = f" WHERE {where}" if where else ""
        copy_to_parquet(self._connect(), f"SELECT {cols} FROM {quote(spec.name)}{condition}", path)
        return ReadSnapshot(table, [path])

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        return self._connect().execute(sql, params or []).fetchall()

    def session(self) -> "DuckDBSession":
        """The SQL of a filtered state read (``state.read_state``), on temporary tables of this connection."""
        self.init()
        return DuckDBSession(self._connect())


    def erase(self, person_ids, id_hashes, event_ids, requests) -> dict[str, int]:
        con = self._connect()
        self.init()
        values = {
            "person_id": sorted(set(person_ids)),
            "id_hash": sorted(set(id_hashes)),
            "event_id": sorted(set(event_ids)),
        }
        tables = {kind: pa.table({"v": pa.array(vals, pa.string())}) for kind, vals in values.items()}
        deleted: dict[str, int] = {}
        con.execute("BEGIN TRANSACTION")
        try:
            for kind, table in tables.items():
                con.register(f"__erase_{kind}", table)
            for spec in schemas.table_schemas().values():
                if not spec.erase_by:
                    continue
                conditions = []
                for column, match in spec.erase_by.items():
                    col = f"t.{quote(column)}"
                    if match == "tokens":
                        conditions.append(
                            f"EXISTS (SELECT 1 FROM unnest(regexp_extract_all({col}, '{TOKEN_HASH_PATTERN}', 1)) AS x(h) "
                            f"WHERE x.h IN (SELECT v FROM __erase_id_hash))"
                        )
                    else:
                        conditions.append(f"{col} IN (SELECT v FROM __erase_{match})")
                (count,) = con.execute(f"DELETE FROM {quote(spec.name)} t WHERE {' OR '.join(conditions)}").fetchone()
                deleted[spec.name] = count
            spec = schemas.table_schema("erasure_requests")
            arrow = pa.Table.from_pylist(requests, schema=arrow_schema(spec))  # noqa: F841 -- referenced by name below
            con.register("__touchline_rows", arrow)
            before = con.execute("SELECT count(*) FROM erasure_requests").fetchone()[0]
            self._apply(con, spec, "__touchline_rows")
            deleted["erasure_requests"] = con.execute("SELECT count(*) FROM erasure_requests").fetchone()[0] - before
            con.unregister("__touchline_rows")
            for kind in tables:
                con.unregister(f"__erase_{kind}")
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise WarehouseError(f"erasure failed and nothing was deleted: {exc}") from None
        except Exception:
            con.execute("ROLLBACK")
            raise
        return deleted


def copy_to_parquet(con, query: str, path: str) -> int:
    """Write a query's rows to a Parquet snapshot file in one pass; returns the row count (COPY's
    result). LZ4: it decodes ~3x faster than the default Snappy when the pipeline reads it back."""
    (rows,) = con.execute(f"COPY ({query}) TO {_lit(path)} (FORMAT PARQUET, COMPRESSION lz4)").fetchone()
    return rows


class DuckDBSession(Session):
    """:class:`touchline.transforms.warehouse.state.Session` on one DuckDB connection: scratch
    tables are temporary (gone with the connection), exports are ``COPY ... TO`` Parquet."""

    def __init__(self, con):
        self._con = con

    def t(self, name: str) -> str:
        return quote(f"__state_{name}")

    def create(self, name: str, sql: str) -> None:
        self._con.execute(f"CREATE OR REPLACE TEMP TABLE {self.t(name)} AS {sql}")

    def insert(self, name: str, sql: str) -> None:
        self._con.execute(f"INSERT INTO {self.t(name)} {sql}")

    def count(self, name: str) -> int:
        return self._con.execute(f"SELECT count(*) FROM {self.t(name)}").fetchone()[0]

    def load_keys(self, name: str, column: str, files: list[str]) -> None:
        source = _parquet(files) if files else f"(SELECT NULL::VARCHAR AS {quote(column)} WHERE false)"
        self.create(name, f"SELECT DISTINCT {quote(column)} FROM {source}")

    def unnest_ids(self, source: str) -> str:
        return f"SELECT DISTINCT unnest(identifiers).id_hash AS id_hash FROM {self.t(source)}"

    def events_holding(self, where: str, ids: str) -> str:
        return (f"SELECT event_id FROM (SELECT event_id, unnest(identifiers).id_hash AS id_hash FROM touchpoints "
                f"WHERE {where}) q WHERE id_hash IN (SELECT id_hash FROM {self.t(ids)})")

    def keep(self, name: str, column: str, folder: str) -> tuple[list[str], int]:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{name}.parquet")
        return [path], copy_to_parquet(self._con, f"SELECT DISTINCT {quote(column)} FROM {self.t(name)}", path)

    def export(self, name: str, table: str, where: str, folder: str) -> tuple[list[str], int]:
        spec = schemas.table_schema(table)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "snapshot.parquet")
        cols = ", ".join(quote(c) for c in spec.columns)
        return [path], copy_to_parquet(self._con, f"SELECT {cols} FROM {quote(spec.name)} WHERE {where}", path)
