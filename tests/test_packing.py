"""Packed batches: what crosses the batch pipeline's shuffles as bytes comes back equal."""

from decimal import Decimal

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.testing.util import assert_that, equal_to

from touchline.transforms import batches
from touchline.transforms.packing import CoGroupByBucket, pack, unpack

from .batch_io import TOUCHPOINT, full_touchpoint
from .conftest import beam_pipeline


def touchpoint(**over):
    row = full_touchpoint(dict(event_id="e1", channel="transactions", event_type="payment_succeeded",
                               event_time=1_790_836_068_000_000, event_date=20727, role="customer",
                               identifiers=[{"kind": "customer_id", "id_hash": "ab" * 16}], amount=Decimal("13.66"),
                               currency="GBP", attributes={"method": "card"}, source="f.avro@4#1", origin="transactions"))
    row.update(over)
    return row


@pytest.mark.parametrize("value", [[(1, "a"), (2, "b")], {"k": [1, 2]}, None, b"\x01raw", "text", [],
                                   [("h", {"previous": {"first_seen": 1}, "kind": "email"})]])
def test_values_come_back_equal(value):
    assert unpack(pack(value)) == value


def test_tables_come_back_equal_with_their_schema_and_rows_in_datum_form():
    rows = [touchpoint(), touchpoint(event_id="e2", attributes={}, identifiers=[], amount=None, person_id="p_1")]
    table = batches.from_rows(rows, TOUCHPOINT)
    back = unpack(pack(table))
    assert back.equals(table) and back.schema.equals(table.schema)
    assert batches.datum_rows(back, TOUCHPOINT) == rows
    assert [list(r) for r in batches.datum_rows(back, TOUCHPOINT)] == [list(r) for r in rows]  # field order too
    assert unpack(pack(table.slice(1, 1))).num_rows == 1  # a slice packs only its rows
    assert len(pack(batches.concat([table] * 200))) < 200 * 2 * 200  # compressed: well under 200 bytes a row


def test_split_puts_every_row_in_the_bucket_of_its_key():
    table = pa.table({"k": [f"key-{i}" for i in range(100)], "v": list(range(100))})
    keys = batches.buckets_of(table.column("k").to_pylist(), 7)
    pieces = dict(batches.split(table, keys))
    assert sum(t.num_rows for t in pieces.values()) == 100
    for bucket, piece in pieces.items():
        assert all(batches.bucket(k, 7) == bucket for k in piece.column("k").to_pylist())
    assert batches.bucket("key-1", 7) == batches.bucket("key-1", 7)  # stable: CRC-32, not the salted hash()


def test_cogroup_by_bucket_restores_every_input_by_name():
    with beam_pipeline() as p:
        inputs = {"a": p | "A" >> beam.Create([(1, pack([1, 2])), (2, pack([3]))]),
                  "b": p | "B" >> beam.Create([(1, pack(["x"]))])}
        grouped = inputs | CoGroupByBucket() | beam.MapTuple(lambda k, g: (k, sorted(x for v in g["a"] for x in v),
                                                                           [x for v in g["b"] for x in v]))
        assert_that(grouped, equal_to([(1, [1, 2], ["x"]), (2, [3], [])]))


def test_large_batches_spill_to_files_and_small_ones_stay_inline(tmp_path):
    """With a spill folder, a table or a pickled list of records above the spill size travels as a
    path (the local runner's driver then holds references, not data); small ones stay inline."""
    from touchline.transforms.packing import SPILL_BYTES

    records = [(f"id-{i:06d}", "email", i, i + 1) for i in range(SPILL_BYTES // 8)]
    table = batches.from_rows([touchpoint(event_id=f"e{i}") for i in range(2000)], TOUCHPOINT)
    for value in (records, table):
        blob = pack(value, str(tmp_path))
        assert len(blob) < 200 and str(tmp_path).encode() in blob, "a large batch is a path"
        back = unpack(blob)
        assert back.equals(value) if isinstance(value, pa.Table) else back == value
    assert len(list(tmp_path.iterdir())) == 2
    small = [("id", "email", 1, 2)]
    assert unpack(pack(small, str(tmp_path))) == small and len(list(tmp_path.iterdir())) == 2
