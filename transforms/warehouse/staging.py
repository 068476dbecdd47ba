"""Beam sinks that write a table's rows as staging files, typed by the table's generated schema."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from ... import schemas
from ...schemas.arrow import arrow_schema
from ...schemas.bigquery import load_avro_schema, load_datum
from ...schemas.rows import converter

PARQUET_SUFFIX = ".parquet"
AVRO_SUFFIX = ".avro"


def table_dir(staging_dir: str, table: str) -> str:
    return FileSystems.join(staging_dir, table)


#: rows per Arrow table handed to the Parquet writer (one row group each)
PARQUET_BATCH_ROWS = 10_000


class _ToArrow(beam.DoFn):
    """A batch of rows (dicts in the table schema) -> one ``pyarrow.Table``, converted by Arrow in C++
    (``Table.from_pylist``: missing nullable fields are null, extra keys ignored), instead of Beam's
    per-row, per-column Python loop of ``WriteToParquet``; the file contents are the same."""

    def __init__(self, schema):
        self._schema = schema

    def process(self, rows):
        import pyarrow as pa

        yield pa.Table.from_pylist(rows, schema=self._schema)


class StageParquet(beam.PTransform):
    """Rows (dicts in the table schema) -> Parquet files under ``staging_dir/table/``.

    Rows are batched (``BatchElements``, within a bundle: no shuffle) and each batch is converted
    to an Arrow table at once, then written by ``WriteToParquetBatched``."""

    def __init__(self, table: str, staging_dir: str):
        super().__init__()
        self._table = table
        self._dir = table_dir(staging_dir, table)

    def expand(self, rows):
        schema = arrow_schema(schemas.table_schema(self._table))
        return (
            rows
            | "Batch" >> beam.BatchElements(min_batch_size=PARQUET_BATCH_ROWS, max_batch_size=PARQUET_BATCH_ROWS)
            | "ToArrow" >> beam.ParDo(_ToArrow(schema))
            | "WriteParquet" >> beam.io.WriteToParquetBatched(
                FileSystems.join(self._dir, "part"),
                schema,
                file_name_suffix=PARQUET_SUFFIX,
                codec="snappy",
            )
        )


class _ToLoadForm(beam.DoFn):
    """Datum form -> BigQuery load form (maps spelled out as key/value records)."""

    def __init__(self, table: str):
        self._table = table

    def setup(self):
        self._convert = load_datum(schemas.table_schema(self._table))

    def process(self, row):
        yield self._convert(row)


class StageAvro(beam.PTransform):
    """Rows -> Avro files (fastavro) under ``staging_dir/table/``, in the shape BigQuery loads:
    the table's schema with maps as arrays of key/value records (see
    :func:`touchline.schemas.bigquery.load_avro_schema`)."""

    def __init__(self, table: str, staging_dir: str):
        super().__init__()
        self._table = table
        self._dir = table_dir(staging_dir, table)

    def expand(self, rows):
        return (
            rows
            | "ToLoadForm" >> beam.ParDo(_ToLoadForm(self._table))
            | "WriteAvro" >> beam.io.WriteToAvro(
                FileSystems.join(self._dir, "part"),
                load_avro_schema(schemas.table_schema(self._table)),
                file_name_suffix=AVRO_SUFFIX,
                codec="deflate",
            )
        )


def list_staged(staging_dir: str, table: str, suffix: str) -> list[str]:
    pattern = FileSystems.join(table_dir(staging_dir, table), "*" + suffix)
    try:
        matched = FileSystems.match([pattern])[0].metadata_list
    except Exception:  # noqa: BLE001 -- nothing staged
        return []
    return sorted(m.path for m in matched)


class _ToDatum(beam.DoFn):
    def __init__(self, table: str):
        self._table = table

    def setup(self):
        self._convert = converter(schemas.table_schema(self._table))

    def process(self, row):
        yield self._convert(row)


class ReadSnapshot(beam.PTransform):
    """Rows of a table snapshot written as Parquet files, in datum form."""

    def __init__(self, table: str, files: list[str]):
        super().__init__()
        self._table = table
        self._files = list(files)

    def expand(self, pbegin):
        return (
            pbegin
            | "Files" >> beam.Create(self._files)
            | "ReadParquet" >> beam.io.ReadAllFromParquet()
            | "ToDatum" >> beam.ParDo(_ToDatum(self._table))
        )
