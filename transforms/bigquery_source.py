"""Reading a channel's raw events from a BigQuery table (a date range), spread over workers.

``--app_table PROJECT.DATASET.TABLE --from_date 2026-10-01 --to_date 2026-10-31`` reads the app
channel from a table whose columns are the channel's raw Avro schema (``schemas/raw_*.avsc``; extra
columns are ignored, the channel's timestamp field may be a TIMESTAMP). :func:`inspect_table` checks
the table at launch (exists, columns match, a date column to filter on); :class:`ReadBigQueryTable`
creates one Storage Read session at launch (a consistent snapshot, filtered server-side by the date
range and projected to the raw columns) with up to N streams, and each stream is read by a worker
(``ReadStreamFn``: client in ``setup()``, endpoint injectable for an emulator).

Records come out exactly like :mod:`touchline.transforms.sources`: ``(source, payload, error)`` with
the payload a dict in the raw schema's shape (maps as dicts, timestamps as ISO-8601 text), so
``ParseTouchpoints`` and dead-letter accounting work unchanged.

Positions. A table row has no stable address (stream boundaries differ between read sessions), yet
dead-letter ids must not change when a run is repeated. A record's position is therefore its
content: ``bq:PROJECT.DATASET.TABLE@<sha256 of the canonical JSON, 16 hex>#<k>``, where ``k``
numbers identical rows (counted with a lifted ``Count.PerElement``). Re-reading the same rows
yields the same positions however the streams fall.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterator

import apache_beam as beam

from .. import schemas
from ..schemas.bigquery import field as bq_field
from ..schemas.model import Column, columns
from . import channels
from .bigquery_connect import PROBE_TIMEOUT, BigQueryConnection, BigQueryError, describe, parse_table, probe_retry

DEFAULT_STREAMS = 16
_DATE_TYPES = ("DATE", "TIMESTAMP", "DATETIME")
_ALIASES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "STRUCT": "RECORD"}


@dataclass(frozen=True)
class TableInput:
    """A validated BigQuery input of one channel (built at launch by :func:`inspect_table`)."""

    channel: str
    table: str  # PROJECT.DATASET.TABLE
    fields: tuple[str, ...]  # raw-schema columns present in the table, read in this order
    timestamp_fields: tuple[str, ...] = ()  # raw text fields stored as TIMESTAMP/DATETIME
    date_column: str | None = None
    date_type: str | None = None
    from_date: dt.date | None = None
    to_date: dt.date | None = None
    #: table state at launch (last modified, rows): part of the run fingerprint
    version: tuple = field(default=())

    @property
    def row_restriction(self) -> str:
        """Server-side filter of the date range (inclusive days, UTC)."""
        if not self.date_column or (self.from_date is None and self.to_date is None):
            return ""
        col = f"`{self.date_column}`" if not self.date_column.startswith("_PARTITION") else self.date_column
        terms = []
        if self.date_type == "DATE":
            if self.from_date:
                terms.append(f"{col} >= DATE '{self.from_date}'")
            if self.to_date:
                terms.append(f"{col} <= DATE '{self.to_date}'")
        else:
            kind = "DATETIME" if self.date_type == "DATETIME" else "TIMESTAMP"
            if self.from_date:
                terms.append(f"{col} >= {kind} '{self.from_date} 00:00:00'")
            if self.to_date:
                terms.append(f"{col} < {kind} '{self.to_date + dt.timedelta(days=1)} 00:00:00'")
        return " AND ".join(terms)

    def describe(self) -> str:
        days = f"[{self.from_date or ''}..{self.to_date or ''}]" if (self.from_date or self.to_date) else ""
        return f"bq:{self.table}{days}"


def _type(f) -> str:
    return _ALIASES.get(f.field_type, f.field_type)


def inspect_table(conn: BigQueryConnection, channel: str, table: str, date_column: str | None = None,
                  from_date: dt.date | None = None, to_date: dt.date | None = None) -> TableInput:
    """Check a raw-events table at launch; raise BigQueryError naming the problem and the fix."""
    from google.api_core.exceptions import NotFound

    spec = channels.get(channel)
    project, dataset, name = parse_table(table)
    flag = f"--{channel}_table"
    try:
        meta = conn.client().get_table(f"{project}.{dataset}.{name}", retry=probe_retry(), timeout=PROBE_TIMEOUT)
    except NotFound:
        raise BigQueryError(f"BigQuery table {project}.{dataset}.{name} ({flag}) does not exist\n"
                            f"  fix: check {flag} (PROJECT.DATASET.TABLE) and that the account can see it") from None
    except BigQueryError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise describe(exc, conn, f"read table {project}.{dataset}.{name} ({flag})") from None
    have = {f.name: f for f in meta.schema}
    raw = columns(schemas.load(spec.schema_name))
    present, stamps, problems = [], [], []
    for col in raw:
        want = bq_field(col)
        got = have.get(col.name)
        if got is None:
            if not col.nullable and col.kind != "map":
                problems.append(f"column {col.name} ({want['type']}) is missing")
            continue
        repeated = got.mode == "REPEATED"
        if col.name == spec.timestamp_field and _type(got) in ("TIMESTAMP", "DATETIME") and not repeated:
            stamps.append(col.name)
        elif _type(got) != want["type"] or repeated != (want["mode"] == "REPEATED"):
            problems.append(f"column {col.name} is {got.mode} {_type(got)}, the {channel} raw schema says {want['mode']} {want['type']}")
        present.append(col.name)
    if problems:
        raise BigQueryError(
            f"table {table} ({flag}) does not match the {channel} raw schema ({spec.schema_name}.avsc): "
            + "; ".join(problems) + f"\n  fix: point {flag} at a table with those columns, or expose one through a view"
        )
    date_type = None
    if date_column is None and (from_date or to_date):
        partitioning = meta.time_partitioning
        if partitioning is not None:
            date_column = partitioning.field or "_PARTITIONDATE"
        else:
            raise BigQueryError(f"table {table} ({flag}) is not partitioned, so the date range has no column to filter on\n"
                                f"  fix: pass --table_date_column COLUMN (a DATE, TIMESTAMP or DATETIME column)")
    if date_column:
        if date_column.startswith("_PARTITION"):
            date_type = "DATE" if date_column == "_PARTITIONDATE" else "TIMESTAMP"
        elif date_column not in have or _type(have[date_column]) not in _DATE_TYPES:
            found = f"is {_type(have[date_column])}" if date_column in have else "does not exist"
            raise BigQueryError(f"date column {date_column} of {table} ({flag}) {found}\n"
                                f"  fix: pass --table_date_column naming a DATE, TIMESTAMP or DATETIME column")
        else:
            date_type = _type(have[date_column])
    modified = meta.modified.isoformat() if meta.modified else ""
    return TableInput(channel, f"{project}.{dataset}.{name}", tuple(present), tuple(stamps), date_column, date_type,
                      from_date, to_date, (modified, meta.num_rows))


# -- worker side ------------------------------------------------------------------------------

def _payload_converter(col: Column, as_text: bool = False):
    """Storage Read value -> raw-schema datum (maps from key/value records, timestamps as text)."""
    if as_text:
        def text(v):
            if isinstance(v, dt.datetime):
                if v.tzinfo is None:
                    v = v.replace(tzinfo=dt.timezone.utc)
                return v.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
            return v
        return text
    if col.kind == "map":
        value = _payload_converter(col.item)
        return lambda v: None if v is None else {p["key"]: value(p["value"]) for p in v}
    if col.kind == "record":
        plan = [(f.name, _payload_converter(f)) for f in col.fields]
        return lambda v: None if v is None else {n: conv(v.get(n)) for n, conv in plan}
    if col.kind == "array":
        item = _payload_converter(col.item)
        return lambda v: None if v is None else [item(x) for x in v]
    if col.kind in ("timestamp", "date", "decimal", "bytes"):
        return lambda v: v if v is None or isinstance(v, (str, int, float)) else str(v)
    return lambda v: v


def canonical(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class ReadStreamFn(beam.DoFn):
    """One Storage Read stream -> ``("ok", canonical JSON payload)`` or ``("error", message)``."""

    def __init__(self, source: TableInput, conn: BigQueryConnection):
        self._source = source
        self._conn = conn

    def setup(self):
        self._client = self._conn.read_client()
        spec = channels.get(self._source.channel)
        raw = {c.name: c for c in columns(schemas.load(spec.schema_name))}
        self._plan = [(name, _payload_converter(raw[name], name in self._source.timestamp_fields)) for name in self._source.fields]

    def process(self, stream: str) -> Iterator[tuple[str, str]]:
        for page in self._client.read_rows(stream).rows().pages:
            for row in page.to_arrow().to_pylist():
                try:
                    yield ("ok", canonical({name: conv(row.get(name)) for name, conv in self._plan}))
                except Exception as exc:  # noqa: BLE001 -- one odd row is a dead letter, not a crash
                    yield ("error", json.dumps({"error_class": type(exc).__name__, "message": str(exc),
                                                "row": repr(row)[:4000]}, sort_keys=True))

    def teardown(self):
        client = getattr(self, "_client", None)
        transport = getattr(client, "transport", None) if client is not None else None
        if transport is not None:
            transport.close()


def _positions(element: tuple[tuple[str, str], int], table: str) -> Iterator[tuple]:
    (kind, text), count = element
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    for k in range(count):
        source = f"bq:{table}@{digest}#{k}"
        if kind == "ok":
            yield (source, json.loads(text), None)
        else:
            info = json.loads(text)
            yield (source, info["row"].encode("utf-8"), ("unreadable_row", info["error_class"], info["message"]))


class ReadBigQueryTable(beam.PTransform):
    """A BigQuery table's rows in a date range -> ``(source, payload, error)`` raw records.

    The read session (the snapshot) is created when the graph is built, at the driver."""

    def __init__(self, source: TableInput, conn: BigQueryConnection, streams: int = DEFAULT_STREAMS,
                 billing_project: str | None = None):
        super().__init__()
        self._source = source
        self._conn = conn
        self._streams = streams
        self._billing = billing_project or parse_table(source.table)[0]

    def create_session(self) -> list[str]:
        from google.cloud.bigquery_storage_v1 import types

        project, dataset, table = parse_table(self._source.table)
        try:
            session = self._conn.read_client().create_read_session(
                parent=f"projects/{self._billing}",
                read_session=types.ReadSession(
                    table=f"projects/{project}/datasets/{dataset}/tables/{table}",
                    data_format=types.DataFormat.ARROW,
                    read_options=types.ReadSession.TableReadOptions(
                        selected_fields=list(self._source.fields), row_restriction=self._source.row_restriction),
                ),
                max_stream_count=self._streams,
                timeout=PROBE_TIMEOUT * 6,
            )
        except BigQueryError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise describe(exc, self._conn, f"start reading {self._source.table}") from None
        return [s.name for s in session.streams]

    def expand(self, pbegin):
        streams = self.create_session()
        return (
            pbegin
            | "Streams" >> beam.Create(streams)
            | "Distribute" >> beam.Reshuffle()
            | "ReadStreams" >> beam.ParDo(ReadStreamFn(self._source, self._conn))
            | "CountIdentical" >> beam.combiners.Count.PerElement()
            | "Positions" >> beam.FlatMap(_positions, self._source.table)
        )
