"""End to end through the real Pub/Sub emulator: publish -> `touchline stream` (DirectRunner) -> DuckDB.

One scenario, two pipeline runs (each costs ~30 s of the DirectRunner's blocking pulls):

1. publish the app and web files (shuffled, with producer retries), start the stream with a large
   write batch so rows wait in memory, cancel it as soon as its first batch is written -- messages
   it acknowledged but had not written are now gone from the subscription;
2. publish support and transactions, restart the stream on the same subscription: it seeks back to
   its replay point, everything is delivered again, and the warehouse merges the repeats by key.

The stream's warehouse starts with the identity_map of a batch run over the same files (what the
scheduled batch run leaves behind). Then: no gaps, no double counts, and the tables equal the batch
pipeline's on the same files -- touchpoints with their person_id, every score row to the bit
(input = touchpoints + duplicates + dead letters, per channel and reason). Journeys close only an
inactivity gap plus the allowed lateness (here ten years: the local watermark is the wall clock and
the sample data is older) after their last event, so their parity is tested with TestStream
(tests/test_streaming_pipeline.py), where the watermark can be advanced.
"""

import collections
import os
import time

import pytest
from apache_beam.runners.runner import PipelineState

from touchline.pipelines import batch, cli, streaming
from touchline.pipelines.options import parse_pipeline_args, resolve_stream
from touchline.pipelines.publish import publish
from touchline.pipelines.sample_data import GenerateConfig, generate
from touchline.transforms.warehouse import open_warehouse

from .pubsub_emulator import emulator_env, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
WAIT = 300  # seconds: generous, the DirectRunner's empty pulls block for 30 s each


def rows(path, sql):
    wh = open_warehouse(path)
    try:
        return wh.query(sql)
    finally:
        wh.close()


def touchpoints(path):
    wh = open_warehouse(path)
    try:
        cols = [r[0] for r in wh.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'touchpoints' "
                                       "ORDER BY ordinal_position")]
        # source: file position vs message id; everything else (person_id included) is the batch's
        return {r[0]: {k: v for k, v in zip(cols, r) if k != "source"}
                for r in wh.query("SELECT * FROM touchpoints")}
    finally:
        wh.close()


SCORES = {"person_scores_daily": "person_id, role, score_date", "person_scores_current": "person_id, role"}


def scores(path):
    """Every score row, in key order (the stream's final rows must be the batch's, to the bit)."""
    return {table: rows(path, f"SELECT * FROM {table} ORDER BY {key}") for table, key in SCORES.items()}


def wait_for(predicate, what, handle, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handle.state == PipelineState.FAILED:
            raise AssertionError(f"the stream failed while waiting for {what}: {handle.error}")
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stream_args(sub, warehouse, *extra):
    return ["--subscription", sub, "--warehouse", warehouse, "--hash_key_source", "demo",
            "--allowed_lateness", "3650d", "--dedup_horizon", "3650d",  # local watermark = wall clock; the data is older
            "--lateness_shards", "2", *extra]


def start(argv):
    """What `touchline stream` does, minus its wait loop: parse, preflight, start."""
    options = parse_pipeline_args(argv, "touchline stream")
    return streaming.start(resolve_stream(options), options)


@pytest.fixture(scope="module")
def scenario(pubsub_emulator, tmp_path_factory):
    data = tmp_path_factory.mktemp("e2e-data")
    generate(GenerateConfig(out_dir=str(data), persons=20, days=3, seed=33, malformed_rate=0.08, conflict_rate=0.0))
    batch_wh = str(tmp_path_factory.mktemp("e2e-batch") / "batch.duckdb")
    batch.run(["--input", str(data), "--warehouse", batch_wh, "--hash_key_source", "demo", "--logical_date", "2026-10-31"])
    warehouse = str(tmp_path_factory.mktemp("e2e-stream") / "stream.duckdb")
    from .test_streaming_pipeline import seed_identity_map

    seed_identity_map(batch_wh, warehouse)   # the identity_map the scheduled batch run leaves behind
    topic, sub = pubsub_emulator.topic("e2e-events"), pubsub_emulator.subscription("e2e-events")
    out = {"batch": batch_wh, "warehouse": warehouse, "sub": sub, "data": str(data)}
    try:
        _play(pubsub_emulator, data, topic, sub, warehouse, batch_wh, out)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- Pub/Sub emulator log (tail) ---\n{pubsub_emulator.log_tail()}") from exc
    return out


def _play(pubsub_emulator, data, topic, sub, warehouse, batch_wh, out):
    with emulator_env(pubsub_emulator):
        first = publish(str(data), topic, channels=["app", "web"], create=True, subscription=sub,
                        shuffle_window=20, duplicate_rate=0.05, seed=1)
        # Run 1: rows are written only in batches of 40 (no time-based flush to speak of), so when the
        # first batch lands, acknowledged messages are still waiting in memory.
        handle = start(stream_args(sub, warehouse, "--write_batch_size", "40", "--write_max_latency", "10m"))
        out["notes_1"] = handle.notes
        wait_for(lambda: rows(warehouse, "SELECT count(*) FROM touchpoints")[0][0] > 0, "a first batch", handle)
        handle.stop()
        out["after_cancel"] = rows(warehouse, "SELECT count(*) FROM touchpoints")[0][0]
        second = publish(str(data), topic, channels=["support", "transactions"], create=True, subscription=sub,
                         shuffle_window=20, duplicate_rate=0.05, seed=2)
        out["published"] = first.published + second.published
        out["duplicated"] = set(first.duplicated) | set(second.duplicated)
        # Run 2: restart on the same subscription.
        handle = start(stream_args(sub, warehouse, "--write_max_latency", "1s"))
        out["notes_2"] = handle.notes
        expected_tp = rows(batch_wh, "SELECT count(*) FROM touchpoints")[0][0]
        expected_dead = rows(batch_wh, "SELECT count(*) FROM dead_letters")[0][0]
        extra = sum(1 for c, s in rows(batch_wh, "SELECT channel, source FROM dead_letters") if (c, s) in out["duplicated"])
        out["expected"] = (expected_tp, expected_dead + extra)
        try:
            wait_for(lambda: (rows(warehouse, "SELECT count(*) FROM touchpoints")[0][0],
                              rows(warehouse, "SELECT count(*) FROM dead_letters")[0][0]) == out["expected"],
                     f"{out['expected']} touchpoints and dead letters", handle)
            want_scores = scores(batch_wh)
            wait_for(lambda: scores(warehouse) == want_scores, "the batch's scores", handle, timeout=120)
            time.sleep(3)  # anything still in flight would show up now as a double count
            out["scores"] = (scores(warehouse), want_scores)
        finally:
            handle.stop(wait=False)  # the last run: no need to wait for its pending pull


def test_restart_replays_what_a_cancelled_run_acknowledged(scenario):
    assert 0 < scenario["after_cancel"] < scenario["expected"][0], "run 1 should have been cancelled mid-stream"
    assert any("took replay point" in n for n in scenario["notes_1"])
    assert any("replaying" in n for n in scenario["notes_2"])


def test_no_gaps_and_no_double_counts_touchpoints_equal_batch(scenario):
    got, want = touchpoints(scenario["warehouse"]), touchpoints(scenario["batch"])
    assert set(got) == set(want)                      # no gaps; the key makes doubles impossible, so:
    n = rows(scenario["warehouse"], "SELECT count(*), count(DISTINCT event_id) FROM touchpoints")[0]
    assert n[0] == n[1] == len(want)
    assert got == want                                 # same rows (source aside: file position vs message id)
    sources = rows(scenario["warehouse"], "SELECT DISTINCT split_part(source, '/', 4) FROM touchpoints")
    assert sources == [(scenario["sub"].rsplit("/", 1)[-1],)]


def test_scores_after_stop_restart_and_replay_equal_batch(scenario):
    got, want = scenario["scores"]
    assert len(want["person_scores_current"]) > 10
    assert got == want      # no score counted twice, none missing, to the bit


def test_dead_letters_per_channel_and_reason_equal_batch_plus_duplicated_bad_messages(scenario):
    batch_dead = rows(scenario["batch"], "SELECT channel, reason, source FROM dead_letters")
    want = collections.Counter((c, r) for c, r, _ in batch_dead)
    want.update((c, r) for c, r, s in batch_dead if (c, s) in scenario["duplicated"])   # a retried bad message fails twice
    got = collections.Counter(rows(scenario["warehouse"], "SELECT channel, reason FROM dead_letters"))
    assert got == want
    assert not any(r in ("too_late", "unknown_channel", "conflicting_duplicate") for _, r in got)


def test_no_clear_text_pii_in_the_streamed_tables(scenario):
    import json
    import re

    with open(os.path.join(scenario["data"], "truth", "persons.jsonl"), encoding="utf-8") as fh:
        persons = [json.loads(line) for line in fh]
    secrets = {e.strip().lower() for p in persons for e in p["emails"]} | \
              {re.sub(r"\D", "", ph)[-9:] for p in persons for ph in p["phones"]}
    secrets.discard("")
    text = json.dumps([rows(scenario["warehouse"], f"SELECT * FROM {t}") for t in ("touchpoints", "dead_letters")],
                      default=str).lower()
    assert not sorted(s for s in secrets if s in text)[:5]
    assert re.findall(r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}", text) == []


def test_stream_preflight_errors_name_the_fix(pubsub_emulator, tmp_path, capsys, monkeypatch):
    wh = str(tmp_path / "x.duckdb")
    with emulator_env(pubsub_emulator):
        assert cli.main(["stream", "--subscription", pubsub_emulator.subscription("no-such-sub"), "--warehouse", wh,
                         "--hash_key_source", "demo"]) == 2
        err = capsys.readouterr().err
        assert "does not exist" in err and "touchline publish --create" in err
        assert cli.main(["stream", "--subscription", "abc", "--warehouse", wh, "--hash_key_source", "demo"]) == 2
        assert "needs a project" in capsys.readouterr().err
        assert cli.main(["stream", "--subscription", "projects/touchline-test/subscriptions/abc", "--warehouse", wh,
                         "--hash_key_source", "demo", "--allowed_lateness", "2d", "--dedup_horizon", "1d"]) == 2
        assert "counted twice" in capsys.readouterr().err
        assert cli.main(["stream", "--subscription", "projects/touchline-test/subscriptions/abc", "--warehouse", wh,
                         "--hash_key_source", "demo", "--allowed_lateness", "soon"]) == 2
        assert "is not a duration" in capsys.readouterr().err
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    assert cli.main(["stream", "--subscription", "projects/touchline-test/subscriptions/abc", "--warehouse", wh,
                     "--hash_key_source", "demo"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the Pub/Sub emulator" in err and "Traceback" not in err
    assert not os.path.exists(wh + ".wal")


def test_cli_streams_until_stop_after_and_reports_counts(pubsub_emulator, scenario, tmp_path, capsys):
    topic, sub = pubsub_emulator.topic("cli-events"), pubsub_emulator.subscription("cli-events")
    wh = str(tmp_path / "cli.duckdb")
    with emulator_env(pubsub_emulator):
        publish(scenario["data"], topic, channels=["web"], create=True, subscription=sub, limit=8, retime_live=True)
        assert cli.main(["stream", "--subscription", sub, "--warehouse", wh, "--hash_key_source", "demo",
                         "--allowed_lateness", "7d", "--dedup_horizon", "7d", "--write_batch_size", "1",
                         "--stop_after", "40s"]) == 0   # the whole graph (identity, scores) on a loaded 2-core machine
    out = capsys.readouterr().out
    assert "took replay point" in out and f"streaming {sub}" in out
    final = [line for line in out.splitlines() if line.startswith("stopped.")]
    n = rows(wh, "SELECT count(*) FROM touchpoints")[0][0]
    assert n > 0 and final and final[0].startswith(f"stopped. touchpoints {n},")
