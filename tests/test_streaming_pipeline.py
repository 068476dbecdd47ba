"""The whole streaming graph under TestStream (streaming mode, BundleBasedDirectRunner), written to DuckDB.

Parity: for the same generated input, arriving in any order within the allowed lateness, the stream
writes the same touchpoints and the same dead letters (per channel and reason) as the batch pipeline.
"""

import collections
import datetime as dt
import json
import random

import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState
from apache_beam.testing.test_stream import TestStream as EventStream  # (not collected by pytest)
from apache_beam.transforms.window import TimestampedValue

from touchline.pipelines import batch, streaming
from touchline.pipelines.options import StreamPlan
from touchline.pipelines.publish import plan_messages
from touchline.pipelines.sample_data import GenerateConfig, generate
from touchline.transforms.warehouse import open_warehouse

from .conftest import STREAMING_RUNNER

DAY = 86400
SUB = "projects/touchline-test/subscriptions/touchline-events"


def plan_for(warehouse, **over):
    settings = dict(subscription=SUB, warehouse_url=warehouse, hash_key_source="demo", allowed_lateness=DAY,
                    dedup_horizon=DAY, lateness_shards=4, local=True, replay=False, write_max_latency=0.5)
    settings.update(over)
    return StreamPlan(**settings)


def run_stream(plan, stream):
    handle = streaming.start(plan, PipelineOptions(["--streaming", f"--runner={STREAMING_RUNNER}"]), source=stream)
    assert handle.wait(timeout=600) == PipelineState.DONE, handle.error
    return handle


def message(i, data, channel, t, **attrs):
    attributes = {"channel": channel, "event_time": str(int(t * 1000)), **attrs}
    return TimestampedValue(PubsubMessage(data, attributes, message_id=str(i)), t)


def seed_identity_map(source, target):
    """The stream's warehouse starts with the identity_map a batch run stitched (what the scheduled
    batch run leaves behind in production): the stream attributes with it."""
    import duckdb

    wh = open_warehouse(target)
    wh.init()
    wh.close()
    con = duckdb.connect(target)
    try:
        con.execute(f"ATTACH '{source}' AS b (READ_ONLY)")
        con.execute("INSERT INTO identity_map SELECT * FROM b.identity_map")
        return con.execute("SELECT count(*) FROM identity_map").fetchone()[0]
    finally:
        con.close()


EXPERIENCE = {"journeys": "journey_id", "person_scores_daily": "person_id, role, score_date",
              "person_scores_current": "person_id, role"}


def experience_rows(path, persons_to_skip=()):
    """{table: rows as dicts, ordered by key} of the journeys and score tables."""
    wh = open_warehouse(path)
    try:
        out = {}
        for table, key in EXPERIENCE.items():
            cols = [r[0] for r in wh.query(f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}' "
                                           "ORDER BY ordinal_position")]
            out[table] = [r for r in (dict(zip(cols, row)) for row in wh.query(f"SELECT * FROM {table} ORDER BY {key}"))
                          if r["person_id"] not in persons_to_skip]
        return out
    finally:
        wh.close()


def tables(path):
    wh = open_warehouse(path)
    try:
        cols = [r[0] for r in wh.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'touchpoints' ORDER BY ordinal_position")]
        tps = {row[cols.index("event_id")]: dict(zip(cols, row)) for row in wh.query("SELECT * FROM touchpoints")}
        dead = wh.query("SELECT channel, reason, source, event_id, logical_date, failed_step, raw_payload FROM dead_letters")
        return tps, dead
    finally:
        wh.close()


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("stream-sample")
    generate(GenerateConfig(out_dir=str(out), persons=30, days=3, seed=21, malformed_rate=0.08, conflict_rate=0.02))
    warehouse = str(tmp_path_factory.mktemp("batch-wh") / "batch.duckdb")
    batch.run(["--input", str(out), "--warehouse", warehouse, "--hash_key_source", "demo", "--logical_date", "2026-10-31"])
    return str(out), warehouse


@pytest.mark.slow
def test_stream_equals_batch_for_any_arrival_order_within_lateness(generated, tmp_path):
    root, batch_wh = generated
    files = {c: [f"{root}/{c}/{n}" for n in sorted(__import__("os").listdir(f"{root}/{c}"))] for c in ("app", "web", "support", "transactions")}
    # Event time = the record's time (for records without one: its neighbour's, as `publish` orders them).
    # A fifth of the records arrive up to 20 hours late, behind a watermark that follows the newest event.
    rng = random.Random(9)
    records = [m for m, _ in plan_messages(files)]
    delay = [rng.uniform(0, 20 * 3600) if rng.random() < 0.2 else 0 for _ in records]
    planned = [m for _, m in sorted(zip((m.order / 1000 + d for m, d in zip(records, delay)), records), key=lambda p: p[0])]
    stream, watermark, late_within = EventStream(), 0.0, 0
    for start in range(0, len(planned), 60):   # few steps: each costs the DirectRunner about a second
        chunk = planned[start:start + 60]
        elements = []
        for i, m in enumerate(chunk, start):
            t = m.order / 1000
            late_within += t < watermark
            elements.append(message(i, m.data, m.channel, t, **{k: v for k, v in m.attributes.items() if k.startswith("read_error")}))
        stream = stream.add_elements(elements)
        target = max(m.order for m in chunk) / 1000
        if target > watermark:
            watermark = target
            stream = stream.advance_watermark_to(watermark)
    stream = stream.advance_watermark_to_infinity()
    assert late_within > 10, "the shuffle should make some records arrive behind the watermark"

    warehouse = str(tmp_path / "stream.duckdb")
    assert seed_identity_map(batch_wh, warehouse) > 0
    run_stream(plan_for(warehouse), stream)

    b_tps, b_dead = tables(batch_wh)
    s_tps, s_dead = tables(warehouse)
    assert set(s_tps) == set(b_tps)
    conflicted = {d[3] for d in b_dead if d[1] == "conflicting_duplicate"}
    assert conflicted, "the sample should contain conflicting versions"
    # source: file position vs message id; everything else, person_id included, is the batch's
    strip = lambda row: {k: v for k, v in row.items() if k != "source"}  # noqa: E731
    for event_id in set(b_tps) - conflicted:
        assert strip(s_tps[event_id]) == strip(b_tps[event_id]), event_id
    assert all(s_tps[e]["source"].startswith(f"pubsub:{SUB}/") for e in s_tps)
    assert collections.Counter((d[0], d[1]) for d in s_dead) == collections.Counter((d[0], d[1]) for d in b_dead)
    assert not any(d[1] == "too_late" for d in s_dead)

    # Journeys and scores: the batch's, row for row and to the bit, for every person whose events
    # carry no conflicting versions (there batch keeps the smallest digest, the stream the first
    # delivered: the batch replay rewrites those persons).
    touched = {b_tps[e]["person_id"] for e in conflicted}
    want, got = experience_rows(batch_wh, touched), experience_rows(warehouse, touched)
    assert len(want["journeys"]) > 20 and len(want["person_scores_current"]) > 20
    for table in EXPERIENCE:
        assert len(got[table]) == len(want[table]), table
        for s_row, b_row in zip(got[table], want[table]):
            assert s_row == b_row, (table, s_row, b_row)


def test_too_late_unknown_channel_and_logical_dates_in_the_tables(tmp_path):
    t0 = dt.datetime(2026, 10, 5, 12, tzinfo=dt.timezone.utc).timestamp()

    def web(event_id, t):
        return json.dumps({"event_id": event_id, "occurred_at": dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(),
                           "event_type": "page_view", "cookie_id": "c1", "url": "https://x.example/a",
                           "email": "Someone@Example.com"}).encode()

    stream = (EventStream().advance_watermark_to(t0 - 60)
              .add_elements([message(1, web("w1", t0), "web", t0), message(2, web("w2", t0 + 5), "chat", t0 + 5)])
              .advance_watermark_to(t0 + 3 * DAY)
              .add_elements([message(3, web("w3", t0 + 3 * DAY - 10), "web", t0 + 3 * DAY - 10),    # a few seconds late
                             message(4, web("w4", t0 + DAY), "web", t0 + DAY),                        # two days late
                             message(5, web("w1", t0), "web", t0)])                                   # a copy of w1, too late
              .advance_watermark_to_infinity())
    warehouse = str(tmp_path / "late.duckdb")
    run_stream(plan_for(warehouse, lateness_shards=1), stream)
    tps, dead = tables(warehouse)
    assert sorted(tps) == ["w1", "w3"]
    got = sorted((d[0], d[1], d[3], d[5]) for d in dead)
    assert got == [("unknown", "unknown_channel", None, "Route"), ("web", "too_late", "w1", "Lateness"),
                   ("web", "too_late", "w4", "Lateness")]
    day = lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).date()  # noqa: E731 -- the event's UTC day
    assert {d[3]: d[4] for d in dead if d[1] == "too_late"} == {"w1": day(t0), "w4": day(t0 + DAY)}
    assert all("Someone@Example.com".lower() not in d[6].lower() for d in dead)


def test_redelivered_messages_and_repeated_batches_never_double_count(tmp_path):
    """The same message twice (a Pub/Sub redelivery: same message id) and the same stream twice
    (a replay after a restart) leave one row per event and per dead letter."""
    t0 = dt.datetime(2026, 10, 5, tzinfo=dt.timezone.utc).timestamp()
    rows = [(i, json.dumps({"event_id": f"e{i}", "occurred_at": dt.datetime.fromtimestamp(t0 + i, dt.timezone.utc).isoformat(),
                            "event_type": "page_view", "cookie_id": "c", "url": "https://x.example/"}).encode()) for i in range(30)]
    rows.append((99, b"{not json"))
    rng = random.Random(1)

    def replay():
        elements = [message(i, data, "web", t0 + i % 30) for i, data in rows] * 2
        rng.shuffle(elements)
        return EventStream().advance_watermark_to(t0 - 1).add_elements(elements).advance_watermark_to_infinity()

    warehouse = str(tmp_path / "redeliver.duckdb")
    run_stream(plan_for(warehouse), replay())
    first = tables(warehouse)
    run_stream(plan_for(warehouse), replay())
    assert tables(warehouse) == first
    assert len(first[0]) == 30 and [(d[1], d[2]) for d in first[1]] == [("invalid_json", f"pubsub:{SUB}/99")]


@pytest.mark.slow
def test_batch_replay_reconciles_a_stream_that_did_not_know_the_persons_yet(tmp_path):
    """Without an identity_map the stream attributes with in-event links and provisional ids, so a
    person can sit under several ids; the scheduled batch run over the same input then rewrites the
    warehouse into exactly what a batch-only warehouse holds: touchpoints (person_id included),
    journeys and every score row -- the rows of provisional ids are gone."""
    import os

    root = tmp_path / "sample"
    generate(GenerateConfig(out_dir=str(root), persons=12, days=2, seed=5, malformed_rate=0.0, conflict_rate=0.0))
    batch_only = str(tmp_path / "batch.duckdb")
    # logical date right after the data: the scores' lookback (7 days) covers every streamed day
    args = ["--input", str(root), "--hash_key_source", "demo", "--logical_date", "2026-10-03"]
    batch.run([*args, "--warehouse", batch_only])

    files = {c: [f"{root}/{c}/{n}" for n in sorted(os.listdir(f"{root}/{c}"))] for c in ("app", "web", "support", "transactions")}
    elements = [message(i, m.data, m.channel, m.order / 1000) for i, (m, _) in enumerate(plan_messages(files))]
    stream = EventStream().advance_watermark_to(elements[0].timestamp.micros / 1e6 - 1)
    for start in range(0, len(elements), 100):
        stream = stream.add_elements(elements[start:start + 100])
    warehouse = str(tmp_path / "stream.duckdb")
    run_stream(plan_for(warehouse), stream.advance_watermark_to_infinity())

    b_tps, _ = tables(batch_only)
    s_tps, _ = tables(warehouse)
    assert set(s_tps) == set(b_tps)
    provisional = {s_tps[e]["person_id"] for e in s_tps} - {b_tps[e]["person_id"] for e in b_tps}
    assert provisional, "without identity_map some touchpoints should carry provisional ids"

    batch.run([*args, "--warehouse", warehouse])             # the scheduled batch run
    s_tps, _ = tables(warehouse)
    strip = lambda row: {k: v for k, v in row.items() if k not in ("source",)}  # noqa: E731
    assert {e: strip(r) for e, r in s_tps.items()} == {e: strip(r) for e, r in b_tps.items()}
    got, want = experience_rows(warehouse), experience_rows(batch_only)
    for table in EXPERIENCE:
        assert got[table] == want[table], table
    assert not {r["person_id"] for rows in got.values() for r in rows} & provisional
