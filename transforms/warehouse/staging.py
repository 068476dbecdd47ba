"""Beam sinks that write a table's batches as staging files, typed by the table's generated schema,
and the source that reads snapshots back as Arrow tables."""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from ... import schemas
from ...schemas.bigquery import load_avro_schema, load_datum
from .. import batches
from ..packing import restore

PARQUET_SUFFIX = ".parquet"
AVRO_SUFFIX = ".avro"


def table_dir(staging_dir: str, table: str) -> str:
    return FileSystems.join(staging_dir, table)


def _table_of(batch, spec) -> pa.Table:
    """A batch -- an Arrow table (types conformed, extra columns dropped), packed bytes of one, or a
    list of datum rows -- as a table of the table's schema."""
    batch = restore(batch)
    if isinstance(batch, list):
        return batches.from_rows(batch, spec)
    return batches.conform(batch, spec)


class _WriteStaged(batches.BatchDoFn):
    """(file key, batch) -> one staging file ``staging_dir/table/<file key><suffix>``, written under a
    temporary name and renamed when complete; yields its path. Keys are deterministic (a bucket, a
    split), so a retried bundle rewrites the same file instead of adding a second copy of its rows."""

    def __init__(self, table: str, staging_dir: str, suffix: str):
        self._table = table
        self._dir = table_dir(staging_dir, table)
        self._suffix = suffix

    def setup(self):
        self._spec = schemas.table_schema(self._table)
        self._setup_format()

    def _setup_format(self):
        pass

    def _work(self, element):
        key, batch = element
        table = _table_of(batch, self._spec)
        if table.num_rows == 0:
            return
        path = FileSystems.join(self._dir, f"{key}{self._suffix}")
        temporary = f"{path}.incomplete"
        with FileSystems.create(temporary) as fh:
            self._write(table, fh)
        if FileSystems.exists(path):
            FileSystems.delete([path])
        FileSystems.rename([temporary], [path])
        yield path

    def _write(self, table, fh) -> None:
        raise NotImplementedError


class _WriteParquet(_WriteStaged):
    def _write(self, table, fh) -> None:
        import pyarrow.parquet as pq

        pq.write_table(table, fh, compression="snappy")


class StageParquet(beam.PTransform):
    """(file key, batch) -> Parquet files under ``staging_dir/table/`` (DuckDB's staging); yields paths.

    A batch is an Arrow table, packed bytes of one or a list of rows (dicts in the table schema);
    Arrow converts and writes it in C++, one file per batch."""

    def __init__(self, table: str, staging_dir: str):
        super().__init__()
        self._table = table
        self._staging_dir = staging_dir

    def expand(self, batches):
        return batches | "WriteParquet" >> beam.ParDo(_WriteParquet(self._table, self._staging_dir, PARQUET_SUFFIX))


class _WriteAvro(_WriteStaged):
    """Avro files (fastavro, deflate) in the shape BigQuery loads: the table's schema with maps as
    arrays of key/value records (see :func:`touchline.schemas.bigquery.load_avro_schema`)."""

    def _setup_format(self):
        import fastavro

        self._convert = load_datum(self._spec)
        self._schema = fastavro.parse_schema(load_avro_schema(self._spec))

    def _write(self, table, fh) -> None:
        import fastavro

        fastavro.writer(fh, self._schema, (self._convert(row) for row in batches.datum_rows(table, self._spec)), codec="deflate")


class StageAvro(beam.PTransform):
    """(file key, batch) -> Avro files in BigQuery's load form under ``staging_dir/table/``; yields paths."""

    def __init__(self, table: str, staging_dir: str):
        super().__init__()
        self._table = table
        self._staging_dir = staging_dir

    def expand(self, batches):
        return batches | "WriteAvro" >> beam.ParDo(_WriteAvro(self._table, self._staging_dir, AVRO_SUFFIX))


def list_staged(staging_dir: str, table: str, suffix: str) -> list[str]:
    pattern = FileSystems.join(table_dir(staging_dir, table), "*" + suffix)
    try:
        matched = FileSystems.match([pattern])[0].metadata_list
    except Exception:  # noqa: BLE001 -- nothing staged
        return []
    return sorted(m.path for m in matched)


class _ReadTables(beam.DoFn):
    """A Parquet snapshot file -> Arrow tables of at most ``CHUNK_ROWS`` rows in the table's schema."""

    def __init__(self, table: str):
        self._table = table

    def setup(self):
        self._spec = schemas.table_schema(self._table)

    def process(self, path):
        import pyarrow.parquet as pq

        with FileSystems.open(path) as fh:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=batches.CHUNK_ROWS):
                yield batches.conform(pa.Table.from_batches([batch]), self._spec)


class ReadSnapshot(beam.PTransform):
    """Rows of a table snapshot written as Parquet files, as Arrow tables of the table's schema
    (a batch of rows per element; ``touchline.transforms.batches.datum_rows`` gives dicts)."""

    def __init__(self, table: str, files: list[str]):
        super().__init__()
        self._table = table
        self._files = list(files)

    def expand(self, pbegin):
        return (
            pbegin
            | "Files" >> beam.Create(self._files)
            | "ReadParquet" >> beam.ParDo(_ReadTables(self._table))
        )


class SnapshotRows(beam.PTransform):
    """Tables of a snapshot (:class:`ReadSnapshot`) -> one datum row per element, for the steps
    that work a row at a time (calibration)."""

    def __init__(self, table: str):
        super().__init__()
        self._table = table

    def expand(self, tables):
        spec = schemas.table_schema(self._table)
        return tables | "Rows" >> beam.FlatMap(lambda table: batches.datum_rows(table, spec))
