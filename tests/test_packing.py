"""Packed values: what crosses Touchline's large joins as bytes comes back equal, field order included."""

from decimal import Decimal

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from touchline.transforms.packing import FIELDS, PackedCoGroupByKey, pack, unpack


def touchpoint(**over):
    row = dict.fromkeys(FIELDS)
    row.update(event_id="e1", channel="transactions", event_type="payment_succeeded", event_time=1_790_836_068_000_000,
               event_date=20727, role="customer", identifiers=[{"kind": "customer_id", "id_hash": "ab" * 16}],
               amount=Decimal("13.66"), currency="GBP", attributes={"method": "card"}, source="f.avro@4#1",
               origin="transactions")
    row.update(over)
    return row


@pytest.mark.parametrize("value", [
    touchpoint(),
    (1, touchpoint(person_id="p_1")),
    ("current", touchpoint()),
    {"event_id": "e1", "extra": 1},  # not a touchpoint: pickled as it is
    {k: touchpoint()[k] for k in reversed(FIELDS)},  # the same fields in another order
    (1, 2), (1, {"a": 1}), None, b"\x01raw", "text", [1, 2],
])
def test_unpack_gives_back_an_equal_value_with_the_same_field_order(value):
    back = unpack(pack(value))
    assert back == value
    if isinstance(value, dict):
        assert list(back) == list(value)
    if isinstance(value, tuple) and isinstance(value[1], dict):
        assert list(back[1]) == list(value[1])


def test_a_touchpoint_is_packed_without_its_field_names():
    tp = touchpoint()
    assert b"event_type" not in pack(tp) and b"event_type" in pack({**tp, "extra": 1})
    assert len(pack(tp)) < len(pack({**tp, "extra": 1})) * 0.8


def test_packed_cogroupbykey_equals_cogroupbykey():
    people = [("h1", "p_1"), ("h2", "p_2")]
    touches = [("h1", ("current", touchpoint(event_id="a"))), ("h1", ("current", touchpoint(event_id="b"))),
               ("h3", ("current", touchpoint(event_id="c")))]

    def canonical(element):
        key, groups = element
        return key, {name: sorted(map(repr, values)) for name, values in groups.items()}

    with TestPipeline(runner="DirectRunner") as p:
        inputs = {"person": p | "People" >> beam.Create(people), "touchpoints": p | "Touches" >> beam.Create(touches)}
        packed = inputs | "Packed" >> PackedCoGroupByKey(packed=("touchpoints",)) | "CanonPacked" >> beam.Map(canonical)
        plain = inputs | "Plain" >> beam.CoGroupByKey() | "CanonPlain" >> beam.Map(canonical)
        expected = [canonical((k, {"person": [v for kk, v in people if kk == k], "touchpoints": [v for kk, v in touches if kk == k]}))
                    for k in ("h1", "h2", "h3")]
        assert_that(packed, equal_to(expected), label="PackedAsExpected")
        assert_that(plain, equal_to(expected), label="PlainAsExpected")


def test_packed_names_must_be_inputs():
    with pytest.raises(ValueError, match="not among the join's inputs"):
        with TestPipeline(runner="DirectRunner") as p:
            _ = {"a": p | beam.Create([("k", 1)])} | PackedCoGroupByKey(packed=("b",))
