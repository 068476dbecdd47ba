"""DeduplicateTouchpointsStreaming under TestStream (streaming mode, BundleBasedDirectRunner)."""

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_stream import TestStream as EventStream  # (not collected by pytest)
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from touchline.transforms.dedup_streaming import DeduplicateTouchpointsStreaming
from touchline.transforms.parse import DEAD_LETTERS, NAMESPACE, TOUCHPOINTS

from .conftest import stream_pipeline
from .test_dedup import tp

HORIZON = 3600  # seconds


def at(t, event_id, source, **over):
    return TimestampedValue(tp(event_id, source, event_time=t * 1_000_000, **over), t)


def outcomes(out):
    kept = out[TOUCHPOINTS] | "Kept" >> beam.Map(lambda t: ("kept", t["event_id"], t["source"]))
    dead = out[DEAD_LETTERS] | "Dead" >> beam.Map(lambda d: (d["reason"], d["event_id"], d["source"]))
    return (kept, dead) | "Outcomes" >> beam.Flatten()


def counters(result):
    return {c.key.metric.name: c.committed for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]}


def test_first_version_wins_copies_are_dropped_conflicts_are_dead_letters(ctx):
    stream = (EventStream().advance_watermark_to(0)
              .add_elements([at(100, "a", "m1"), at(100, "b", "m2")])
              .add_elements([at(100, "a", "m3"),                       # exact copy, redelivered
                             at(100, "b", "m4", event_type="click")])  # same id, other content
              .advance_watermark_to(200)
              .add_elements([at(100, "a", "m5")])                      # late copy, still within the horizon
              .advance_watermark_to_infinity())
    with stream_pipeline() as p:
        out = p | stream | DeduplicateTouchpointsStreaming(ctx, HORIZON)
        assert_that(outcomes(out), equal_to([("kept", "a", "m1"), ("kept", "b", "m2"),
                                             ("conflicting_duplicate", "b", "m4")]))


def test_copies_and_conflicts_are_counted_per_channel(ctx):
    # One bundle: the BundleBasedDirectRunner keeps only the first bundle's user counters per step
    # (its state sampler caches the scoped state with that bundle's metrics container; see docs/streaming.md).
    stream = (EventStream().add_elements([at(1, "a", "m1"), at(1, "a", "m2"), at(1, "a", "m3", channel="app"),
                                          at(1, "b", "m4"), at(1, "b", "m5", event_type="click")])
              .advance_watermark_to_infinity())
    p = stream_pipeline()
    _ = p | stream | DeduplicateTouchpointsStreaming(ctx, HORIZON)
    got = counters(p.run())
    # m3 differs from m1 in its channel: a conflict, counted on the channel it came from
    assert got == {"web.duplicates": 1, "app.dead_letter.conflicting_duplicate": 1, "web.dead_letter.conflicting_duplicate": 1}


def test_conflict_message_names_the_kept_version(ctx):
    stream = (EventStream().add_elements([at(5, "c", "first")]).add_elements([at(6, "c", "second")])
              .advance_watermark_to_infinity())
    with stream_pipeline() as p:
        out = p | stream | DeduplicateTouchpointsStreaming(ctx, HORIZON)
        assert_that(out[DEAD_LETTERS] | beam.Map(lambda d: (d["source"], d["failed_step"], "delivered first (first)" in d["error_message"])),
                    equal_to([("second", "Dedup", True)]))


def test_state_is_forgotten_once_the_watermark_passes_the_horizon(ctx):
    """Copies within the horizon are dropped; after it the event_id is new again (the lateness gate
    or the warehouse key handle it -- see the module doc)."""
    stream = (EventStream().advance_watermark_to(0)
              .add_elements([at(100, "d", "m1")])
              .advance_watermark_to(100 + HORIZON - 1)
              .add_elements([at(100, "d", "m2")])      # just inside: a duplicate
              .advance_watermark_to(100 + HORIZON + 1)
              .add_elements([at(100, "d", "m3")])      # state expired: emitted again
              .advance_watermark_to_infinity())
    with stream_pipeline() as p:
        out = p | stream | DeduplicateTouchpointsStreaming(ctx, HORIZON)
        assert_that(outcomes(out), equal_to([("kept", "d", "m1"), ("kept", "d", "m3")]))


def test_horizon_must_be_positive(ctx):
    with pytest.raises(ValueError, match="positive"):
        DeduplicateTouchpointsStreaming(ctx, 0)
