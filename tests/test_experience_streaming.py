"""Stateful journeys and scores in a stream (transforms/experience_streaming.py) against the batch stage.

Attributed touchpoints of a generated sample arrive shuffled, up to 30 hours late behind a watermark
that follows the newest event, with an allowed lateness of 2 days; the final rows the stream writes
(through the real streaming writer into DuckDB) equal what the batch stage writes for the same
touchpoints -- journeys, every daily score row and the current rows, to the bit.
"""

import datetime as dt
import random

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream as EventStream  # (not collected by pytest)
from apache_beam.transforms.window import TimestampedValue

from touchline.transforms.experience_streaming import ExperienceStreaming
from touchline.transforms.scoring.model import load_model
from touchline.transforms.warehouse.stream_writer import WriteTablesStreaming

from .conftest import stream_pipeline
from .experience_harness import attributed_sample, dump, run_stage

HOUR = 3600
TABLES = ("journeys", "person_scores_daily", "person_scores_current")


def stream_experience(warehouse, touchpoints, lateness, seed, late_hours):
    rng = random.Random(seed)
    arrival = sorted(touchpoints, key=lambda tp: tp["event_time"] / 1e6 + (rng.uniform(0, late_hours * HOUR) if rng.random() < 0.3 else 0))
    stream, watermark, behind = EventStream(), 0.0, 0
    for start in range(0, len(arrival), 6):
        chunk = arrival[start:start + 6]
        behind += sum(tp["event_time"] / 1e6 < watermark for tp in chunk)
        stream = stream.add_elements([TimestampedValue(tp, tp["event_time"] / 1e6) for tp in chunk])
        newest = max(tp["event_time"] for tp in chunk) / 1e6
        if newest > watermark:
            watermark = newest
            stream = stream.advance_watermark_to(watermark)
    stream = stream.advance_watermark_to_infinity()
    with stream_pipeline() as p:
        out = p | stream | ExperienceStreaming(load_model(), 12.0, lateness)
        _ = out | WriteTablesStreaming(warehouse, 200, 0.5, upsert=TABLES)
    return behind


@pytest.mark.slow
def test_any_arrival_order_within_lateness_gives_the_batch_rows(tmp_path):
    _folder, touchpoints, _truth = attributed_sample(12, 4, 5)
    batch_wh = str(tmp_path / "batch.duckdb")
    run_stage(batch_wh, list(touchpoints), dt.date(2026, 10, 31), str(tmp_path / "staging"))
    want = dump(batch_wh, TABLES)
    assert len(want["journeys"]) >= 8 and len(want["person_scores_daily"]) >= 15

    stream_wh = str(tmp_path / "stream.duckdb")
    behind = stream_experience(stream_wh, [dict(tp) for tp in touchpoints], 2 * 24 * HOUR, seed=3, late_hours=30)
    assert behind > 3, "some touchpoints should arrive behind the watermark"
    got = dump(stream_wh, TABLES)
    for table in TABLES:
        assert len(got[table]) == len(want[table]), table
        assert got[table] == want[table], table
