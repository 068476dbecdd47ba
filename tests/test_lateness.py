"""LatenessGate under TestStream (streaming mode, BundleBasedDirectRunner): explicit too_late dead letters."""

import json
import random

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream as EventStream  # (not collected by pytest)
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from touchline.transforms.lateness import RECORDS, LatenessGate
from touchline.transforms.parse import DEAD_LETTERS

from .conftest import stream_pipeline

LATENESS = 100  # seconds


def rec(name, t, channel="web"):
    """A raw record stamped with event time t (seconds)."""
    payload = json.dumps({"event_id": name, "occurred_at": t, "email": f"{name}@example.com"}).encode()
    return TimestampedValue((channel, (f"pubsub:sub/{name}", payload, None)), t)


def outcomes(out):
    """One PCollection of (outcome, event name) -- a single assert_that per pipeline (each costs ~1.5 s)."""
    ok = out[RECORDS] | "Ok" >> beam.Map(lambda cr: ("ok", cr[1][0].split("/")[-1]))
    late = out[DEAD_LETTERS] | "Late" >> beam.Map(lambda d: ("too_late", d["source"].split("/")[-1]))
    return (ok, late) | "Outcomes" >> beam.Flatten()


def test_beyond_allowed_lateness_is_a_dead_letter_within_it_is_accepted(ctx):
    stream = (EventStream()
              .advance_watermark_to(0)
              .add_elements([rec("on_time", 10)])
              .advance_watermark_to(1000)
              .add_elements([rec("late_but_allowed", 950),   # 50 s behind the watermark: within 100 s
                             rec("too_late", 850),           # 150 s behind
                             rec("way_too_late", 5, "app")])
              .advance_watermark_to(5000)
              .add_elements([rec("edge_allowed", 4901)])     # 99 s behind
              .advance_watermark_to_infinity())
    with stream_pipeline() as p:
        out = p | stream | LatenessGate(LATENESS, ctx, shards=1)
        dead = out[DEAD_LETTERS] | "Dead" >> beam.Map(lambda d: (d["event_id"], d["reason"], d["failed_step"], d["channel"]))
        ok = out[RECORDS] | "Ids" >> beam.Map(lambda cr: json.loads(cr[1][1])["event_id"])
        assert_that((ok, dead) | beam.Flatten(), equal_to([
            "on_time", "late_but_allowed", "edge_allowed",
            ("too_late", "too_late", "Lateness", "web"), ("way_too_late", "too_late", "Lateness", "app")]))


def test_too_late_dead_letter_keeps_the_raw_payload_without_clear_text_pii(ctx):
    stream = (EventStream().advance_watermark_to(0).add_elements([rec("first", 1)])
              .advance_watermark_to(10_000).add_elements([rec("old", 2)]).advance_watermark_to_infinity())
    with stream_pipeline() as p:
        out = p | stream | LatenessGate(LATENESS, ctx, shards=1)

        def check(dead):
            assert len(dead) == 1
            d = dead[0]
            assert d["source"] == "pubsub:sub/old" and d["payload_encoding"] == "text"
            assert '"event_id": "old"' in d["raw_payload"] and "<email:" in d["raw_payload"]
            assert "old@example.com" not in d["raw_payload"]
            assert "behind the watermark" in d["error_message"] and "0:01:40" in d["error_message"]

        assert_that(out[DEAD_LETTERS], check)


def test_out_of_order_arrival_within_lateness_is_all_accepted(ctx):
    """Any arrival order is fine as long as each record is within the allowed lateness when it arrives."""
    rng = random.Random(4)
    names, stream = [], EventStream().advance_watermark_to(0)
    for step in range(1, 6):
        wm = step * 200
        batch = [rec(f"e{step}-{i}", wm - rng.randrange(0, LATENESS)) for i in range(8)]
        rng.shuffle(batch)
        names += [b.value[1][0].split("/")[-1] for b in batch]
        stream = stream.advance_watermark_to(wm).add_elements(batch)
    stream = stream.advance_watermark_to_infinity()
    with stream_pipeline() as p:
        out = p | stream | LatenessGate(LATENESS, ctx, shards=4)
        assert_that(outcomes(out), equal_to([("ok", n) for n in names]))


def test_clock_catches_up_with_a_large_watermark_jump_to_within_its_precision(ctx):
    """After a jump of months the clock closes in on the watermark: a record just beyond the
    lateness (plus precision) is rejected, one just within it is accepted."""
    jump = 90 * 86400
    stream = (EventStream().advance_watermark_to(0).add_elements([rec("first", 0)])
              .advance_watermark_to(jump)
              .add_elements([rec("within", jump - LATENESS + 1), rec("beyond", jump - LATENESS - 2)])
              .advance_watermark_to_infinity())
    with stream_pipeline() as p:
        out = p | stream | LatenessGate(LATENESS, ctx, shards=1, precision=1)
        assert_that(outcomes(out), equal_to([("ok", "first"), ("ok", "within"), ("too_late", "beyond")]))


def test_a_shards_first_record_is_accepted_and_a_future_stamp_does_not_blind_the_clock(ctx):
    stream = (EventStream().advance_watermark_to(1000)
              .add_elements([rec("future", 10**9), rec("old_first", 1)])   # nothing known yet: both accepted
              .advance_watermark_to(2000)
              .add_elements([rec("old_again", 2)])                          # now the clock knows: too late
              .advance_watermark_to_infinity())
    with stream_pipeline() as p:
        out = p | stream | LatenessGate(LATENESS, ctx, shards=1)
        assert_that(outcomes(out), equal_to([("ok", "future"), ("ok", "old_first"), ("too_late", "old_again")]))


def test_bad_parameters_fail_at_construction(ctx):
    with pytest.raises(ValueError, match="negative"):
        LatenessGate(-1, ctx)
    with pytest.raises(ValueError, match="shards"):
        LatenessGate(10, ctx, shards=0)
