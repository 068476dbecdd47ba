"""Rows into and out of the batch data plane in tests.

The batch transforms take and give batches (:mod:`touchline.transforms.batches`): touchpoints as
``(bucket, packed Arrow table)``, stored tables as Arrow tables, outputs for staging as ``(file key,
batch)``. Tests state their cases as rows; these helpers convert at the edges only, so what runs in
between is the pipeline's own code.
"""

from __future__ import annotations

import apache_beam as beam

from touchline import schemas
from touchline.transforms import batches
from touchline.transforms.packing import pack, restore

TOUCHPOINT = schemas.table_schema("touchpoints")


def full_touchpoint(row: dict) -> dict:
    """A touchpoint dict with every field of the schema, in schema order (missing ones: defaults)."""
    defaults = {"identifiers": [], "attributes": {}, "person_id": None}
    return {name: row.get(name, defaults.get(name)) for name in TOUCHPOINT.columns}


def touchpoint_batches(rows: list[dict], buckets: int, key: str = "event_id") -> list[tuple[int, bytes]]:
    """Touchpoint rows -> ``(bucket of key, packed table)`` elements, as parsing makes them."""
    rows = [full_touchpoint(r) for r in rows]
    if not rows:
        return []
    table = batches.from_rows(rows, TOUCHPOINT)
    keys = batches.buckets_of((r[key] for r in rows), buckets)
    return [(k, pack(piece)) for k, piece in batches.split(table, keys)]


def table_of(table: str, rows: list[dict]):
    """Stored rows of a table -> an Arrow table of its schema (what ``Warehouse.read`` sources give)."""
    spec = schemas.table_schema(table)
    return batches.from_rows([{name: r.get(name) for name in spec.columns} for r in rows], spec)


def create_touchpoints(p, label: str, rows: list[dict], buckets: int):
    return p | label >> beam.Create(touchpoint_batches(rows, buckets), reshuffle=False)


def create_table(p, label: str, table: str, rows: list[dict]):
    return p | label >> beam.Create([table_of(table, rows)] if rows else [], reshuffle=False)


def rows_of_batch(batch, table: str) -> list[dict]:
    """A batch in any of the pipeline's shapes -> datum rows of ``table``."""
    batch = restore(batch)
    if isinstance(batch, list):
        return batch
    return batches.datum_rows(batches.conform(batch, schemas.table_schema(table)), schemas.table_schema(table))


class ToRows(beam.PTransform):
    """``(key, batch)`` elements (or bare batches) -> one row per element."""

    def __init__(self, table: str):
        super().__init__()
        self._table = table

    def expand(self, pcoll):
        table = self._table
        return pcoll | beam.FlatMap(lambda element: rows_of_batch(element[1] if isinstance(element, tuple) else element, table))
