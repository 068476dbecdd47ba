"""BigQuery as the warehouse: ``bigquery://PROJECT.DATASET``, same table names and columns as DuckDB.

Tables are generated from ``schemas/*.avsc`` (:mod:`touchline.schemas.bigquery`): DATE partitioning on
the schema's ``partition_by``, clustering on ``cluster_by``, ``require_partition_filter``, and the
Avro docs as table and column descriptions.

A run's rows arrive as Avro staging files (:class:`~.staging.StageAvro`, one folder per table, in
``gs://`` in production). :meth:`BigQueryWarehouse.commit` then

1. loads each table's files into a fresh staging table ``_stage_<table>_<token>`` created with the
   target's schema (load jobs with ``use_avro_logical_types``; nothing touches a target yet),
2. checks them (repeated keys, rows outside a recompute scope) and finds the partitions they touch,
3. applies every table in ONE multi-statement transaction (``BEGIN TRANSACTION ... COMMIT``):
   ``merge`` -> ``MERGE ... WHEN MATCHED THEN UPDATE ... WHEN NOT MATCHED THEN INSERT (cols) VALUES``,
   ``insert_if_absent`` -> ``MERGE ... WHEN NOT MATCHED THEN INSERT``, ``replace`` -> ``DELETE`` +
   ``INSERT``, ``replace_scope`` -> ``DELETE`` the run's recompute scope + ``INSERT``; each MERGE and
   DELETE names the target partitions it may touch as constants, so BigQuery prunes the rest,
4. drops the staging tables (they also expire after a day, should a crashed run leave them behind).

A failure before step 3 leaves the targets untouched; a failure inside step 3 rolls the whole
transaction back. Either way a re-run applies the same rows by key, so it converges. See
``docs/warehouse.md``.

Endpoints: production uses Application Default Credentials; ``?endpoint=http://HOST:PORT`` (REST)
and ``&storage_endpoint=HOST:PORT`` (Storage Read gRPC) in the URL, or ``--bigquery_endpoint`` /
``TOUCHLINE_BIGQUERY_ENDPOINT``, point it at an emulator (anonymous credentials only then).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import uuid
from typing import Any, Iterable
from urllib.parse import parse_qs, quote as url_quote, urlsplit

import fastavro
from apache_beam.io.filesystems import FileSystems

from ... import schemas
from ...schemas import TableSpec
from ...schemas.bigquery import column_type, load_avro_schema, load_datum, table_fields
from ...schemas.model import columns
from ..bigquery_connect import PROBE_TIMEOUT, BigQueryConnection, BigQueryError, describe, probe_retry
from ..errors import TOKEN_HASH_PATTERN
from . import Warehouse, stream_batch
from .staging import AVRO_SUFFIX, ReadSnapshot, StageAvro, list_staged, table_dir
from .state import Session

log = logging.getLogger("touchline")

#: Staging tables left behind by a crashed commit disappear after this long.
STAGE_EXPIRY = dt.timedelta(days=1)
#: Longest a single load job or the commit transaction may run before it is reported (seconds).
JOB_TIMEOUT = 3600.0
#: Streams requested for a snapshot read (the server may return fewer).
SNAPSHOT_STREAMS = 8
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
_TYPE_ALIASES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "STRUCT": "RECORD"}


def _ident(*parts: str) -> str:
    return "`" + ".".join(parts).replace("`", "") + "`"


def _col(name: str, alias: str | None = None) -> str:
    return f"{alias}.`{name}`" if alias else f"`{name}`"


def _date_lit(days: int | dt.date | str) -> str:
    if isinstance(days, int):
        days = dt.date(1970, 1, 1) + dt.timedelta(days=days)
    return f"DATE '{days}'"


class BigQueryWarehouse(Warehouse):
    remote_ok = True

    def __init__(self, project: str, dataset: str, location: str | None = None, endpoint: str | None = None,
                 storage_endpoint: str | None = None):
        if not project or not dataset:
            raise BigQueryError(f"bigquery://{project}.{dataset} names no project or dataset\n"
                                f"  fix: use --warehouse bigquery://PROJECT.DATASET")
        self.project = project
        self.dataset = dataset
        self.conn = BigQueryConnection.resolve(project, location, endpoint, storage_endpoint)
        query = [(k, v) for k, v in (("endpoint", self.conn.endpoint), ("storage_endpoint", self.conn.storage_endpoint),
                                     ("location", self.conn.location)) if v]
        self.url = f"bigquery://{project}.{dataset}" + ("?" + "&".join(f"{k}={url_quote(v, safe=':/')}" for k, v in query) if query else "")
        self._client = None

    @classmethod
    def from_url(cls, url: str) -> "BigQueryWarehouse":
        """``bigquery://PROJECT.DATASET[?endpoint=http://HOST:PORT&storage_endpoint=HOST:PORT&location=EU]``."""
        parts = urlsplit(url)
        path = (parts.netloc + parts.path).strip("/")
        if "." not in path:
            raise BigQueryError(f"{url!r} names no dataset\n  fix: use --warehouse bigquery://PROJECT.DATASET")
        project, dataset = path.rsplit(".", 1)  # domain-scoped projects contain dots and a colon
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(params) - {"endpoint", "storage_endpoint", "location"}
        if unknown:
            raise BigQueryError(f"unknown parameter {sorted(unknown)[0]!r} in {url}\n  fix: use endpoint=, storage_endpoint= or location=")
        return cls(project, dataset, params.get("location"), params.get("endpoint"), params.get("storage_endpoint"))

    # -- connection ----------------------------------------------------------------------------
    def _bq(self):
        if self._client is None:
            self._client = self.conn.client()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _table_id(self, table: str) -> str:
        return f"{self.project}.{self.dataset}.{table}"

    def _fq(self, table: str) -> str:
        return _ident(self.project, self.dataset, table)

    def check(self) -> None:
        """Credentials, reachability and the dataset, within seconds (no retry loop on a dead endpoint)."""
        from google.api_core.exceptions import NotFound

        client = self._bq()
        try:
            client.get_dataset(f"{self.project}.{self.dataset}", retry=probe_retry(), timeout=PROBE_TIMEOUT)
        except NotFound:
            raise BigQueryError(
                f"BigQuery dataset {self.project}.{self.dataset} does not exist\n"
                f"  fix: create it with `touchline warehouse init --warehouse {self.url}`"
            ) from None
        except Exception as exc:  # noqa: BLE001 -- translated into a message with a fix
            raise describe(exc, self.conn, f"open dataset {self.project}.{self.dataset}") from None

    # -- schema --------------------------------------------------------------------------------
    def _new_table(self, spec: TableSpec, table_id: str, staging: bool = False):
        from google.cloud import bigquery

        table = bigquery.Table(table_id, schema=[bigquery.SchemaField.from_api_repr(f) for f in table_fields(spec)])
        if staging:
            table.expires = dt.datetime.now(dt.timezone.utc) + STAGE_EXPIRY
            table.description = f"Touchline staging rows for {spec.name}; dropped after the commit."
            return table
        table.description = spec.doc or None
        if spec.partition_by:
            table.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY, field=spec.partition_by)
            if spec.require_partition_filter:
                # table-level flag (current API) and the partitioning one (read by older servers/emulators)
                table.require_partition_filter = True
                table.time_partitioning._properties["requirePartitionFilter"] = True
        if spec.cluster_by:
            table.clustering_fields = list(spec.cluster_by)[:4]
        return table

    def init(self, tables: Iterable[str] | None = None) -> list[str]:
        """Create the dataset and missing tables, add new (nullable) columns; return what was done."""
        from google.api_core.exceptions import Conflict, NotFound
        from google.cloud import bigquery

        client = self._bq()
        done: list[str] = []
        try:
            try:
                client.get_dataset(f"{self.project}.{self.dataset}", retry=probe_retry(), timeout=PROBE_TIMEOUT)
            except NotFound:
                ds = bigquery.Dataset(f"{self.project}.{self.dataset}")
                if self.conn.location:
                    ds.location = self.conn.location
                ds.description = "Touchline: customer-journey tables (touchpoints, dead letters, runs, ...). See docs/tables.md."
                try:
                    client.create_dataset(ds, retry=probe_retry(), timeout=PROBE_TIMEOUT)
                    done.append(f"created dataset {self.project}.{self.dataset}" + (f" in {self.conn.location}" if self.conn.location else ""))
                except Conflict:
                    pass
            for name in tables or schemas.table_schemas():
                spec = schemas.table_schema(name)
                if spec.staging_only:
                    continue
                done += self._init_table(client, spec)
        except BigQueryError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise describe(exc, self.conn, f"create tables in {self.project}.{self.dataset}",
                           "check the project id in --warehouse bigquery://PROJECT.DATASET") from None
        return done

    def _init_table(self, client, spec: TableSpec) -> list[str]:
        from google.api_core.exceptions import Conflict, NotFound
        from google.cloud import bigquery

        table_id = self._table_id(spec.name)
        try:
            existing = client.get_table(table_id, retry=probe_retry(), timeout=PROBE_TIMEOUT)
        except NotFound:
            try:
                client.create_table(self._new_table(spec, table_id), retry=probe_retry(), timeout=PROBE_TIMEOUT)
            except Conflict:  # created concurrently
                return []
            layout = [f"partitioned by {spec.partition_by}" if spec.partition_by else "not partitioned"]
            if spec.cluster_by:
                layout.append(f"clustered by {', '.join(spec.cluster_by)}")
            if spec.require_partition_filter:
                layout.append("partition filter required")
            return [f"created {spec.name} ({'; '.join(layout)})"]
        done = []
        have = {f.name: f for f in existing.schema}
        wanted = table_fields(spec)
        for field in wanted:
            current = have.get(field["name"])
            if current is None:
                continue
            got, want = _TYPE_ALIASES.get(current.field_type, current.field_type), field["type"]
            if got != want or (current.mode == "REPEATED") != (field["mode"] == "REPEATED"):
                raise BigQueryError(
                    f"table {table_id} column {field['name']} is {current.mode} {got} but the schema says "
                    f"{field['mode']} {want}\n  fix: migrate the table (docs/warehouse.md, 'Schema changes') before running"
                )
        missing = [f for f in wanted if f["name"] not in have]
        for field in missing:
            description = field.get("description", "").replace("\\", "\\\\").replace("'", "\\'")
            options = f" OPTIONS(description='{description}')" if description else ""
            self._run(f"ALTER TABLE {self._fq(spec.name)} ADD COLUMN IF NOT EXISTS `{field['name']}` {column_type(field)}{options}")
            done.append(f"added {spec.name}.{field['name']}")
        if missing:
            # Some servers (the emulator) change the data but not the catalog with ALTER TABLE.
            refreshed = client.get_table(table_id, retry=probe_retry(), timeout=PROBE_TIMEOUT)
            names = {f.name for f in refreshed.schema}
            extra = [bigquery.SchemaField.from_api_repr({**f, "mode": "NULLABLE" if f["mode"] == "REQUIRED" else f["mode"]})
                     for f in missing if f["name"] not in names]
            if extra:
                refreshed.schema = list(refreshed.schema) + extra
                client.update_table(refreshed, ["schema"], retry=probe_retry(), timeout=PROBE_TIMEOUT)
        partitioned = existing.time_partitioning.field if existing.time_partitioning else None
        if partitioned != spec.partition_by:
            done.append(f"note: {spec.name} is partitioned by {partitioned or 'nothing'} but the schema says "
                        f"{spec.partition_by or 'nothing'} (partitioning changes need a new table)")
        return done

    # -- writes --------------------------------------------------------------------------------
    def stage(self, table: str, staging_dir: str):
        return StageAvro(table, staging_dir)

    def staged_files(self, table: str, staging_dir: str) -> list[str]:
        return list_staged(staging_dir, table, AVRO_SUFFIX)

    def _run(self, sql: str, params: list | None = None, timeout: float = JOB_TIMEOUT):
        """Run SQL with the dataset as default; ``params`` are values for ``?`` or, for named
        ``@name`` parameters, ready-made query parameter objects."""
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(default_dataset=f"{self.project}.{self.dataset}")
        if params:
            config.query_parameters = [v if isinstance(v, bigquery.query._AbstractQueryParameter) else _param(v)
                                       for v in params]
        job = self._bq().query(sql, job_config=config)
        try:
            return job, list(job.result(timeout=timeout))
        except TimeoutError:  # concurrent.futures.TimeoutError: the job is still running
            job.cancel()  # a cancelled transaction rolls back
            raise BigQueryError(f"BigQuery job {job.job_id} did not finish within {timeout:.0f} s and was cancelled\n"
                                f"  fix: look at the job in the console (slots, concurrent DML) and run again") from None

    def _server_reads_local_files(self) -> bool:
        """An emulator on this machine reads ``file://`` URIs itself (as BigQuery reads gs://)."""
        if not self.conn.endpoint:
            return False
        host = urlsplit(self.conn.endpoint).hostname or ""
        return host in _LOOPBACK

    def _load(self, spec: TableSpec, stage_id: str, files: list[str], staging_dir: str) -> None:
        from google.cloud import bigquery

        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.AVRO,
            use_avro_logical_types=True,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
        )
        client = self._bq()
        if files[0].startswith("gs://"):
            jobs = [client.load_table_from_uri(FileSystems.join(table_dir(staging_dir, spec.name), "*" + AVRO_SUFFIX), stage_id, job_config=config)]
        elif self._server_reads_local_files():
            jobs = [client.load_table_from_uri(["file://" + os.path.abspath(f) for f in files], stage_id, job_config=config)]
        else:  # local files, remote server: upload them
            jobs = []
            for path in files:
                with FileSystems.open(path) as fh:
                    jobs.append(client.load_table_from_file(fh, stage_id, job_config=config, rewind=True))
        for job in jobs:
            job.result(timeout=JOB_TIMEOUT)

    def _load_rows(self, spec: TableSpec, stage_id: str, rows: list[dict[str, Any]]) -> None:
        from google.cloud import bigquery

        buffer = io.BytesIO()
        convert = load_datum(spec)
        fastavro.writer(buffer, fastavro.parse_schema(load_avro_schema(spec)), [convert(r) for r in rows], codec="deflate")
        buffer.seek(0)
        config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.AVRO, use_avro_logical_types=True,
                                        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
                                        create_disposition=bigquery.CreateDisposition.CREATE_NEVER)
        self._bq().load_table_from_file(buffer, stage_id, job_config=config).result(timeout=JOB_TIMEOUT)

    def _partitions(self, spec: TableSpec, stage: str) -> list[str | None]:
        """Distinct partition values of staged rows (None for the NULL partition), as ISO dates."""
        col = _col(spec.partition_by)
        _, rows = self._run(f"SELECT DISTINCT CAST({col} AS STRING) AS p FROM {stage}")
        return sorted((r[0] for r in rows), key=lambda v: (v is None, v or ""))

    def _moved_partitions(self, spec: TableSpec, stage: str, known: list[str | None]) -> list[str | None]:
        """Partitions of the target holding staged keys outside ``known`` (a row whose partition
        value changed since it was written). Scans only the key and partition columns."""
        match = self._key_match(spec)
        part = _col(spec.partition_by, "t")
        dates = [d for d in known if d is not None]
        outside = f"{part} NOT IN ({', '.join(_date_lit(d) for d in dates)})" if dates else "TRUE"
        if None in known:
            outside += f" AND {part} IS NOT NULL"
        _, rows = self._run(
            f"SELECT DISTINCT CAST({part} AS STRING) AS p FROM {self._fq(spec.name)} t JOIN {stage} s ON {match} WHERE {outside}"
        )
        return [r[0] for r in rows]

    def _key_match(self, spec: TableSpec) -> str:
        nullable = {c.name for c in columns(spec.schema) if c.nullable}
        return " AND ".join(
            f"{_col(k, 't')} IS NOT DISTINCT FROM {_col(k, 's')}" if k in nullable else f"{_col(k, 't')} = {_col(k, 's')}"
            for k in spec.key
        )

    @staticmethod
    def _partition_filter(spec: TableSpec, partitions: list[str | None]) -> str:
        part = _col(spec.partition_by, "t")
        dates = [d for d in partitions if d is not None]
        terms = [f"{part} IN ({', '.join(_date_lit(d) for d in dates)})"] if dates else []
        if None in partitions:
            terms.append(f"{part} IS NULL")
        return "(" + " OR ".join(terms) + ")" if terms else "FALSE"

    def _check_keys(self, spec: TableSpec, stage: str) -> None:
        keys = ", ".join(_col(k) for k in spec.key)
        _, rows = self._run(f"SELECT {keys}, COUNT(*) AS n FROM {stage} GROUP BY {keys} HAVING COUNT(*) > 1 LIMIT 1")
        if rows:
            dup = tuple(rows[0].values())
            raise BigQueryError(f"staged rows for {spec.name} repeat key {dup[:-1]} ({dup[-1]} times); refusing to commit")

    def _statements(self, spec: TableSpec, stage: str, scope: str | None, mode: str | None = None) -> list[str]:
        """The DML applying one staged table to its target (run inside the commit transaction);
        ``mode`` overrides the table's write mode (a stream's upserts, see :meth:`write_rows`)."""
        target = self._fq(spec.name)
        cols = [_col(c) for c in spec.columns]
        col_list = ", ".join(cols)
        mode = mode or spec.write
        if mode == "replace_scope":
            return self._scoped_statements(spec, stage, scope)
        self._check_keys(spec, stage)
        if mode == "replace":
            return [f"DELETE FROM {target} WHERE TRUE", f"INSERT INTO {target} ({col_list}) SELECT {col_list} FROM {stage}"]
        on = self._key_match(spec)
        if spec.partition_by:
            partitions = self._partitions(spec, stage)
            if not partitions:
                return []
            if not spec.require_partition_filter:
                partitions += self._moved_partitions(spec, stage, partitions)
            on = f"{self._partition_filter(spec, partitions)} AND {on}"
        insert = f"WHEN NOT MATCHED THEN INSERT ({col_list}) VALUES ({', '.join(_col(c, 's') for c in spec.columns)})"
        if mode == "insert_if_absent":
            return [f"MERGE {target} t USING {stage} s ON {on}\n{insert}"]
        updates = ", ".join(f"{_col(c)} = {_col(c, 's')}" for c in spec.columns if c not in spec.key)
        matched = f"WHEN MATCHED THEN UPDATE SET {updates}\n" if updates else ""
        return [f"MERGE {target} t USING {stage} s ON {on}\n{matched}{insert}"]

    def _scoped_statements(self, spec: TableSpec, stage: str, scope: str | None) -> list[str]:
        person, day = spec.scope_by
        target = self._fq(spec.name)
        col_list = ", ".join(_col(c) for c in spec.columns)
        if scope is None:
            _, rows = self._run(f"SELECT {_col(person)}, CAST({_col(day)} AS STRING) FROM {stage} LIMIT 1")
            if rows:
                raise BigQueryError(f"staged {spec.name} row {tuple(rows[0].values())} lies outside the run's recompute scope; refusing to commit")
            return []
        _, rows = self._run(
            f"SELECT s.{_col(person)}, CAST(s.{_col(day)} AS STRING) FROM {stage} s LEFT JOIN {scope} c "
            f"ON s.{_col(person)} = c.person_id WHERE c.person_id IS NULL OR s.{_col(day)} < c.from_date LIMIT 1"
        )
        if rows:
            raise BigQueryError(f"staged {spec.name} row {tuple(rows[0].values())} lies outside the run's recompute scope; refusing to commit")
        prune = ""
        if spec.partition_by == day:
            _, first = self._run(f"SELECT CAST(MIN(from_date) AS STRING) FROM {scope}")
            if first and first[0][0] is not None:
                prune = f"t.{_col(day)} >= {_date_lit(first[0][0])} AND "
        return [
            f"DELETE FROM {target} t WHERE {prune}EXISTS (SELECT 1 FROM {scope} c "
            f"WHERE t.{_col(person)} = c.person_id AND t.{_col(day)} >= c.from_date)",
            f"INSERT INTO {target} ({col_list}) SELECT {col_list} FROM {stage}",
        ]

    def commit(self, staging_dir: str, tables: Iterable[str], rows: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, int]:
        tables = list(tables)
        rows = rows or {}
        self.init()
        client = self._bq()
        token = uuid.uuid4().hex[:10]
        created: list[str] = []
        written: dict[str, int] = {}

        def staging_table(spec: TableSpec) -> str:
            table_id = self._table_id(f"_stage_{spec.name.lstrip('_')}_{token}")
            client.create_table(self._new_table(spec, table_id, staging=True), retry=probe_retry(), timeout=PROBE_TIMEOUT)
            created.append(table_id)
            return table_id

        try:
            scope = None
            scope_files = self.staged_files(schemas.RECOMPUTE_SCOPE, staging_dir) if schemas.RECOMPUTE_SCOPE in tables else []
            if scope_files:
                scope_spec = schemas.table_schema(schemas.RECOMPUTE_SCOPE)
                scope_id = staging_table(scope_spec)
                self._load(scope_spec, scope_id, scope_files, staging_dir)
                scope = f"(SELECT person_id, MIN(from_date) AS from_date FROM {_ident(scope_id)} GROUP BY person_id)"
            script: list[str] = []
            for table in dict.fromkeys([*tables, *rows]):
                spec = schemas.table_schema(table)
                if spec.staging_only:
                    continue
                files = self.staged_files(table, staging_dir) if table in tables else []
                extra = rows.get(table) or []
                if not files and not extra and spec.write != "replace_scope":
                    written[table] = 0
                    continue
                stage_id = staging_table(spec)
                if files:
                    self._load(spec, stage_id, files, staging_dir)
                if extra:
                    self._load_rows(spec, stage_id, extra)
                stage = _ident(stage_id)
                _, counted = self._run(f"SELECT COUNT(*) FROM {stage}")
                written[table] = int(counted[0][0])
                script += self._statements(spec, stage, scope)
            if script:
                self._run("BEGIN TRANSACTION;\n" + ";\n".join(script) + ";\nCOMMIT TRANSACTION;")
        except BigQueryError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise describe(exc, self.conn, f"commit the run to {self.project}.{self.dataset} (targets unchanged)") from None
        finally:
            for table_id in created:
                try:
                    client.delete_table(table_id, not_found_ok=True, retry=probe_retry(), timeout=PROBE_TIMEOUT)
                except Exception as exc:  # noqa: BLE001 -- it expires on its own
                    log.warning("could not drop staging table %s (it expires in a day): %s", table_id, exc)
        return written

    def write_rows(self, table: str, rows: list[dict[str, Any]], upsert: bool = False) -> int:
        """A streaming batch (see :meth:`Warehouse.write_rows`): the rows are loaded into a fresh
        staging table (an Avro load job: no streaming buffer, so the rows can be merged at once) and
        applied by key with one ``MERGE``, which is atomic on its own. A retried batch merges again,
        so it never double-counts. Each batch is one load job and one query job: keep
        ``--write_max_latency`` at 10 s or more per table on BigQuery (load-job quotas)."""
        spec, mode, rows = stream_batch(table, rows, upsert)
        if not rows:
            return 0
        client = self._bq()
        table_id = self._table_id(f"_stream_{spec.name.lstrip('_')}_{uuid.uuid4().hex[:10]}")
        try:
            client.create_table(self._new_table(spec, table_id, staging=True), retry=probe_retry(), timeout=PROBE_TIMEOUT)
            try:
                self._load_rows(spec, table_id, rows)
                for statement in self._statements(spec, _ident(table_id), None, mode):
                    self._run(statement)
            finally:
                try:
                    client.delete_table(table_id, not_found_ok=True, retry=probe_retry(), timeout=PROBE_TIMEOUT)
                except Exception as exc:  # noqa: BLE001 -- it expires on its own
                    log.warning("could not drop staging table %s (it expires in a day): %s", table_id, exc)
        except BigQueryError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise describe(exc, self.conn, f"write {len(rows)} {table} rows to {self.project}.{self.dataset}") from None
        return len(rows)

    # -- erasure -------------------------------------------------------------------------------
    def erase(self, person_ids, id_hashes, event_ids, requests) -> dict[str, int]:
        """See :meth:`Warehouse.erase`: counts first, then every DELETE and the erasure list's
        insert-if-absent MERGE in one multi-statement transaction."""
        self.init()
        # Literal arrays (erasure lists are small): parameters inside subqueries trip the emulator.
        arrays = {"person_id": _string_array(person_ids), "id_hash": _string_array(id_hashes),
                  "event_id": _string_array(event_ids)}
        client = self._bq()
        stage_id = None
        deleted: dict[str, int] = {}
        try:
            script = []
            for spec in schemas.table_schemas().values():
                if not spec.erase_by:
                    continue
                conditions = []
                for column, match in spec.erase_by.items():
                    col = _col(column, "t")
                    if match == "tokens":
                        conditions.append(f"EXISTS (SELECT 1 FROM UNNEST(REGEXP_EXTRACT_ALL({col}, r'{TOKEN_HASH_PATTERN}')) AS h "
                                          f"WHERE h IN UNNEST({arrays['id_hash']}))")
                    else:
                        conditions.append(f"{col} IN UNNEST({arrays[match]})")
                where = " OR ".join(conditions)
                if spec.require_partition_filter and spec.partition_by:
                    part = _col(spec.partition_by, "t")  # every partition: an explicit, satisfied partition filter
                    where = f"({where}) AND ({part} >= DATE '1970-01-01' OR {part} IS NULL)"
                _, counted = self._run(f"SELECT COUNT(*) FROM {self._fq(spec.name)} t WHERE {where}")
                deleted[spec.name] = int(counted[0][0])
                if deleted[spec.name]:
                    script.append(f"DELETE FROM {self._fq(spec.name)} t WHERE {where}")
            spec = schemas.table_schema("erasure_requests")
            _, before = self._run(f"SELECT COUNT(*) FROM {self._fq(spec.name)}")
            if requests:
                stage_id = self._table_id(f"_stage_erasure_{uuid.uuid4().hex[:10]}")
                client.create_table(self._new_table(spec, stage_id, staging=True), retry=probe_retry(), timeout=PROBE_TIMEOUT)
                self._load_rows(spec, stage_id, requests)
                script += self._statements(spec, _ident(stage_id), None)
            if script:
                self._run("BEGIN TRANSACTION;\n" + ";\n".join(script) + ";\nCOMMIT TRANSACTION;")
            _, after = self._run(f"SELECT COUNT(*) FROM {self._fq(spec.name)}")
            deleted["erasure_requests"] = int(after[0][0]) - int(before[0][0])
        except BigQueryError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise describe(exc, self.conn, f"erase from {self.project}.{self.dataset} (nothing was deleted)") from None
        finally:
            if stage_id:
                client.delete_table(stage_id, not_found_ok=True, retry=probe_retry(), timeout=PROBE_TIMEOUT)
        return deleted

    # -- reads ---------------------------------------------------------------------------------
    def read(self, table: str, staging_dir: str, where: str | None = None):
        """Snapshot the rows now (Storage Read API, one Parquet file per stream under
        ``staging_dir/_snapshots/table``); the pipeline reads those files."""
        spec = schemas.table_schema(table)
        self.init([table])
        files, _ = self._snapshot(table, spec, FileSystems.join(staging_dir, "_snapshots", table), where or "")
        return ReadSnapshot(table, files)

    def _snapshot(self, table: str, spec: TableSpec, folder: str, where: str = "") -> tuple[list[str], int]:
        """The rows of ``table`` (in this dataset; columns of ``spec``) as Parquet files under ``folder``."""
        import pyarrow.parquet as pq
        from google.cloud.bigquery_storage_v1 import types

        try:
            reader = self.conn.read_client()
            session = reader.create_read_session(
                parent=f"projects/{self.project}",
                read_session=types.ReadSession(
                    table=f"projects/{self.project}/datasets/{self.dataset}/tables/{table}",
                    data_format=types.DataFormat.ARROW,
                    read_options=types.ReadSession.TableReadOptions(selected_fields=spec.columns, row_restriction=where),
                ),
                max_stream_count=SNAPSHOT_STREAMS,
                timeout=PROBE_TIMEOUT * 6,
            )
            files, rows = [], 0
            for i, stream in enumerate(session.streams):
                arrow = reader.read_rows(stream.name, timeout=JOB_TIMEOUT).to_arrow(session)
                path = FileSystems.join(folder, f"stream-{i:04d}.parquet")
                with FileSystems.create(path) as fh:
                    pq.write_table(arrow.select(spec.columns), fh)
                files.append(path)
                rows += arrow.num_rows
        except BigQueryError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise describe(exc, self.conn, f"snapshot table {self.project}.{self.dataset}.{table}") from None
        return files, rows

    def session(self) -> "BigQuerySession":
        """The SQL of a filtered state read (``state.read_state``), on scratch tables of this run."""
        self.init()
        return BigQuerySession(self)

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        """Run SQL with the dataset as default (``FROM touchpoints`` works); ``?`` parameters."""
        _, rows = self._run(sql, params)
        return [tuple(r.values()) for r in rows]


def _string_array(values: Iterable[str]) -> str:
    """A GoogleSQL ARRAY<STRING> literal of the distinct values, sorted (quotes and backslashes escaped)."""
    items = ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in sorted(set(values)))
    return f"ARRAY<STRING>[{items}]"


def _param(value: Any):
    from decimal import Decimal

    from google.cloud import bigquery

    if isinstance(value, (list, tuple)):  # ARRAY<T> of the first element's type (STRING when empty)
        kind = _param(value[0]).type_ if value else "STRING"
        return bigquery.ArrayQueryParameter(None, kind, list(value))
    if isinstance(value, bool):
        kind = "BOOL"
    elif isinstance(value, int):
        kind = "INT64"
    elif isinstance(value, float):
        kind = "FLOAT64"
    elif isinstance(value, Decimal):
        kind = "NUMERIC"
    elif isinstance(value, dt.datetime):
        kind = "TIMESTAMP"
    elif isinstance(value, dt.date):
        kind = "DATE"
    elif isinstance(value, bytes):
        kind = "BYTES"
    else:
        kind = "STRING"
    return bigquery.ScalarQueryParameter(None, kind, value)


class _Columns:
    """The part of a table spec ``_snapshot`` reads: the columns (for a scratch table of keys)."""

    def __init__(self, columns: tuple[str, ...]):
        self.columns = list(columns)


class BigQuerySession(Session):
    """:class:`touchline.transforms.warehouse.state.Session` on scratch tables ``_state_<token>_<name>``
    in the dataset: keys are loaded from their files (NDJSON load jobs), each step is one query
    (``CREATE OR REPLACE TABLE ... AS SELECT``), exports go through the Storage Read API; every
    scratch table is dropped on close. BigQuery scans only the columns a query names: the semi-joins
    read the key columns of the state tables, the exports their rows in the windows."""

    def __init__(self, warehouse: BigQueryWarehouse):
        self._wh = warehouse
        self._token = uuid.uuid4().hex[:10]
        self._tables: list[str] = []

    def _name(self, name: str) -> str:
        return f"_state_{self._token}_{name}"

    def t(self, name: str) -> str:
        return self._wh._fq(self._name(name))

    def create(self, name: str, sql: str) -> None:
        if self._name(name) not in self._tables:
            self._tables.append(self._name(name))
        self._wh._run(f"CREATE OR REPLACE TABLE {self.t(name)} AS {sql}")

    def insert(self, name: str, sql: str) -> None:
        self._wh._run(f"INSERT INTO {self.t(name)} {sql}")

    def count(self, name: str) -> int:
        _, rows = self._wh._run(f"SELECT COUNT(*) FROM {self.t(name)}")
        return int(rows[0][0])

    def load_keys(self, name: str, column: str, files: list[str]) -> None:
        import pyarrow.parquet as pq
        from google.cloud import bigquery

        values: set[str] = set()
        for path in files:
            with FileSystems.open(path) as fh:
                values.update(v for v in pq.read_table(fh).column(column).to_pylist() if v is not None)
        self.create(name, f"SELECT CAST(NULL AS STRING) AS {column} FROM UNNEST([1]) WHERE FALSE")
        if not values:
            return
        text = "".join(json.dumps({column: v}) + "\n" for v in sorted(values)).encode()
        config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
                                        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
                                        create_disposition=bigquery.CreateDisposition.CREATE_NEVER)
        self._wh._bq().load_table_from_file(io.BytesIO(text), self._wh._table_id(self._name(name)),
                                            job_config=config).result(timeout=JOB_TIMEOUT)

    def unnest_ids(self, source: str) -> str:
        return f"SELECT DISTINCT i.id_hash AS id_hash FROM {self.t(source)}, UNNEST(identifiers) AS i"

    def events_holding(self, where: str, ids: str) -> str:
        return (f"SELECT t.event_id FROM {self._wh._fq('touchpoints')} t, UNNEST(t.identifiers) AS i "
                f"WHERE {where} AND i.id_hash IN (SELECT id_hash FROM {self.t(ids)})")

    def keep(self, name: str, column: str, folder: str) -> tuple[list[str], int]:
        return self._wh._snapshot(self._name(name), _Columns((column,)), folder)

    def export(self, name: str, table: str, where: str, folder: str) -> tuple[list[str], int]:
        spec = schemas.table_schema(table)
        cols = ", ".join(_col(c) for c in spec.columns)
        self.create(f"x_{name}", f"SELECT {cols} FROM {self._wh._fq(spec.name)} WHERE {where}")
        return self._wh._snapshot(self._name(f"x_{name}"), spec, folder)

    def export_split(self, names: tuple[str, str], table: str, where: str, condition: str,
                     folders: tuple[str, str]) -> tuple[tuple[list[str], int], tuple[list[str], int]]:
        # one query (the table's partitions are billed once), its scratch table read twice
        spec = schemas.table_schema(table)
        cols = ", ".join(_col(c) for c in spec.columns)
        scratch = f"x_{names[0]}_{names[1]}"
        self.create(scratch, f"SELECT {cols}, {condition} AS _split FROM {self._wh._fq(spec.name)} WHERE {where}")
        return (self._wh._snapshot(self._name(scratch), spec, folders[0], "NOT _split"),
                self._wh._snapshot(self._name(scratch), spec, folders[1], "_split"))

    def close(self) -> None:
        client = self._wh._bq()
        for table in self._tables:
            try:
                client.delete_table(self._wh._table_id(table), not_found_ok=True, retry=probe_retry(), timeout=PROBE_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 -- a scratch table left behind is only clutter
                log.warning("could not drop scratch table %s: %s", table, exc)
